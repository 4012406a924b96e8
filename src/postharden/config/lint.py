"""What Postfix would silently misread in main.cf and master.cf.

    from postharden.config import load_config
    from postharden.config.lint import lint
    for finding in lint(load_config("/etc/postfix")):
        print(finding.location, finding.severity.value, finding.id, finding.message)

`lint(config)` is pure: it reads the model (and the source lines the model kept), never a
file or a socket. Each finding has a stable `id`, a `severity`, the `file` and `line`, the
`parameter` (and `service` for master.cf), a `message` and the `fix`.

Which names are unknown is decided exactly as postconf decides which settings are "unused"
(postharden.config.known, proven against postconf's warnings).
"""

from __future__ import annotations

import difflib
import enum
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from postharden.config.defaults import LEGACY_PARAMETERS, READ_ONLY_PARAMETERS
from postharden.config.expand import ExpansionError
from postharden.config.known import NameAnalysis, analyse_names
from postharden.config.master import SERVICE_TYPES
from postharden.config.model import split_list

if TYPE_CHECKING:
    from postharden.config.master import Service
    from postharden.config.model import Context, PostfixConfig


class Severity(enum.Enum):
    """error: Postfix does something else than the file says; warning: likely a mistake or
    obsolete; info: worth knowing, harmless as written."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class LintFinding(NamedTuple):
    id: str
    severity: Severity
    file: str  # path of main.cf or master.cf
    line: int | None
    parameter: str | None
    message: str
    fix: str
    service: str | None = None  # name/type, for master.cf findings

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "file": self.file,
            "line": self.line,
            "parameter": self.parameter,
            "service": self.service,
            "message": self.message,
            "fix": self.fix,
        }


# Every check, its severity and what it means (the docs and the JSON schema list these).
CHECKS: dict[str, tuple[Severity, str]] = {
    "hash-in-value": (Severity.ERROR, "a `#` after a value is part of the value"),
    "restriction-as-parameter": (Severity.ERROR, "a restriction name written as a parameter"),
    "unknown-parameter": (Severity.WARNING, "a main.cf name Postfix does not know or use"),
    "unknown-override": (Severity.WARNING, "a master.cf -o name Postfix does not know or use"),
    "obsolete-parameter": (Severity.WARNING, "an obsolete or renamed parameter"),
    "obsolete-restriction": (Severity.WARNING, "an obsolete or renamed restriction"),
    "duplicate-definition": (Severity.WARNING, "a parameter defined more than once"),
    "undefined-reference": (Severity.WARNING, "$name of a parameter that has no value"),
    "expansion-loop": (Severity.ERROR, "a value Postfix cannot expand (loop, bad syntax)"),
    "read-only-assignment": (Severity.WARNING, "an assignment Postfix ignores"),
    "misplaced-override": (Severity.ERROR, "an -o line that belongs to another service"),
    "continuation-after-gap": (
        Severity.WARNING,
        "an -o line continuing a service across a blank or comment line",
    ),
    "malformed-row": (Severity.ERROR, "a master.cf row or option Postfix does not read"),
    "ignored-line": (Severity.ERROR, "a line that Postfix ignores"),
}

# Renamed or obsolete parameters: name -> (replacement or advice, fix text).
# Renamed or obsolete parameters: name -> the fix.
OBSOLETE_PARAMETERS: dict[str, str] = {
    "smtpd_use_tls": "use smtpd_tls_security_level = may (smtpd_use_tls is obsolete since 2.3)",
    "smtpd_enforce_tls": "use smtpd_tls_security_level = encrypt (smtpd_enforce_tls is obsolete)",
    "smtp_use_tls": "use smtp_tls_security_level = may (smtp_use_tls is obsolete since 2.3)",
    "smtp_enforce_tls": "use smtp_tls_security_level = encrypt (smtp_enforce_tls is obsolete)",
    "lmtp_use_tls": "use lmtp_tls_security_level = may (lmtp_use_tls is obsolete)",
    "lmtp_enforce_tls": "use lmtp_tls_security_level = encrypt (lmtp_enforce_tls is obsolete)",
    "smtpd_tls_dh512_param_file": (
        "remove it: 512-bit DH was only for export ciphers, which are gone"
    ),
    "smtp_tls_per_site": "use smtp_tls_policy_maps",
    "lmtp_tls_per_site": "use lmtp_tls_policy_maps",
    "smtpd_tls_cipherlist": "use smtpd_tls_ciphers / smtpd_tls_mandatory_ciphers",
    "smtp_tls_cipherlist": "use smtp_tls_ciphers / smtp_tls_mandatory_ciphers",
    "virtual_maps": "use virtual_alias_maps (virtual_maps is the pre-2.0 name)",
    "fallback_relay": "use smtp_fallback_relay",
    "authorized_verp_clients": "use smtpd_authorized_verp_clients",
    "postscreen_blacklist_action": "use postscreen_denylist_action",
    "postscreen_dnsbl_whitelist_threshold": "use postscreen_dnsbl_allowlist_threshold",
    "postscreen_whitelist_interfaces": "use postscreen_allowlist_interfaces",
    "postscreen_dnsbl_ttl": "use postscreen_dnsbl_max_ttl",
    "smtpd_client_connection_limit_exceptions": "use smtpd_client_event_limit_exceptions",
    "smtpd_per_record_deadline": "use smtpd_per_request_deadline",
    "smtp_per_record_deadline": "use smtp_per_request_deadline",
    "lmtp_per_record_deadline": "use lmtp_per_request_deadline",
    "tlsproxy_client_level": "use tlsproxy_client_security_level",
    "tlsproxy_client_policy": "use tlsproxy_client_policy_maps",
    "disable_dns_lookups": "use smtp_dns_support_level = disabled",
    "smtpd_sasl_application_name": "use smtpd_sasl_path",
}

OBSOLETE_RESTRICTIONS: dict[str, str] = {
    "reject_invalid_hostname": "reject_invalid_helo_hostname",
    "reject_non_fqdn_hostname": "reject_non_fqdn_helo_hostname",
    "reject_unknown_hostname": "reject_unknown_helo_hostname",
    "reject_unknown_client": "reject_unknown_client_hostname",
    "check_relay_domains": "permit_mynetworks, reject_unauth_destination",
    "reject_maps_rbl": "reject_rbl_client DOMAIN",
    "permit_naked_ip_address": "permit_mynetworks, permit_sasl_authenticated",
}

# smtpd access restrictions (postconf(5), access(5)): used as a main.cf parameter name
# they do nothing.
RESTRICTION_NAMES = frozenset(
    [
        "check_ccert_access",
        "check_client_a_access",
        "check_client_access",
        "check_client_mx_access",
        "check_client_ns_access",
        "check_etrn_access",
        "check_helo_a_access",
        "check_helo_access",
        "check_helo_mx_access",
        "check_helo_ns_access",
        "check_policy_service",
        "check_recipient_a_access",
        "check_recipient_access",
        "check_recipient_mx_access",
        "check_recipient_ns_access",
        "check_relay_domains",
        "check_reverse_client_hostname_a_access",
        "check_reverse_client_hostname_access",
        "check_reverse_client_hostname_mx_access",
        "check_reverse_client_hostname_ns_access",
        "check_sasl_access",
        "check_sender_a_access",
        "check_sender_access",
        "check_sender_mx_access",
        "check_sender_ns_access",
        "defer",
        "defer_if_permit",
        "defer_if_reject",
        "defer_unauth_destination",
        "permit",
        "permit_auth_destination",
        "permit_dnswl_client",
        "permit_inet_interfaces",
        "permit_mx_backup",
        "permit_mynetworks",
        "permit_naked_ip_address",
        "permit_rhswl_client",
        "permit_sasl_authenticated",
        "permit_tls_all_clientcerts",
        "permit_tls_clientcerts",
        "reject",
        "reject_authenticated_sender_login_mismatch",
        "reject_invalid_helo_hostname",
        "reject_invalid_hostname",
        "reject_known_sender_login_mismatch",
        "reject_maps_rbl",
        "reject_multi_recipient_bounce",
        "reject_non_fqdn_helo_hostname",
        "reject_non_fqdn_hostname",
        "reject_non_fqdn_recipient",
        "reject_non_fqdn_sender",
        "reject_plaintext_session",
        "reject_rbl_client",
        "reject_rhsbl_client",
        "reject_rhsbl_helo",
        "reject_rhsbl_recipient",
        "reject_rhsbl_reverse_client",
        "reject_rhsbl_sender",
        "reject_sender_login_mismatch",
        "reject_unauth_destination",
        "reject_unauth_pipelining",
        "reject_unauthenticated_sender_login_mismatch",
        "reject_unknown_client",
        "reject_unknown_client_hostname",
        "reject_unknown_forward_client_hostname",
        "reject_unknown_helo_hostname",
        "reject_unknown_hostname",
        "reject_unknown_recipient_domain",
        "reject_unknown_reverse_client_hostname",
        "reject_unknown_sender_domain",
        "reject_unlisted_recipient",
        "reject_unlisted_sender",
        "reject_unverified_recipient",
        "reject_unverified_sender",
        "sleep",
        "warn_if_reject",
    ]
)

_HASH_AFTER_VALUE = re.compile(r"(?:^|\s)#")
_COMMENTED_SERVICE = re.compile(
    r"^#\s*(\S+)\s+(" + "|".join(re.escape(t) for t in SERVICE_TYPES) + r")\s"
)
_OPTION = re.compile(r"-o\s*\{?\s*([A-Za-z0-9_]+)")


class _Linter:
    def __init__(self, config: PostfixConfig) -> None:
        self.config = config
        self.main_cf = str(config.main_cf)
        self.master_cf = str(config.master_cf)
        self.findings: list[LintFinding] = []
        self.analysis: NameAnalysis = analyse_names(config)
        self.known = sorted(
            set(config.defaults.values) | set(config.service_defaults) | LEGACY_PARAMETERS
        )

    def add(
        self,
        check: str,
        file: str,
        line: int | None,
        parameter: str | None,
        message: str,
        fix: str,
        service: Service | None = None,
        severity: Severity | None = None,
    ) -> None:
        self.findings.append(
            LintFinding(
                check,
                severity or CHECKS[check][0],
                file,
                line,
                parameter,
                message,
                fix,
                service.key if service else None,
            )
        )

    def nearest(self, name: str) -> str | None:
        found = difflib.get_close_matches(name, self.known, n=1, cutoff=0.8)
        return found[0] if found else None

    # --- main.cf --------------------------------------------------------------------------

    def hash_in_main(self) -> None:
        lines = self.config.source_lines.get("main.cf", ())
        for definition in self.config.definitions:
            found = _HASH_AFTER_VALUE.search(definition.value)
            if found is None:
                continue
            line = definition.first_line
            for number in range(definition.first_line, definition.last_line + 1):
                text = lines[number - 1] if number <= len(lines) else ""
                if number == definition.first_line:
                    text = text.partition("=")[2]
                elif text.lstrip().startswith("#"):
                    continue  # a comment line inside the value: Postfix skips it
                if _HASH_AFTER_VALUE.search(text):
                    line = number
                    break
            kept = definition.value[found.start() :]
            self.add(
                "hash-in-value",
                self.main_cf,
                line,
                definition.name,
                f"{definition.name}: the text {kept.strip()!r} is part of the value; "
                "only a # at the start of a line is a comment",
                f"move the comment to its own line above: {definition.name} = "
                + definition.value[: found.start()].strip(),
            )

    def unknown_in_main(self) -> None:
        for unused in self.analysis.unused:
            if unused.file != "main.cf":
                continue
            definition = self.config.definition(unused.name)
            line = definition.first_line if definition else None
            name = unused.name
            if name in RESTRICTION_NAMES:
                self.add(
                    "restriction-as-parameter",
                    self.main_cf,
                    line,
                    name,
                    f"{name} is a restriction, not a parameter: `{name} = {unused.value}` "
                    "does nothing",
                    f"remove the line and add {name} to the restriction list where it "
                    "belongs (e.g. smtpd_sender_restrictions for login mismatches)",
                )
            elif name in OBSOLETE_PARAMETERS:
                continue  # reported as obsolete
            else:
                nearest = self.nearest(name)
                self.add(
                    "unknown-parameter",
                    self.main_cf,
                    line,
                    name,
                    f"{name} is not a Postfix parameter and nothing refers to it: Postfix "
                    "ignores it" + (f" (did you mean {nearest}?)" if nearest else ""),
                    f"rename it to {nearest}" if nearest else "remove it or fix its name",
                )

    def obsolete(self) -> None:
        for name, advice in OBSOLETE_PARAMETERS.items():
            definition = self.config.definition(name)
            if definition is not None:
                self.add(
                    "obsolete-parameter",
                    self.main_cf,
                    definition.first_line,
                    name,
                    f"{name} is obsolete or renamed",
                    advice,
                )
            for service in self.config.services:
                override = service.override(name)
                if override is not None:
                    self.add(
                        "obsolete-parameter",
                        self.master_cf,
                        override.line,
                        name,
                        f"-o {name} in {service.key} is obsolete or renamed",
                        advice,
                        service,
                    )

    def restriction_lists(self) -> None:
        classes = set(split_list(self.config.main.raw("smtpd_restriction_classes") or ""))
        for context in [
            self.config.main,
            *(self.config.effective(s) for s in self.config.services),
        ]:
            service = context.service
            names = list(service.overrides_dict()) if service else list(self.config.winning)
            for name in names:
                if not (name.endswith("_restrictions") or name in classes):
                    continue
                raw = context.raw(name) or ""
                for item in split_list(raw):
                    if item in OBSOLETE_RESTRICTIONS:
                        origin = context.origin(name)
                        self.add(
                            "obsolete-restriction",
                            self.master_cf if service else self.main_cf,
                            origin.line,
                            name,
                            f"{name}: {item} is obsolete or renamed",
                            f"use {OBSOLETE_RESTRICTIONS[item]}",
                            service,
                        )

    def duplicates(self) -> None:
        seen: dict[str, list[int]] = {}
        for definition in self.config.definitions:
            seen.setdefault(definition.name, []).append(definition.first_line)
        for name, lines in seen.items():
            if len(lines) < 2:
                continue
            winner = lines[-1]
            earlier = ", ".join(str(n) for n in lines[:-1])
            self.add(
                "duplicate-definition",
                self.main_cf,
                winner,
                name,
                f"{name} is defined {len(lines)} times (lines {earlier} and {winner}); "
                f"the last one, line {winner}, wins",
                f"delete the earlier definitions (line {earlier})",
            )
        for service in self.config.services:
            by_name: dict[str, list[int]] = {}
            for override in service.overrides:
                by_name.setdefault(override.name, []).append(override.line)
            for name, lines in by_name.items():
                if len(lines) > 1:
                    self.add(
                        "duplicate-definition",
                        self.master_cf,
                        lines[-1],
                        name,
                        f"-o {name} is given {len(lines)} times for {service.key}; "
                        f"the last one, line {lines[-1]}, wins",
                        "delete the earlier -o " + name,
                        service,
                    )

    def undefined(self) -> None:
        reported: set[tuple[str, str, str]] = set()
        for reference in self.analysis.undefined:
            key = (
                reference.name,
                reference.referenced_by,
                reference.service.key if reference.service else "",
            )
            if key in reported:
                continue
            reported.add(key)
            if reference.service is None:
                definition = self.config.definition(reference.referenced_by)
                file, line = self.main_cf, definition.first_line if definition else None
            else:
                override = reference.service.override(reference.referenced_by)
                file, line = self.master_cf, override.line if override else None
            self.add(
                "undefined-reference",
                file,
                line,
                reference.referenced_by,
                f"{reference.referenced_by} refers to ${reference.name}, which has no value: "
                "it expands to nothing",
                f"define {reference.name} in main.cf or fix the name",
                reference.service,
            )

    def loops(self) -> None:
        contexts: list[tuple[Context, list[str]]] = [(self.config.main, list(self.config.winning))]
        contexts += [
            (self.config.effective(s), list(s.overrides_dict())) for s in self.config.services
        ]
        for context, names in contexts:
            for name in names:
                try:
                    context.expansion(name)
                except (ExpansionError, RecursionError) as error:
                    origin = context.origin(name)
                    service = context.service
                    self.add(
                        "expansion-loop",
                        self.master_cf if origin.source == "master.cf" else self.main_cf,
                        origin.line,
                        name,
                        f"{name} cannot be expanded: {error}; Postfix stops with "
                        '"macro processing error"',
                        "break the loop or fix the $ syntax",
                        service,
                    )

    def read_only(self) -> None:
        for definition in self.config.definitions:
            if definition.name in READ_ONLY_PARAMETERS:
                self.add(
                    "read-only-assignment",
                    self.main_cf,
                    definition.first_line,
                    definition.name,
                    f"{definition.name} is set by Postfix itself; this assignment is ignored",
                    "remove the line",
                )
        for service in self.config.services:
            for override in service.overrides:
                if override.name in READ_ONLY_PARAMETERS:
                    self.add(
                        "read-only-assignment",
                        self.master_cf,
                        override.line,
                        override.name,
                        f"-o {override.name} is set by Postfix itself; it is ignored",
                        "remove the -o",
                        service,
                    )

    # --- master.cf ------------------------------------------------------------------------

    def unknown_overrides(self) -> None:
        for unused in self.analysis.unused:
            if unused.file != "master.cf" or unused.service is None:
                continue
            service = unused.service
            override = service.override(unused.name)
            name = unused.name
            if name in OBSOLETE_PARAMETERS:
                continue
            nearest = self.nearest(name)
            self.add(
                "unknown-override",
                self.master_cf,
                override.line if override else service.first_line,
                name,
                f"-o {name} in {service.key} is not a Postfix parameter and nothing refers "
                "to it: the service ignores it"
                + (f" (did you mean {nearest}?)" if nearest else ""),
                f"rename it to {nearest}" if nearest else "remove the -o or fix its name",
                service,
            )

    def hash_in_overrides(self) -> None:
        for service in self.config.services:
            for override in service.overrides:
                match = _HASH_AFTER_VALUE.search(override.value)
                if match:
                    self.add(
                        "hash-in-value",
                        self.master_cf,
                        override.line,
                        override.name,
                        f"-o {override.name}: {override.value[match.start() :].strip()!r} is part "
                        "of the value",
                        "put the comment on its own line starting with #",
                        service,
                    )

    def hash_in_arguments(self) -> None:
        """`-o name=value  # note`: the `#` ends the options; Postfix passes `#` and every
        word after it to the daemon as command-line arguments."""
        lines = self.config.source_lines.get("master.cf", ())
        for service in self.config.services:
            words = list(service.arguments)
            position = next((i for i, w in enumerate(words) if w.startswith("#")), None)
            if position is None:
                continue
            line = service.first_line
            for number in range(service.first_line, service.last_line + 1):
                text = lines[number - 1] if number <= len(lines) else ""
                if not text.lstrip().startswith("#") and _HASH_AFTER_VALUE.search(text):
                    line = number
                    break
            kept = " ".join(words[position:])
            self.add(
                "hash-in-value",
                self.master_cf,
                line,
                None,
                f"{kept!r} is not a comment: master.cf has comments only at the start of a "
                f"line, so Postfix passes these words to {service.program} of {service.key} "
                "as command-line arguments",
                "put the comment on its own line starting with #",
                service,
            )

    def master_layout(self) -> None:
        lines = self.config.source_lines.get("master.cf", ())
        by_line: dict[int, Service] = {}
        for service in self.config.services:
            for number in range(service.first_line, service.last_line + 1):
                by_line[number] = service
        gap: list[int] = []  # blank/comment lines since the last line of text
        # A commented-out service row seen in a gap: a reader takes the indented lines
        # below it as its options, Postfix gives them to the service above.
        commented: tuple[int, str] | None = None
        for index, text in enumerate(lines, start=1):
            stripped = text.strip()
            if not stripped or stripped.startswith("#"):
                gap.append(index)
                match = _COMMENTED_SERVICE.match(stripped)
                if match:
                    commented = (index, match.group(1))
                continue
            if text[0] not in " \t" or index not in by_line:
                gap = []
                commented = None
                continue
            service = by_line[index]
            option = _OPTION.search(text)
            parameter = option.group(1) if option else None
            what = f"-o {parameter}" if parameter else "this continuation line"
            if commented is not None:
                self.add(
                    "misplaced-override",
                    self.master_cf,
                    index,
                    parameter,
                    f"{what} sits under the commented-out service {commented[1]!r} "
                    f"(line {commented[0]}) but Postfix applies it to {service.key} "
                    f"(line {service.first_line})",
                    "comment this line out too, or move it directly under "
                    f"{service.key} if it is meant for that service",
                    service,
                )
            elif gap:
                self.add(
                    "continuation-after-gap",
                    self.master_cf,
                    index,
                    parameter,
                    f"{what} follows a blank or comment line; it still belongs to "
                    f"{service.key} (line {service.first_line})",
                    "remove the blank/comment line, or start this line in column 1 "
                    "if it should not continue the service",
                    service,
                )
            gap = []

    def read_problems(self) -> None:
        for problem in self.config.problems:
            if problem.line is None:
                continue
            file = problem.file
            is_master = file.endswith("master.cf")
            if "must not start with whitespace" in problem.message:
                self.add(
                    "ignored-line",
                    file,
                    problem.line,
                    None,
                    f"{problem.message}: Postfix ignores this line (it continues nothing)",
                    "start the line in column 1, or indent it under the line it continues",
                )
            elif is_master:
                service = next(
                    (s for s in self.config.services if s.first_line == problem.line), None
                )
                self.add(
                    "malformed-row",
                    file,
                    problem.line,
                    None,
                    problem.message,
                    "write -o name=value (or -o { name = value with spaces })",
                    service,
                )


def lint(config: PostfixConfig) -> list[LintFinding]:
    """Every finding for a configuration, sorted by file and line."""
    linter = _Linter(config)
    linter.hash_in_main()
    linter.unknown_in_main()
    linter.obsolete()
    linter.restriction_lists()
    linter.duplicates()
    linter.undefined()
    linter.loops()
    linter.read_only()
    linter.unknown_overrides()
    linter.hash_in_overrides()
    linter.hash_in_arguments()
    linter.master_layout()
    linter.read_problems()
    return sorted(
        linter.findings,
        key=lambda f: (f.file != linter.main_cf, f.file, f.line or 0, f.severity.rank, f.id),
    )


__all__ = [
    "CHECKS",
    "OBSOLETE_PARAMETERS",
    "OBSOLETE_RESTRICTIONS",
    "RESTRICTION_NAMES",
    "LintFinding",
    "Severity",
    "lint",
]
