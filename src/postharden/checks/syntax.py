"""Syntax: every finding of `postharden lint`, and restriction names written as
parameters (which Postfix ignores)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from postharden.checks.catalog import check, postconf_ref, readme_ref
from postharden.checks.env import CheckEnv
from postharden.checks.model import Category, Evidence, Fix, Hit, Severity, Unknown

RESTRICTION_NAME = re.compile(
    r"^(reject|permit|defer|check|warn_if_reject|reject_unauth|defer_if)(_[a-z0-9_]+)?$"
)
_LINT_SEVERITY = {
    "critical": Severity.CRITICAL,
    "fatal": Severity.CRITICAL,
    "error": Severity.HIGH,
    "high": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.INFO,
    "note": Severity.INFO,
}


def _attr(item: Any, *names: str) -> Any:
    for name in names:
        value = getattr(item, name, None)
        if value is not None:
            return value
    return None


def lint_hit(item: Any, config_dir: str) -> Hit:
    """A lint finding as an audit hit (the lint code stays visible in the message)."""
    code = str(_attr(item, "code", "id", "rule") or "lint")
    message = str(_attr(item, "message", "text") or item)
    severity_text = _attr(item, "severity", "level")
    severity_value = getattr(severity_text, "value", severity_text)
    severity = _LINT_SEVERITY.get(str(severity_value).lower()) if severity_value else None
    origin = _attr(item, "origin", "location")
    file = _attr(item, "file", "path")
    line = _attr(item, "line")
    if origin is None and file is not None:
        origin = f"{str(file).rsplit('/', 1)[-1]}:{line}" if line else str(file)
    origin_text = str(origin) if origin is not None else None
    location: tuple[str, int | None] | None = None
    if origin_text and ":" in origin_text:
        name, _, number = origin_text.rpartition(":")
        if number.isdigit():
            path = name if name.startswith("/") else f"{config_dir}/{name}"
            location = (path, int(number))
    parameter = _attr(item, "parameter", "name")
    service = _attr(item, "service")
    service_key = getattr(service, "key", service)
    raw_fix = _attr(item, "fix", "suggestion")
    fix = raw_fix if isinstance(raw_fix, Fix) else (Fix(str(raw_fix)) if raw_fix else None)
    return Hit(
        f"[{code}] {message}",
        service=str(service_key) if service_key else None,
        parameter=str(parameter) if parameter else None,
        evidence=(
            Evidence(origin=origin_text, text=str(_attr(item, "text", "source") or message)),
        ),
        fix=fix,
        key=f"{code}|{parameter or ''}|{message if parameter is None else ''}",
        severity=severity,
        location=location,
    )


@check(
    "PH-SYN-001",
    "postharden lint reports a configuration problem",
    Category.SYNTAX,
    Severity.MEDIUM,
    implements=("runbook:postfix-check",),
    references=(readme_ref("postconf.1"), postconf_ref("compatibility_level")),
)
def lint_findings(env: CheckEnv) -> Iterable[Hit]:
    """Every finding of `postharden lint` (syntax Postfix rejects or ignores: unused and
    undefined parameters, bad master.cf fields, expansion errors, obsolete names) is also
    an audit finding, with lint's own code and severity.
    """
    answer = env.facts.lint
    if not answer.available:
        raise Unknown(answer.reason or "lint is not available")
    config_dir = str(env.config.config_dir)
    for item in answer.value:
        yield lint_hit(item, config_dir)


@check(
    "PH-SYN-002",
    "A restriction name is written as a parameter",
    Category.SYNTAX,
    Severity.MEDIUM,
    implements=("runbook:postfix-check", "checklist:sender-login"),
    references=(readme_ref("SMTPD_ACCESS_README"), postconf_ref("smtpd_sender_restrictions")),
)
def restriction_as_parameter(env: CheckEnv) -> Iterable[Hit]:
    """`reject_sender_login_mismatch = yes` (or any restriction name) as a main.cf line.

    Restrictions work only inside a restriction list (`smtpd_sender_restrictions =
    reject_sender_login_mismatch, ...`). As a `name = value` line it is an unused
    parameter: Postfix only logs a warning and the protection the author believed in does
    not exist. The fix removes the line; PH-AUT-004 adds the restriction where it works.
    """
    known = env.config.defaults
    classes = set(env.main.list_value("smtpd_restriction_classes"))
    for definition in env.config.definitions:
        if definition.name in known or definition.name in classes:
            continue
        if not RESTRICTION_NAME.match(definition.name):
            continue
        if env.config.winning.get(definition.name) is not definition:
            continue
        yield Hit(
            f"{definition.name} = {definition.value} does nothing: it is a restriction, "
            "not a parameter",
            parameter=definition.name,
            evidence=(
                Evidence(
                    origin=f"main.cf:{definition.first_line}",
                    text=f"{definition.name} = {definition.value}",
                    note="Postfix ignores unused parameters",
                ),
            ),
            fix=Fix(
                f"remove {definition.name}; put it in the restriction list where it should act",
                remove=(definition.name,),
            ),
            location=(str(env.config.main_cf), definition.first_line),
        )
    for service in env.config.services:
        for override in service.overrides:
            if override.name in known or not RESTRICTION_NAME.match(override.name):
                continue
            yield Hit(
                f"-o {override.name}={override.value} on {service.key} does nothing",
                service=service.key,
                parameter=override.name,
                evidence=(
                    Evidence(
                        origin=f"master.cf:{override.line}",
                        text=f"-o {override.name}={override.value}",
                    ),
                ),
                fix=Fix(
                    f"remove -o {override.name}", master_remove=((service.key, override.name),)
                ),
                location=(str(env.config.master_cf), override.line),
            )
