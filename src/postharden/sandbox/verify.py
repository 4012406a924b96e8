"""`postharden verify`: run the real Postfix on a copy of a configuration and ask it.

``verify(config_dir) -> VerifyReport`` copies the configuration into a sandbox, asks every
smtpd service the relay matrix of the decision engine (``postharden.access``) through
XCLIENT, plus VRFY/EXPN/ETRN from an outside client, and puts what Postfix answered next
to what the engine predicted. ``done(config_dir, host=None) -> DoneReport`` turns that (and,
with a host, a live relay probe) into the runbook's Done criteria.

The production directory is only read: its checksums before and after are part of the
report.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postharden.sandbox import (
    Case,
    CheckResult,
    Outcome,
    Sandbox,
    SandboxError,
    postfix_available,
    postfix_version,
)

SCHEMA_VERSION = 1
OUTSIDE_ADDR = "203.0.113.7"
UNKNOWN_NAME = "[UNAVAILABLE]"
FOREIGN_RECIPIENT = "someone@relay-test.example"
# Clients the runbook allows to relay; any other class accepted for a foreign recipient is
# an open relay.
TRUSTED_CLIENTS = ("mynetworks", "sasl")


@dataclass
class Result:
    client: str
    sender: str
    recipient: str
    destination: str | None
    predicted: dict[str, Any] | None
    actual: dict[str, Any]
    disagrees: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "sender": self.sender,
            "recipient": self.recipient,
            "destination": self.destination,
            "predicted": self.predicted,
            "actual": self.actual,
            "disagrees": self.disagrees,
        }


@dataclass
class ServiceResult:
    name: str
    available: bool
    reason: str | None = None
    open_relay: bool | None = None
    results: list[Result] = field(default_factory=list)

    @property
    def disagreements(self) -> int:
        return sum(1 for r in self.results if r.disagrees)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "reason": self.reason,
            "open_relay": self.open_relay,
            "results": [r.as_dict() for r in self.results],
            "disagreements": self.disagreements,
        }


@dataclass
class VerifyReport:
    config_dir: str
    postfix_version: str
    predictions: str | None  # None: engine used; else why there are no predictions
    services: list[ServiceResult]
    postfix_check: CheckResult
    production_untouched: bool
    elapsed: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "config_dir": self.config_dir,
            "postfix_version": self.postfix_version,
            "predictions": self.predictions is None,
            "predictions_missing_reason": self.predictions,
            "postfix_check": {
                "clean": self.postfix_check.clean,
                "messages": list(self.postfix_check.messages),
            },
            "production_untouched": self.production_untouched,
            "services": [s.as_dict() for s in self.services],
        }


@dataclass
class _Planned:
    service: str
    client: str
    destination: str | None
    case: Case
    predicted: dict[str, Any] | None


def checksums(directory: Path) -> dict[str, str]:
    """sha256 and mode of every file under `directory` (symlinks by their target text)."""
    sums: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = str(path.relative_to(directory))
        if path.is_symlink():
            sums[relative] = "link:" + str(path.readlink())
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            sums[relative] = f"{digest}:{oct(path.stat().st_mode)}"
    return sums


def _plan_from_engine(config_dir: Path) -> tuple[list[_Planned], dict[str, str]] | str:
    """The relay matrix of the decision engine plus VRFY/EXPN/ETRN with the engine's
    predictions, or the reason it is not available."""
    try:
        from postharden.access import Engine, analyze_relay
        from postharden.config import load_config
    except ImportError as error:
        return f"the decision engine is not available ({error})"
    try:
        engine = Engine(load_config(config_dir))
        report = analyze_relay(engine.config, engine)
    except Exception as error:  # the engine's own errors must not sink the real answers
        return f"the decision engine failed: {error}"
    planned: list[_Planned] = []
    unavailable: dict[str, str] = {}
    for service in report.services:
        name = service.service.split("/")[0]
        if service.verdict == "unavailable":
            unavailable[name] = service.unavailable or "unavailable"
            planned.append(
                _Planned(
                    name,
                    "outside",
                    "foreign",
                    Case(name, OUTSIDE_ADDR, UNKNOWN_NAME, "mail.example.net", None,
                         "sender@example.org", FOREIGN_RECIPIENT),
                    {"command": "connect", "code": 0, "decision": "unavailable"},
                )
            )  # fmt: skip
            for command in _commands(name):
                command.predicted = {"command": "connect", "code": 0, "decision": "unavailable"}
                planned.append(command)
            continue
        for cell in service.matrix:
            context = cell.context
            case = Case(
                name,
                # XCLIENT takes an IPv6 address as IPV6:address.
                f"IPV6:{context.address}" if ":" in context.address else context.address,
                context.name or UNKNOWN_NAME,
                context.helo,
                context.sasl_user,
                context.sender,
                context.recipient,
                tls=context.tls,
            )
            predicted: dict[str, Any] = {
                "command": cell.decision.command,
                "code": cell.decision.code,
                "decision": cell.decision.decision,
            }
            predicted.update(_dns_dependence(cell.decision))
            planned.append(_Planned(name, cell.client, cell.destination, case, predicted))
        for command in _commands(name):
            try:
                decision = engine.decide(service.service, _context(command.case))
            except Exception as error:  # a prediction failure must not sink the real answers
                command.predicted = {"command": "error", "code": -1, "decision": str(error)}
            else:
                command.predicted = {
                    "command": decision.command,
                    "code": decision.code,
                    "decision": decision.decision,
                }
            planned.append(command)
    return planned, unavailable


def _context(case: Case) -> Any:
    """The engine's client context for a sandbox case (XCLIENT NAME [UNAVAILABLE]: unknown)."""
    from postharden.access import ClientContext

    verb = case.verb if case.verb in ("RCPT", "VRFY", "EXPN", "ETRN", "DATA") else "RCPT"
    return ClientContext(
        case.client_addr.removeprefix("IPV6:"),
        None if case.client_name == UNKNOWN_NAME else case.client_name,
        case.helo,
        case.sasl_login,
        case.sender,
        case.recipient,
        case.tls,
        verb,  # type: ignore[arg-type]
    )


