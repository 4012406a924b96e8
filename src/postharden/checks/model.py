"""Value objects of the audit: checks, findings, fixes, outcomes and the report.

Everything here is immutable data; nothing does I/O. Checks produce `Hit`s (what they saw
and how to fix it); the runner turns each `Hit` into a `Finding` with the check's metadata,
the role's severity and a fingerprint that does not depend on line numbers.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Iterable
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from postharden.checks.env import CheckEnv


class Severity(Enum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 4 ... info 0."""
        return _SEVERITY_RANK[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text)
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of: {known})") from None


_SEVERITY_RANK = {
    Severity.CRITICAL: 4,
    Severity.HIGH: 3,
    Severity.MEDIUM: 2,
    Severity.LOW: 1,
    Severity.INFO: 0,
}


class Category(Enum):
    RELAY = "relay"
    ACCESS = "access"
    DISCLOSURE = "disclosure"
    TLS = "tls"
    AUTH = "auth"
    CONTENT = "content"
    LIMITS = "limits"
    FILES = "files"
    SERVICE = "service"
    SYNTAX = "syntax"


class Status(Enum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    NOT_APPLICABLE = "not_applicable"
    UNKNOWN = "unknown"


class NotApplicable(Exception):
    """Raised by a check when it does not apply to this configuration or role."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unknown(Exception):
    """Raised by a check that cannot give an answer (a fact it needs is missing)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Evidence(NamedTuple):
    """What the check saw, where: `main.cf:42: smtpd_banner = $myhostname ESMTP $mail_name`."""

    origin: str | None = None  # "default", "main.cf:42", "master.cf:17", a file path
    text: str | None = None  # the configuration line or fact as written
    effective: str | None = None  # the expanded value the service uses
    note: str | None = None  # why this matters, in one sentence

    def as_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "text": self.text,
            "effective": self.effective,
            "note": self.note,
        }

    def line(self) -> str:
        """One line for text reports."""
        head = f"{self.origin}: " if self.origin else ""
        body = self.text or ""
        if self.effective is not None and self.effective != _value_part(self.text):
            body = (
                f"{body} (effective: {self.effective or '(empty)'})"
                if body
                else (f"effective: {self.effective or '(empty)'}")
            )
        return (head + body).rstrip(": ")


def _value_part(text: str | None) -> str | None:
    if text is None or "=" not in text:
        return None
    return text.partition("=")[2].strip()


class MasterSetting(NamedTuple):
    """`postconf -P service/type/name=value`: an -o override of one master.cf service."""

    service: str  # name/type
    name: str
    value: str


class MasterField(NamedTuple):
    """`postconf -F service/type/field=value`: one of the 8 columns of a master.cf row."""

    service: str
    field: str  # chroot, private, unpriv, ...
    value: str


class Fix(NamedTuple):
    """A fix as data: the harden engine applies it, renderers print it as commands.

    In the order they are applied: `remove` (`postconf -X name`: a main.cf parameter that
    must go), `main_cf` (`postconf -e name=value`), `master_entries` (`postconf -M
    name/type=entry`: a new master.cf service), `master_fields` (`postconf -F`),
    `master_remove` (`postconf -PX service/type/name`: drop an -o), `master_cf`
    (`postconf -P`: set an -o), `disable_services` (`postconf -M# name/type`: comment a
    service out), then `commands` (shell commands on absolute paths: chmod, chown,
    postmap). A fix with none of these is manual: `summary` says what to do.
    `caveat` says what the change may break.
    """

    summary: str
    main_cf: tuple[tuple[str, str], ...] = ()
    master_cf: tuple[MasterSetting, ...] = ()
    remove: tuple[str, ...] = ()
    master_remove: tuple[tuple[str, str], ...] = ()  # (service name/type, parameter)
    master_entries: tuple[tuple[str, str], ...] = ()  # (name/type, full master.cf entry)
    master_fields: tuple[MasterField, ...] = ()
    disable_services: tuple[str, ...] = ()  # name/type
    commands: tuple[str, ...] = ()
    caveat: str | None = None

    @property
    def is_manual(self) -> bool:
        return not (
            self.main_cf
            or self.master_cf
            or self.remove
            or self.master_remove
            or self.master_entries
            or self.master_fields
            or self.disable_services
            or self.commands
        )

    def postconf_args(self) -> list[list[str]]:
        """Each postconf invocation as arguments after `postconf [-c DIR]`, in order."""
        args: list[list[str]] = [["-X", name] for name in self.remove]
        args += [["-e", f"{n}={v}"] for n, v in self.main_cf]
        args += [["-M", f"{key}={entry}"] for key, entry in self.master_entries]
        args += [["-F", f"{f.service}/{f.field}={f.value}"] for f in self.master_fields]
        args += [["-PX", f"{svc}/{name}"] for svc, name in self.master_remove]
        args += [["-P", f"{m.service}/{m.name}={m.value}"] for m in self.master_cf]
        args += [["-M#", key] for key in self.disable_services]
        return args

    def command_lines(self, config_dir: str | None = None) -> list[str]:
        """The fix as shell lines: postconf invocations, then the other commands."""
        prefix = (
            "postconf"
            if config_dir in (None, "/etc/postfix")
            else (f"postconf -c {shlex.quote(str(config_dir))}")
        )
        lines = [
            prefix + " " + " ".join(shlex.quote(a) for a in arg) for arg in self.postconf_args()
        ]
        return lines + list(self.commands)

    def as_dict(self, config_dir: str | None = None) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "manual": self.is_manual,
            "main_cf": [{"parameter": n, "value": v} for n, v in self.main_cf],
            "master_cf": [
                {"service": m.service, "parameter": m.name, "value": m.value}
                for m in self.master_cf
            ],
            "remove": list(self.remove),
            "master_remove": [{"service": s, "parameter": n} for s, n in self.master_remove],
            "master_entries": [{"service": k, "entry": e} for k, e in self.master_entries],
            "master_fields": [
                {"service": f.service, "field": f.field, "value": f.value}
                for f in self.master_fields
            ],
            "disable_services": list(self.disable_services),
            "commands": list(self.commands),
            "shell": self.command_lines(config_dir),
            "caveat": self.caveat,
        }


