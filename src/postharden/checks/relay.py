"""Relay: the results of the relay analysis (postharden.access) as findings.

These checks never look for `reject_unauth_destination` themselves: the decision engine
evaluates the restriction lists in Postfix's order for every client class and
destination. When the analysis is not available, they are `unknown` (never passed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from postharden.checks.catalog import check, postconf_ref, readme_ref
from postharden.checks.env import CheckEnv
from postharden.checks.model import Category, Evidence, Fix, Hit, NotApplicable, Severity, Unknown
from postharden.config import Context

SAFE_RELAY = "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
SAFE_MYNETWORKS = "127.0.0.0/8 [::1]/128"
# Risk ids of the relay analysis -> the check that reports them. Any other id goes to
# PH-REL-009 so that no result of the analysis is lost.
RISK_CHECKS = {
    "permit-shadows-reject": "PH-REL-003",
    "access-ok-before-reject": "PH-REL-003",
    "mynetworks-wide": "PH-REL-004",
    "mynetworks-everything": "PH-REL-004",
    "mynetworks-style": "PH-REL-005",
    "permit-mx-backup": "PH-REL-006",
}
RISK_SEVERITY = {"mynetworks-everything": Severity.CRITICAL}


def _report(env: CheckEnv) -> Any:
    answer = env.facts.relay
    if not answer.available:
        raise Unknown(answer.reason or "the relay analysis is not available")
    report = answer.value
    if not getattr(report, "services", ()):
        raise NotApplicable("no smtpd service to analyse")
    return report


def _context(env: CheckEnv, service_name: str) -> Context:
    try:
        return env.config.effective(env.config.service(service_name))
    except Exception:  # the analysis names a service the model cannot find: use main.cf
        return env.main


def _service_key(env: CheckEnv, service_name: str) -> str:
    context = _context(env, service_name)
    return context.service.key if context.service is not None else service_name


def _relay_fix(env: CheckEnv, context: Context) -> Fix:
    service = context.service
    per_service = service is not None and any(
        service.override(n) is not None
        for n in ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
    )
    return env.set_fix(
        context,
        {"smtpd_relay_restrictions": SAFE_RELAY},
        "relay only for mynetworks and authenticated clients",
        per_service=per_service,
    )


def _origin_location(env: CheckEnv, origin: str) -> tuple[str, int | None] | None:
    name, _, number = origin.rpartition(":")
    if name in ("main.cf", "master.cf") and number.isdigit():
        path = env.config.main_cf if name == "main.cf" else env.config.master_cf
        return (str(path), int(number))
    return None


def _risks(env: CheckEnv, check_id: str) -> Iterator[tuple[Any, Any]]:
    for service in _report(env).services:
        for risk in service.risks:
            if RISK_CHECKS.get(risk.id, "PH-REL-009") == check_id:
                yield service, risk


def _risk_hit(env: CheckEnv, service: Any, risk: Any, fix: Fix | None) -> Hit:
    return Hit(
        f"{service.service}: {risk.message}",
        service=_service_key(env, service.service),
        evidence=(Evidence(origin=risk.origin, text=risk.message),),
        fix=fix,
        key=risk.id,
        severity=RISK_SEVERITY.get(risk.id),
        location=_origin_location(env, risk.origin),
    )


@check(
    "PH-REL-001",
    "Open relay",
    Category.RELAY,
    Severity.CRITICAL,
    implements=("runbook:no-relay", "runbook:relay-order"),
    references=(readme_ref("SMTPD_ACCESS_README"), postconf_ref("smtpd_relay_restrictions")),
)
def open_relay(env: CheckEnv) -> Iterable[Hit]:
    """A client from outside (or from a network trusted by mistake) can send mail through
    this service to domains the server does not own.

    The relay analysis evaluates the restriction lists exactly as Postfix does, for every
    client class and destination, and names the shortest path: which client, which rule,
    where it is configured. An open relay is blocklisted within hours.
    """
    for service in _report(env).services:
        if service.verdict != "open":
            continue
        path = service.path
        evidence = [Evidence(origin=service.origin, text=service.summary)]
        if path is not None:
            evidence.append(
                Evidence(
                    origin=path.origin, text=f"{path.client} -> {path.destination} via {path.rule}"
                )
            )
        context = _context(env, service.service)
        through_mynetworks = path is not None and path.rule.startswith("permit_mynetworks")
        fix = (
            env.set_fix(
                context,
                {"mynetworks": SAFE_MYNETWORKS},
                "trust loopback only (add your own networks explicitly)",
                caveat="hosts that relayed from other networks need SASL",
            )
            if through_mynetworks
            else _relay_fix(env, context)
        )
        yield Hit(
            f"{service.service} ({service.listen}) relays: {service.summary}",
            service=_service_key(env, service.service),
            parameter="mynetworks" if through_mynetworks else "smtpd_relay_restrictions",
            evidence=tuple(evidence),
            fix=fix,
            location=_origin_location(env, path.origin if path else service.origin),
        )


@check(
    "PH-REL-002",
    "smtpd refuses to run (no working relay restriction)",
    Category.RELAY,
    Severity.HIGH,
    implements=("runbook:relay-order", "runbook:postfix-check"),
    references=(postconf_ref("smtpd_relay_restrictions"), readme_ref("SMTPD_ACCESS_README")),
)
def unavailable(env: CheckEnv) -> Iterable[Hit]:
    """Neither relay list has a working `reject_unauth_destination` (or `reject`,
    `defer`, ...): Postfix refuses to run smtpd and the port answers nothing.

    That is an outage, not an open relay; it is what a literal `permit` before
    `reject_unauth_destination` causes in Postfix 3.7 ("restriction ... after permit is
    ignored").
    """
    for service in _report(env).services:
        if service.verdict != "unavailable":
            continue
        context = _context(env, service.service)
        yield Hit(
            f"{service.service}: {service.unavailable or service.summary}",
            service=_service_key(env, service.service),
            parameter="smtpd_relay_restrictions",
            evidence=(
                Evidence(origin=service.origin, text=service.unavailable or service.summary),
            ),
            fix=_relay_fix(env, context),
            location=_origin_location(env, service.origin),
        )


@check(
    "PH-REL-003",
    "A permit shadows reject_unauth_destination",
    Category.RELAY,
    Severity.HIGH,
    implements=("runbook:relay-order",),
    references=(readme_ref("SMTPD_ACCESS_README", "lists"),),
)
def shadowing_permit(env: CheckEnv) -> Iterable[Hit]:
    """Restriction lists stop at the first permit: a `permit` (or an access map answering
    `OK`) placed before `reject_unauth_destination` lets the relay check never run for
    the clients it matches, although the reject is still in the list (the runbook's order
    rule: reject_unauth_destination ahead of any permit).
    """
    for service, risk in _risks(env, "PH-REL-003"):
        yield _risk_hit(env, service, risk, _relay_fix(env, _context(env, service.service)))


@check(
    "PH-REL-004",
    "mynetworks trusts more than loopback and the admin's networks",
    Category.RELAY,
    Severity.HIGH,
    implements=("runbook:mynetworks",),
    references=(postconf_ref("mynetworks"),),
)
def broad_mynetworks(env: CheckEnv) -> Iterable[Hit]:
    """`permit_mynetworks` relays for everyone in `mynetworks`; `0.0.0.0/0` or a wide
    network there is an open relay for that network.

    The fix limits it to loopback; add the networks you really own by hand.
    """
    for service, risk in _risks(env, "PH-REL-004"):
        yield _risk_hit(
            env,
            service,
            risk,
            Fix(
                "trust loopback only (add your own networks explicitly)",
                main_cf=(("mynetworks", SAFE_MYNETWORKS),),
                caveat="hosts that relayed through this server from other networks need SASL",
            ),
        )


@check(
    "PH-REL-005",
    "mynetworks derived from mynetworks_style subnet or class",
    Category.RELAY,
    Severity.MEDIUM,
    implements=("runbook:mynetworks",),
    references=(postconf_ref("mynetworks_style"),),
)
def mynetworks_style(env: CheckEnv) -> Iterable[Hit]:
    """With `mynetworks` unset, `mynetworks_style = subnet` (the default below
    compatibility level 2) or `class` trusts every host on this machine's networks: on a
    cloud VM or a docker bridge, strangers.
    """
    for service, risk in _risks(env, "PH-REL-005"):
        yield _risk_hit(
            env, service, risk, Fix("trust this host only", main_cf=(("mynetworks_style", "host"),))
        )


@check(
    "PH-REL-006",
    "permit_mx_backup relays for any domain that lists this host as MX",
    Category.RELAY,
    Severity.MEDIUM,
    implements=("runbook:relay-order",),
    references=(postconf_ref("permit_mx_backup"), postconf_ref("permit_mx_backup_networks")),
)
def mx_backup(env: CheckEnv) -> Iterable[Hit]:
    """`permit_mx_backup` accepts mail for any domain whose DNS names this server as an
    MX: whoever controls a domain's DNS can make this server relay for it. It is
    deprecated; list backup domains in `relay_domains` instead.
    """
    for service, risk in _risks(env, "PH-REL-006"):
        yield _risk_hit(
            env,
            service,
            risk,
            Fix("list the backup domains in relay_domains and remove permit_mx_backup"),
        )


@check(
    "PH-REL-007",
    "smtpd_relay_restrictions is not defined",
    Category.RELAY,
    Severity.MEDIUM,
    implements=("runbook:relay-order",),
    references=(postconf_ref("smtpd_relay_restrictions"), postconf_ref("compatibility_level")),
)
def relay_restrictions_defined(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_relay_restrictions` is empty (the default below compatibility level 1, or
    set empty): relay control then rests on `smtpd_recipient_restrictions` alone, where
    an anti-spam edit can reopen the relay. Postfix >= 2.10 keeps relay rules in their
    own list.
    """
    views = env.services()
    if not views:
        raise NotApplicable("no smtpd service")
    for view in views:
        context = view.context
        if context.list_value("smtpd_relay_restrictions"):
            continue
        yield Hit(
            f"{view.key}: smtpd_relay_restrictions is empty",
            service=view.key,
            parameter="smtpd_relay_restrictions",
            evidence=(
                env.evidence(context, "smtpd_relay_restrictions"),
                env.evidence(env.main, "compatibility_level"),
            ),
            fix=_relay_fix(env, context),
            location=env.location(context, "smtpd_relay_restrictions"),
        )


@check(
    "PH-REL-008",
    "Relaying depends on an outside answer (DNS, policy service)",
    Category.RELAY,
    Severity.MEDIUM,
    implements=("runbook:no-relay",),
    references=(readme_ref("SMTPD_POLICY_README"), postconf_ref("smtpd_relay_restrictions")),
)
def relay_depends(env: CheckEnv) -> Iterable[Hit]:
    """Whether the service relays depends on a DNS lookup or a policy service's answer
    (e.g. `check_policy_service` or `permit_dnswl_client` before
    `reject_unauth_destination`): whoever controls that answer controls the relay.
    """
    for service in _report(env).services:
        if service.verdict != "depends":
            continue
        yield Hit(
            f"{service.service}: {service.summary}",
            service=_service_key(env, service.service),
            parameter="smtpd_relay_restrictions",
            evidence=(Evidence(origin=service.origin, text=service.summary),),
            fix=_relay_fix(env, _context(env, service.service)),
            location=_origin_location(env, service.origin),
        )


@check(
    "PH-REL-009",
    "Other relay risk found by the relay analysis",
    Category.RELAY,
    Severity.MEDIUM,
    implements=("runbook:relay-order",),
    references=(readme_ref("SMTPD_ACCESS_README"),),
)
def other_risks(env: CheckEnv) -> Iterable[Hit]:
    """Any other risk the relay analysis reports (for example unrestricted
    `permit_sasl_authenticated` on port 25 without TLS-only AUTH), so that every result of
    the analysis is in the audit.
    """
    for service, risk in _risks(env, "PH-REL-009"):
        yield _risk_hit(env, service, risk, Fix(f"review {risk.origin}: {risk.message}"))


__all__ = ["Severity"]