def _plan_without_engine(sandbox: Sandbox) -> list[_Planned]:
    planned = []
    for name in sandbox.services:
        for client, login in (("outside", None), ("sasl", "relay-test-user")):
            for destination, recipient in (
                ("local", "postmaster@localhost"),
                ("foreign", FOREIGN_RECIPIENT),
            ):
                case = Case(name, OUTSIDE_ADDR, UNKNOWN_NAME, "mail.example.net", login,
                            "sender@example.org", recipient)  # fmt: skip
                planned.append(_Planned(name, client, destination, case, None))
    return planned


def _commands(service: str) -> list[_Planned]:
    """VRFY/EXPN of postmaster and ETRN from an outside client (predictions added by
    _plan_from_engine)."""
    planned = []
    for verb, argument in (("VRFY", "postmaster"), ("EXPN", "postmaster"), ("ETRN", "example.org")):
        case = Case(service, OUTSIDE_ADDR, UNKNOWN_NAME, "mail.example.net", None, "", argument,
                    verb=verb)  # fmt: skip
        planned.append(_Planned(service, "outside", None, case, None))
    return planned


def _dns_dependence(decision: Any) -> dict[str, Any]:
    """`depends_on_dns` and the other outcomes, for a prediction that hangs on DNS answers."""
    from postharden.sandbox.dns import DNS_RESTRICTIONS

    names = set(DNS_RESTRICTIONS)
    outside = [o for o in decision.outside if o.restriction.split()[0].lower() in names]
    if not outside:
        return {}
    return {
        "depends_on_dns": sorted({o.restriction for o in outside}),
        "alternatives": [
            {"command": o.if_yes.command, "code": o.if_yes.code} for o in decision.outside
        ],
    }


def _disagrees(predicted: dict[str, Any] | None, actual: Outcome, dns: str = "isolated") -> bool:
    if predicted is None:
        return False
    if predicted.get("depends_on_dns") and actual.available and actual.code is not None:
        if dns != "system":
            return False  # the sandbox's stub knows no names: the answer depends on DNS
        outcomes = [predicted, *predicted.get("alternatives", [])]
        return (actual.command, actual.code) not in {(o["command"], o["code"]) for o in outcomes}
    if predicted.get("decision") == "unavailable" or predicted.get("code") == 0:
        return actual.available
    if not actual.available:
        return True
    if actual.code is None:
        return False  # not asked (XCLIENT refused the case): no answer to compare
    return (predicted["command"], predicted["code"]) != (actual.command, actual.code)