class Hit(NamedTuple):
    """What a check reports: one problem on one service (or the whole configuration)."""

    message: str
    service: str | None = None  # name/type, None for main.cf-wide or file problems
    parameter: str | None = None
    evidence: tuple[Evidence, ...] = ()
    fix: Fix | None = None
    # Identity of the problem beyond id/service/parameter (a file path, a table, a
    # restriction name); never a line number, so a baseline survives edits.
    key: str = ""
    severity: Severity | None = None  # overrides the check's (role) severity
    location: tuple[str, int | None] | None = None  # (file, line) for SARIF


class Reference(NamedTuple):
    title: str
    url: str | None = None


CheckFunction = Callable[["CheckEnv"], Iterable[Hit]]


class CheckSpec(NamedTuple):
    """A declared check: metadata plus the function that judges the facts."""

    id: str
    title: str
    category: Category
    severity: Severity
    implements: tuple[str, ...]  # runbook steps / checklist items (see standards.py)
    references: tuple[Reference, ...]
    function: CheckFunction

    @property
    def doc(self) -> str:
        """The check's user documentation: the function's docstring."""
        import inspect

        return inspect.cleandoc(self.function.__doc__ or "")

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n", 1)[0].replace("\n", " ")


class Finding(NamedTuple):
    id: str
    title: str
    category: Category
    severity: Severity
    message: str
    service: str | None
    parameter: str | None
    evidence: tuple[Evidence, ...]
    fix: Fix | None
    references: tuple[Reference, ...]
    fingerprint: str
    location: tuple[str, int | None] | None = None


def fingerprint(check_id: str, service: str | None, parameter: str | None, key: str) -> str:
    """Stable identity of a finding: no line numbers, no values that edits move around."""
    material = "\x1f".join([check_id, service or "", parameter or "", key])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:24]


class CheckOutcome(NamedTuple):
    id: str
    status: Status
    reason: str | None
    findings: tuple[Finding, ...]


class ServiceSummary(NamedTuple):
    key: str
    program: str
    listen: str | None
    kind: str
    public: bool
    chroot: str
    line: int


class CriterionResult(NamedTuple):
    """A runbook "Done" criterion or a checklist item, judged from the checks."""

    id: str
    title: str
    document: str  # "runbook" or "checklist"
    status: str  # pass, fail, not applicable, unknown
    reason: str | None
    checks: tuple[str, ...]


class AuditReport(NamedTuple):
    postfix_version: str
    config_dir: str
    role: str
    role_version: str
    role_inferred: bool
    role_reason: str
    services: tuple[ServiceSummary, ...]
    outcomes: tuple[CheckOutcome, ...]
    criteria: tuple[CriterionResult, ...]
    catalog: tuple[CheckSpec, ...]
    suppressed: int = 0  # findings hidden by --baseline

    @property
    def findings(self) -> list[Finding]:
        found = [f for o in self.outcomes for f in o.findings]
        return sorted(found, key=lambda f: (-f.severity.rank, f.id, f.service or "", f.message))

    def spec(self, check_id: str) -> CheckSpec:
        for spec in self.catalog:
            if spec.id == check_id:
                return spec
        raise KeyError(check_id)

    def counts(self) -> dict[str, dict[str, int]]:
        by_severity = {s.value: 0 for s in Severity}
        for finding in self.findings:
            by_severity[finding.severity.value] += 1
        by_status = {s.value: 0 for s in Status}
        for outcome in self.outcomes:
            by_status[outcome.status.value] += 1
        return {"findings_by_severity": by_severity, "checks_by_status": by_status}
