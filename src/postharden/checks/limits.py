"""Limits: message size, recipients, connections and rates, errors and timeouts, queue
lifetimes; and numeric values Postfix cannot read."""

from __future__ import annotations

import re
from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, rfc_ref
from postharden.checks.env import CheckEnv
from postharden.checks.model import Category, Evidence, Fix, Hit, Severity, Unknown
from postharden.config import Context

INTEGER_PARAMETERS = (
    "message_size_limit",
    "mailbox_size_limit",
    "virtual_mailbox_limit",
    "header_size_limit",
    "smtpd_recipient_limit",
    "smtpd_client_connection_count_limit",
    "smtpd_client_connection_rate_limit",
    "smtpd_client_message_rate_limit",
    "smtpd_client_recipient_rate_limit",
    "smtpd_client_new_tls_session_rate_limit",
    "smtpd_client_auth_rate_limit",
    "smtpd_soft_error_limit",
    "smtpd_hard_error_limit",
    "smtpd_junk_command_limit",
    "smtpd_recipient_overshoot_limit",
    "default_process_limit",
    "queue_minfree",
    "smtpd_history_flush_threshold",
)
TIME_PARAMETERS = {
    # name: default unit
    "smtpd_timeout": "s",
    "maximal_queue_lifetime": "d",
    "bounce_queue_lifetime": "d",
    "anvil_rate_time_unit": "s",
    "smtpd_error_sleep_time": "s",
    "smtpd_starttls_timeout": "s",
    "smtpd_policy_service_timeout": "s",
    "delay_warning_time": "h",
}
_TIME = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str, default_unit: str) -> int | None:
    found = _TIME.match(value.strip())
    if not found:
        return None
    return int(found.group(1)) * _UNIT[found.group(2) or default_unit]