def verify(config_dir: Path, *, workers: int = 4, dns: str = "isolated") -> VerifyReport:
    """`dns="isolated"` (default): when the configuration uses DNS-based restrictions, the
    sandbox resolves through a stub DNS server that knows no names (NXDOMAIN), in a private
    mount namespace, and predictions that depend on DNS are reported as such, not compared.
    `dns="system"`: the sandbox uses the machine's resolver, as production would."""
    import time

    reason = postfix_available()
    if reason:
        raise SandboxError(reason)
    started = time.monotonic()
    config_dir = config_dir.absolute()
    if not (config_dir / "main.cf").is_file():
        raise SandboxError(f"{config_dir}: no main.cf")
    before = checksums(config_dir)
    plan = _plan_from_engine(config_dir)
    isolation: dict[str, Any] = {}
    if dns != "system":
        from postharden.sandbox.dns import Zone, dns_restrictions

        texts = [config_dir / "main.cf", config_dir / "master.cf"]
        text = "\n".join(p.read_text(errors="replace") for p in texts if p.is_file())
        if dns_restrictions(text):
            isolation["dns"] = Zone({})
    with Sandbox.from_config_dir(config_dir, **isolation) as sandbox:
        if isinstance(plan, str):
            missing: str | None = plan
            planned = _plan_without_engine(sandbox)
            for name in sandbox.services:
                planned.extend(_commands(name))
        else:
            missing = None
            planned = [p for p in plan[0] if p.service in sandbox.services]
            asked = {p.service for p in planned if p.case.verb != "RCPT"}
            for name in sandbox.services:
                if name not in asked:  # a service the engine did not see: actual only
                    planned.extend(_commands(name))
        outcomes = sandbox.run([p.case for p in planned], workers=workers)
        check = sandbox.check()
        services: dict[str, ServiceResult] = {
            name: ServiceResult(name, True) for name in sandbox.services
        }
        for item, outcome in zip(planned, outcomes, strict=True):
            service = services[item.service]
            if not outcome.available:
                service.available = False
                service.reason = outcome.text
            actual: dict[str, Any] = {**outcome.as_dict(), "available": outcome.available}
            service.results.append(
                Result(
                    client=item.client,
                    sender=item.case.sender,
                    recipient=item.case.recipient,
                    destination=item.destination,
                    predicted=item.predicted,
                    actual=actual,
                    disagrees=_disagrees(item.predicted, outcome, dns),
                )
            )
        for service in services.values():
            service.open_relay = _open_relay(service)
    after = checksums(config_dir)
    report = VerifyReport(
        config_dir=str(config_dir),
        postfix_version=postfix_version(),
        predictions=missing,
        services=list(services.values()),
        postfix_check=check,
        production_untouched=before == after,
    )
    report.elapsed = time.monotonic() - started
    return report


def _open_relay(service: ServiceResult) -> bool | None:
    if not service.available:
        return None
    foreign = [
        r
        for r in service.results
        if r.destination == "foreign"
        and r.client not in TRUSTED_CLIENTS
        and r.actual["command"] == "rcpt"
    ]
    relay_results = [
        r for r in service.results if r.destination == "foreign" and r.client not in TRUSTED_CLIENTS
    ]
    if not relay_results:
        return None
    if any(r.actual["code"] is not None and 200 <= r.actual["code"] < 300 for r in foreign):
        return True
    if all(r.actual["code"] is not None and r.actual["code"] >= 500 for r in relay_results):
        return False
    return None


# -- the runbook's Done criteria ---------------------------------------------------------


@dataclass
class Criterion:
    id: str
    status: str  # pass | fail | unknown
    title: str
    evidence: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "title": self.title,
            "evidence": self.evidence,
        }


@dataclass
class DoneReport:
    config_dir: str
    host: str | None
    criteria: list[Criterion]

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "config_dir": self.config_dir,
            "host": self.host,
            "criteria": [c.as_dict() for c in self.criteria],
        }


def _mynetworks(config_dir: Path) -> list[str] | str:
    result = subprocess.run(
        ["postconf", "-c", str(config_dir), "-h", "mynetworks"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        return result.stderr.strip()[:200] or "postconf failed"
    return result.stdout.replace(",", " ").split()


def _too_wide(network: str) -> str | None:
    text = network.strip("[]").replace("]/", "/")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None  # a name or a table: not judged here
    if net.prefixlen == 0:
        return f"{network} trusts every address"
    if net.is_loopback or net.is_private or net.is_link_local:
        return None
    limit = 24 if net.version == 4 else 48
    if net.prefixlen < limit:
        return f"{network} trusts {net.num_addresses} public addresses"
    return None


def done(
    config_dir: Path,
    *,
    host: str | None = None,
    timeout: float = 5.0,
    workers: int = 4,
    dns: str = "isolated",
) -> DoneReport:
    """The runbook's Done criteria, from a `verify` run (`workers`, `dns` as there)."""
    report = verify(config_dir, workers=workers, dns=dns)
    criteria: list[Criterion] = []

    # 1. reject_unauth_destination ahead of any permit: every service refuses an outside
    # client's foreign recipient (the real Postfix says so), and the engine sees no shadow.
    evidence, status = [], "pass"
    for service in report.services:
        if not service.available:
            evidence.append(f"{service.name}: smtpd refuses to run: {service.reason}")
            status = "fail"
            continue
        outside = [
            r for r in service.results if r.destination == "foreign" and r.client == "outside"
        ]
        for r in outside[:1]:
            evidence.append(
                f"{service.name}: outside client, RCPT TO:<{r.recipient}> -> "
                f"{r.actual['code']} {r.actual['text']}"
            )
        if service.open_relay:
            status = "fail"
        elif service.open_relay is None and status == "pass":
            status = "unknown"
    criteria.append(Criterion("relay-restricted", status,
                              "reject_unauth_destination ahead of any permit on every service",
                              evidence))  # fmt: skip

    # 2. mynetworks limited.
    networks = _mynetworks(Path(report.config_dir))
    if isinstance(networks, str):
        criteria.append(
            Criterion("mynetworks-limited", "unknown", "mynetworks limited", [networks])
        )
    else:
        wide = [w for w in (_too_wide(n) for n in networks) if w]
        criteria.append(
            Criterion(
                "mynetworks-limited",
                "fail" if wide else "pass",
                "mynetworks limited",
                wide or [f"mynetworks = {' '.join(networks)}"],
            )
        )

    # 3. VRFY disabled on every service (502 from the real Postfix).
    evidence, status = [], "pass"
    for service in report.services:
        for r in service.results:
            if r.actual["command"] == "vrfy":
                evidence.append(
                    f"{service.name}: VRFY postmaster -> {r.actual['code']} {r.actual['text']}"
                )
                if r.actual["code"] != 502:
                    status = "fail"
    if not evidence:
        status = "unknown"
    criteria.append(Criterion("vrfy-disabled", status, "VRFY disabled", evidence))

    # 4. postfix check clean (on the copy).
    check = report.postfix_check
    criteria.append(
        Criterion(
            "postfix-check",
            "pass" if check.clean else "fail",
            "postfix check clean",
            list(check.messages) or ["postfix check printed nothing (run on a copy)"],
        )
    )

    # 5. External relay attempt refused: live, when a host is given; else in the sandbox.
    if host is not None:
        from postharden.probe import ProbeOptions, probe

        live = probe(host, ProbeOptions(ports=(25,), timeout=timeout))
        live_service = live.services[0]
        relay_tests = [
            t for t in live_service.tests if t.id.startswith("relay.") and t.id != "relay.control"
        ]
        failed = [t for t in relay_tests if t.status == "fail"]
        status = {True: "fail", False: "pass", None: "unknown"}[live_service.open_relay]
        evidence = [f"probe of {host} from {live.source_address}: "
                    f"{len(relay_tests) - len(failed)}/{len(relay_tests)} relay forms refused"]  # fmt: skip
        evidence += [f"{t.id}: {t.detail}" for t in failed[:5]] + live.warnings
    else:
        status = criteria[0].status
        evidence = ["no --host: judged from the sandbox's outside client", *criteria[0].evidence]
    criteria.append(
        Criterion("external-relay-refused", status, "external relay attempt refused", evidence)
    )
    return DoneReport(report.config_dir, host, criteria)