def integer(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isdigit() else None


def _contexts(env: CheckEnv) -> list[Context]:
    return [env.main, *(view.context for view in env.smtpd)]


@check(
    "PH-LIM-001",
    "A numeric parameter is not a number",
    Category.LIMITS,
    Severity.CRITICAL,
    implements=("checklist:limits", "runbook:postfix-check"),
    references=(postconf_ref("message_size_limit"), postconf_ref("maximal_queue_lifetime")),
)
def bad_numbers(env: CheckEnv) -> Iterable[Hit]:
    """A size, count or time parameter holds something other than a number.

    `#` starts a comment only at the beginning of a line: `message_size_limit = 25600000
    # 25MB` (found in published hardening guides) makes `# 25MB` part of the value, and
    every Postfix program, postmap and postconf included, stops with `fatal: bad
    numerical configuration`. The fix keeps the leading number.
    """
    for context in _contexts(env):
        service = context.service
        names = [o.name for o in service.overrides] if service else list(env.config.winning)
        for name in names:
            if name in INTEGER_PARAMETERS:
                value = context.expanded(name)
                if integer(value) is not None:
                    continue
                number = re.match(r"\s*(\d+)", value)
            elif name in TIME_PARAMETERS:
                value = context.expanded(name)
                if seconds(value, TIME_PARAMETERS[name]) is not None:
                    continue
                number = re.match(r"\s*(\d+[smhdw]?)\b", value)
            else:
                continue
            if number is None:
                fix = (
                    Fix(f"remove -o {name} (use the default)", master_remove=((service.key, name),))
                    if service
                    else Fix(f"remove {name} (use the default)", remove=(name,))
                )
            else:
                fix = env.set_fix(
                    context,
                    {name: number.group(1)},
                    f"keep the number ({number.group(1)}); comments go on their own line",
                )
            yield Hit(
                f"{name} = '{value}' is not a number: Postfix stops with "
                "'fatal: bad numerical configuration'",
                service=service.key if service else None,
                parameter=name,
                evidence=(
                    env.evidence(context, name, note="'#' after a value is part of the value"),
                ),
                fix=fix,
                location=env.location(context, name),
            )


def _numbers(context: Context, *names: str) -> list[int]:
    values = [integer(context.expanded(name)) for name in names]
    bad = [name for name, value in zip(names, values, strict=True) if value is None]
    if bad:
        raise Unknown(f"{', '.join(bad)} is not a number (see PH-LIM-001)")
    return [v for v in values if v is not None]


@check(
    "PH-LIM-002",
    "Message size limit is unlimited, huge, or above the mailbox limit",
    Category.LIMITS,
    Severity.MEDIUM,
    implements=("checklist:limits",),
    references=(postconf_ref("message_size_limit"), postconf_ref("mailbox_size_limit")),
)
def message_size(env: CheckEnv) -> Iterable[Hit]:
    """`message_size_limit` is 0 (unlimited) or above 100 MB, or larger than a non-zero
    `mailbox_size_limit`.

    An unlimited size lets one client fill the queue's disk. With `mailbox_size_limit`
    below `message_size_limit`, local(8) stops with a fatal configuration error.
    """
    context = env.main
    size, mailbox = _numbers(context, "message_size_limit", "mailbox_size_limit")
    # 40 MB fits the default mailbox_size_limit (51200000) and any smaller one set here.
    limit = str(min(40960000, mailbox or 40960000))
    if size == 0:
        yield Hit(
            "message_size_limit = 0: messages of any size are accepted",
            parameter="message_size_limit",
            evidence=(env.evidence(context, "message_size_limit"),),
            fix=Fix(f"limit messages to {limit} bytes", main_cf=(("message_size_limit", limit),)),
            location=env.location(context, "message_size_limit"),
        )
    elif size > 100 * 1024 * 1024:
        yield Hit(
            f"message_size_limit = {size} ({size // 1048576} MB)",
            parameter="message_size_limit",
            evidence=(env.evidence(context, "message_size_limit"),),
            fix=Fix(f"limit messages to {limit} bytes", main_cf=(("message_size_limit", limit),)),
            severity=Severity.LOW,
            location=env.location(context, "message_size_limit"),
        )
    if mailbox and size and mailbox < size:
        yield Hit(
            f"mailbox_size_limit {mailbox} is smaller than message_size_limit {size}: "
            "local delivery stops with a fatal error",
            parameter="mailbox_size_limit",
            evidence=(
                env.evidence(context, "mailbox_size_limit"),
                env.evidence(context, "message_size_limit"),
            ),
            fix=Fix(
                "make mailboxes hold at least one message",
                main_cf=(("mailbox_size_limit", str(max(size, 52428800) * 2)),),
            ),
            severity=Severity.HIGH,
            key="mailbox",
            location=env.location(context, "mailbox_size_limit"),
        )


@check(
    "PH-LIM-003",
    "Recipients per message are unlimited or very high",
    Category.LIMITS,
    Severity.LOW,
    implements=("checklist:limits",),
    references=(postconf_ref("smtpd_recipient_limit"), rfc_ref(5321, "4.5.3.1.8")),
)
def recipient_limit(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_recipient_limit` is 0 (unlimited) or above 1000 (the default).

    RFC 5321 requires accepting 100; more only helps bulk senders and spammers.
    """
    for context in [v.context for v in env.public_services()]:
        (limit,) = _numbers(context, "smtpd_recipient_limit")
        if 0 < limit <= 1000:
            continue
        service = context.service
        assert service is not None
        yield Hit(
            f"{service.key}: smtpd_recipient_limit = {limit}",
            service=service.key,
            parameter="smtpd_recipient_limit",
            evidence=(env.evidence(context, "smtpd_recipient_limit"),),
            fix=env.set_fix(
                context, {"smtpd_recipient_limit": "1000"}, "at most 1000 recipients per message"
            ),
            location=env.location(context, "smtpd_recipient_limit"),
        )


@check(
    "PH-LIM-004",
    "Concurrent connections per client are unlimited",
    Category.LIMITS,
    Severity.MEDIUM,
    implements=("checklist:limits",),
    references=(
        postconf_ref("smtpd_client_connection_count_limit"),
        postconf_ref("anvil_rate_time_unit"),
    ),
)
def connection_count(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_client_connection_count_limit = 0`: one client may hold every smtpd process.

    The default (50) is generous; with 0 a single host can exhaust `default_process_limit`
    and lock everyone else out.
    """
    for context in [v.context for v in env.public_services()]:
        (limit,) = _numbers(context, "smtpd_client_connection_count_limit")
        if limit > 0:
            continue
        service = context.service
        assert service is not None
        yield Hit(
            f"{service.key}: no limit on concurrent connections per client",
            service=service.key,
            parameter="smtpd_client_connection_count_limit",
            evidence=(env.evidence(context, "smtpd_client_connection_count_limit"),),
            fix=env.set_fix(
                context,
                {"smtpd_client_connection_count_limit": "20"},
                "at most 20 concurrent connections per client",
            ),
            location=env.location(context, "smtpd_client_connection_count_limit"),
        )


@check(
    "PH-LIM-005",
    "No connection rate limit on port 25",
    Category.LIMITS,
    Severity.LOW,
    implements=("checklist:limits",),
    references=(
        postconf_ref("smtpd_client_connection_rate_limit"),
        postconf_ref("anvil_rate_time_unit"),
        postconf_ref("smtpd_client_event_limit_exceptions"),
    ),
)
def connection_rate(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_client_connection_rate_limit = 0` (the default), or an `anvil_rate_time_unit`
    so long (over an hour) that the rate means nothing.

    A rate limit (connections per `anvil_rate_time_unit`, default 60s) slows down
    dictionary attacks and floods. Clients in `smtpd_client_event_limit_exceptions`
    (default `$mynetworks`) are exempt.
    """
    views = env.mx_services()
    unit = seconds(env.main.expanded("anvil_rate_time_unit"), "s")
    if unit is None:
        raise Unknown("anvil_rate_time_unit is not a time (see PH-LIM-001)")
    for view in views:
        context = view.context
        (rate,) = _numbers(context, "smtpd_client_connection_rate_limit")
        if rate > 0 and unit <= 3600:
            continue
        problem = (
            "no connection rate limit"
            if rate == 0
            else (f"{rate} connections per {unit}s is no limit")
        )
        settings = {"smtpd_client_connection_rate_limit": "60"} if rate == 0 else {}
        fix = env.set_fix(
            context,
            settings,
            "at most 60 connections per minute per client",
            caveat="busy legitimate senders outside mynetworks may be slowed",
        )
        if unit > 3600:
            fix = Fix(
                fix.summary,
                main_cf=(*fix.main_cf, ("anvil_rate_time_unit", "60s")),
                master_cf=fix.master_cf,
                caveat=fix.caveat,
            )
        yield Hit(
            f"{view.key}: {problem}",
            service=view.key,
            parameter="smtpd_client_connection_rate_limit",
            evidence=(
                env.evidence(context, "smtpd_client_connection_rate_limit"),
                env.evidence(env.main, "anvil_rate_time_unit"),
            ),
            fix=fix,
            location=env.location(context, "smtpd_client_connection_rate_limit"),
        )


@check(
    "PH-LIM-006",
    "Error limits or timeouts are lax",
    Category.LIMITS,
    Severity.LOW,
    implements=("checklist:limits",),
    references=(
        postconf_ref("smtpd_hard_error_limit"),
        postconf_ref("smtpd_soft_error_limit"),
        postconf_ref("smtpd_timeout"),
        postconf_ref("smtpd_junk_command_limit"),
    ),
)
def error_limits(env: CheckEnv) -> Iterable[Hit]:
    """Clients may make many errors, or idle long, before being dropped.

    Flags `smtpd_hard_error_limit` above 50 or below the soft limit,
    `smtpd_junk_command_limit` above 100, and `smtpd_timeout` above 600 seconds
    (RFC 5321 asks for 5 minutes; longer only ties up processes).
    """
    for context in [v.context for v in env.public_services()]:
        service = context.service
        assert service is not None
        soft, hard, junk = _numbers(
            context, "smtpd_soft_error_limit", "smtpd_hard_error_limit", "smtpd_junk_command_limit"
        )
        timeout = seconds(context.expanded("smtpd_timeout"), "s")
        if timeout is None:
            raise Unknown("smtpd_timeout is not a time (see PH-LIM-001)")
        problems: list[tuple[str, str, str]] = []
        if hard > 50 or hard == 0:
            problems.append(("smtpd_hard_error_limit", "20", f"hard error limit {hard}"))
        elif soft > hard:
            problems.append(
                (
                    "smtpd_soft_error_limit",
                    str(min(10, hard)),
                    f"soft error limit {soft} above the hard limit {hard}",
                )
            )
        if junk > 100 or junk == 0:
            problems.append(("smtpd_junk_command_limit", "100", f"junk command limit {junk}"))
        if timeout > 600:
            problems.append(("smtpd_timeout", "300s", f"timeout {timeout}s"))
        for name, value, text in problems:
            yield Hit(
                f"{service.key}: {text}",
                service=service.key,
                parameter=name,
                evidence=(env.evidence(context, name),),
                fix=env.set_fix(context, {name: value}, f"{name} = {value}"),
                location=env.location(context, name),
            )


@check(
    "PH-LIM-007",
    "Queue lifetimes lose or delay mail",
    Category.LIMITS,
    Severity.LOW,
    implements=("checklist:limits",),
    references=(
        postconf_ref("maximal_queue_lifetime"),
        postconf_ref("bounce_queue_lifetime"),
        rfc_ref(5321, "4.5.4.1"),
    ),
)
def queue_lifetimes(env: CheckEnv) -> Iterable[Hit]:
    """`maximal_queue_lifetime` under one day returns mail during short outages of the
    receiving side (medium); over ten days delays the sender's bounce far beyond RFC
    5321's 4-5 days; `bounce_queue_lifetime` above `maximal_queue_lifetime` keeps
    undeliverable bounces longer than mail.
    """
    context = env.main
    maximal = seconds(context.expanded("maximal_queue_lifetime"), "d")
    bounce = seconds(context.expanded("bounce_queue_lifetime"), "d")
    if maximal is None or bounce is None:
        raise Unknown("a queue lifetime is not a time (see PH-LIM-001)")
    day = 86400
    if maximal < day:
        yield Hit(
            f"maximal_queue_lifetime is {maximal}s: mail is returned after a short outage",
            parameter="maximal_queue_lifetime",
            evidence=(env.evidence(context, "maximal_queue_lifetime"),),
            fix=Fix("keep mail 5 days", main_cf=(("maximal_queue_lifetime", "5d"),)),
            severity=Severity.MEDIUM,
            location=env.location(context, "maximal_queue_lifetime"),
        )
    elif maximal > 10 * day:
        yield Hit(
            f"maximal_queue_lifetime is {maximal // day} days",
            parameter="maximal_queue_lifetime",
            evidence=(env.evidence(context, "maximal_queue_lifetime"),),
            fix=Fix("keep mail 5 days", main_cf=(("maximal_queue_lifetime", "5d"),)),
            location=env.location(context, "maximal_queue_lifetime"),
        )
    if bounce > max(maximal, day):
        yield Hit(
            f"bounce_queue_lifetime ({bounce // day} days) exceeds maximal_queue_lifetime",
            parameter="bounce_queue_lifetime",
            evidence=(
                env.evidence(context, "bounce_queue_lifetime"),
                env.evidence(context, "maximal_queue_lifetime"),
            ),
            fix=Fix(
                "bounces live as long as mail at most",
                main_cf=(("bounce_queue_lifetime", "$maximal_queue_lifetime"),),
            ),
            location=env.location(context, "bounce_queue_lifetime"),
        )


__all__ = ["Evidence"]
