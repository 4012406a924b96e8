"""The compiled fast path: one block of whole lines -> Tally, with the C scanner `_scan`.

`_scan.scan` walks the block's bytes once. Lines of the frequent Postfix shapes (printable
ASCII, classic syslog / maillog_file or RFC 3339 headers) are counted in C straight into
the tables the report needs; every other line comes back as bytes and goes through the
exact parser, in order, exactly as in fastscan.py. What needs Python's own rules is asked
once per distinct value of the block through callbacks: the time of a stamp (and whether
it is inside the window), whether a program name is Postfix's, the reason class of a
reject text (and whether the text could move the parser's split of the line: then that
line goes to the parser), and the auth counts of a disconnect.

When the extension is not built (no compiler at install time), `available()` is False
and the caller uses fastscan.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from postharden.logs.analyze import COUNTERS, REJECT_ACTIONS, Tally
from postharden.logs.events import Kind
from postharden.logs.fastscan import _SASL_TAIL, _UNSAFE_TEXT, CAP, _auth_failures, _MonthParser
from postharden.logs.parser import (
    _DSN_ONLY,
    _ENVELOPE,
    _REPLY,
    classify_reason,
    header_time,
    is_postfix_program,
    parse_header,
)
from postharden.logs.reader import YearTracker

try:
    from postharden.logs import _scan  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a machine without a compiler at install time
    _scan = None

# The order of the C scanner's kinds (enum K_* in _scan.c).
KINDS = (
    Kind.CONNECT,
    Kind.DISCONNECT,
    Kind.CLIENT,
    Kind.SASL_LOGIN,
    Kind.MESSAGE_ID,
    Kind.QUEUED,
    Kind.DELIVERY,
    Kind.REMOVED,
    Kind.REJECT,
    Kind.SASL_FAILURE,
    Kind.SASL_ABORTED,
    Kind.LOST_CONNECTION,
    Kind.TIMEOUT,
    Kind.TOO_MANY_ERRORS,
    Kind.TLS_ESTABLISHED,
    Kind.PIPELINING,
    Kind.POSTSCREEN,
    Kind.EXPIRED,
    Kind.PICKUP,
    Kind.BOUNCE_NOTICE,
    Kind.DELIVERY_PROBLEM,
    Kind.LIFECYCLE,
    Kind.WARNING,
    Kind.RATE_LIMIT,
)
# Tables the C scanner fills that map one to one onto Tally counters.
_DIRECT = (
    "sasl_fail_client",
    "sasl_fail_mech",
    "relay_client",
    "reject_client",
    "reject_stage",
    "tls_protocols",
    "deliveries",
    "deferred_domain",
    "bounced_domain",
    "login_user",
    "login_user_client",
    "login_user_hour",
    "auth_fail_disconnect",
    "connection_problems",
    "postscreen",
    "warnings",
)


def available() -> bool:
    return _scan is not None


class Unsure(Exception):
    """The block holds something the scanner cannot prove equal: rescan it exactly."""


def _hour_info(year: int) -> Callable[[bytes], tuple[float, int, int]]:
    """-> callback: a stamp at minute 0, second 0 -> (seconds, month if yearless, usable).

    The scanner adds the minutes and seconds (and an RFC 3339 fraction) of each line:
    `header_time` is linear in them, and its local-time offset depends on the hour only.
    A stamp the parser dates 0.0 (a date `calendar.timegm` refuses) is left to it."""

    def info(stamp: bytes) -> tuple[float, int, int]:
        h = parse_header(stamp.decode() + " h p: ")
        if h is None:  # pragma: no cover - the scanner only passes stamps of the parser
            return 0.0, 0, 0
        ts = header_time(h, h.year if h.year is not None else year)
        return ts, h.month if h.year is None else 0, 1 if ts else 0

    return info


def _reject_flags(action_b: bytes, text_b: bytes, mode: int) -> int:
    """-1: the text could move the parser's split (the line goes to the parser);
    0: not a reject action; 1: a reject; 3: a relay-access-denied reject.
    Mode 0: TEXT is the reply text after `NNN N.N.N [<addr>: ]`, up to the envelope;
    mode 1: everything after the client (another reply shape)."""
    key = (action_b, text_b, mode)
    flags = _FLAGS.get(key)
    if flags is None:
        flags = 0
        if action_b.decode() in REJECT_ACTIONS:
            text = text_b.decode()
            if any(u in text for u in _UNSAFE_TEXT if mode == 0 or u == " from "):
                flags = -1
            else:
                flags = 3 if _reason(action_b, text_b, mode)[0] == "relay_denied" else 1
        if len(_FLAGS) > _CACHE:
            _FLAGS.clear()
        _FLAGS[key] = flags
    return flags


_CACHE = 10_000  # distinct reject texts remembered across the blocks of a worker
_FLAGS: dict[tuple[bytes, bytes, int], int] = {}


_REASONS: dict[tuple[bytes, bytes, int], tuple[str, str | None]] = {}


def _reply_text(rest: str) -> str:
    """What parser._reject classifies of the text after the client."""
    em = _ENVELOPE.search(rest)
    if em is not None:
        rest = rest[: em.start()]
    rm = _REPLY.match(rest)
    if rm is not None:
        return rm.group(3)
    dm = _DSN_ONLY.match(rest)
    return dm.group(2) if dm is not None else rest


def _reason(action_b: bytes, text_b: bytes, mode: int) -> tuple[str, str | None]:
    got = _REASONS.get((action_b, text_b, mode))
    if got is None:
        text = text_b.decode()
        reason, detail = classify_reason(_reply_text(text) if mode else text)
        if action_b == b"milter-reject":
            reason = "greylisting" if reason == "greylisting" else "milter"
        if len(_REASONS) > _CACHE:
            _REASONS.clear()
        got = _REASONS[(action_b, text_b, mode)] = (reason, detail)
    return got


def _disconnect_failures(tail: bytes) -> int:
    return _auth_failures(tail) if b"auth=" in tail else 0


def _is_postfix(program: bytes) -> bool:
    return is_postfix_program(program.decode())


def scan_c(
    block: bytes,
    year: int | None,
    month: int | None,
    reference: float,
    since: float | None,
    until: float | None,
    contains: Callable[[float | None], bool] | None,
) -> Tally | None:
    """Tally of a block of whole lines, or None when the block must be rescanned exactly."""
    if _scan is None or year is None or month is None:
        return None
    try:
        return _tally(block, year, month, reference, since, until, contains)
    except Unsure:
        return None


def _tally(
    block: bytes,
    year: int,
    month: int,
    reference: float,
    since: float | None,
    until: float | None,
    contains: Callable[[float | None], bool] | None,
) -> Tally:
    assert _scan is not None
    r: dict[str, Any] = _scan.scan(
        block, _hour_info(year), _is_postfix, _reject_flags, _disconnect_failures, since, until
    )
    if r["unsure"]:
        raise Unsure
    tally = Tally()
    tables: dict[str, dict[str, int]] = r["tables"]
    for name in _DIRECT:
        part = tables[name]
        if part:
            getattr(tally, name).update(part)
    for tail, n in tables["sasl_tail"].items():
        m = _SASL_TAIL.match(tail)
        assert m is not None  # the scanner only admits tails the rule accepts
        tally.sasl_fail_user[m.group(2) or "(not logged)"] += n
    for sender, (messages, size, rcpts) in r["senders"].items():
        tally.sender_messages[sender] += messages
        tally.sender_bytes[sender] += size
        tally.sender_rcpts[sender] += rcpts
    for action_b, text_b, mode, n in r["rejects"]:
        action = action_b.decode()
        if action not in REJECT_ACTIONS:
            tally.other_actions[action] += n
            continue
        reason, detail = _reason(action_b, text_b, mode)
        tally.reject_reason[reason] += n
        if reason == "rbl" and detail:
            tally.reject_rbl[detail] += n
        elif reason == "policy_service":
            tally.policy_servers["(451 4.3.5 reply)"] += n
    for hour, (rejects, relay, sasl) in r["hourly"].items():
        counts = tally.hourly[hour]
        if rejects:
            counts["rejects"] += rejects
        if relay:
            counts["relay_denied"] += relay
        if sasl:
            counts["sasl_failures"] += sasl
    for kind, n in zip(KINDS, r["kinds"], strict=True):
        if n:
            tally.kinds[kind] += n
    tally.lines_total = r["lines"]
    tally.lines_postfix = r["postfix"]
    tally.lines_other = r["other"]
    if "tmin" in r:
        tally.add_time(r["tmin"])
        tally.add_time(r["tmax"])
    months: set[int] = {month} | {m for m in range(1, 13) if r["months"] >> m & 1}

    # --- the other lines, in order, through the exact parser (samples keep their order)
    parser = _MonthParser(YearTracker(year, month), reference, months)
    exact = Tally()
    lines_total = 0
    for raw in r["odd"]:
        result = parser.parse(raw)
        event = result.event
        if event is not None and contains is not None and not contains(event.ts):
            continue
        lines_total += 1
        if result.invalid:
            exact.lines_invalid += 1
        elif event is None or event.kind is Kind.OTHER_PROGRAM:
            exact.lines_other += 1
        else:
            exact.add(event, result.text)
    # The year of every yearless line is the block's year only while no month can move
    # the tracker (a span of more than six months: New Year inside the block).
    if max(months) - min(months) > 6:
        raise Unsure
    tally.lines_total += lines_total
    tally.lines_postfix += exact.lines_postfix
    tally.lines_other += exact.lines_other
    tally.lines_invalid = exact.lines_invalid
    tally.add_time(exact.start)
    tally.add_time(exact.end)
    for name in COUNTERS:
        mine: Counter[str] = getattr(tally, name)
        theirs: Counter[str] = getattr(exact, name)
        if theirs:
            if name == "anvil_max":
                for key, value in theirs.items():
                    mine[key] = max(mine[key], value)
            else:
                mine.update(theirs)
        if len(mine) > CAP:
            raise Unsure  # the exact path would have pruned mid-block: let it
    tally.unparsed_samples = exact.unparsed_samples
    tally.fatal_samples = exact.fatal_samples
    for hour, counts in exact.hourly.items():
        tally.hourly[hour].update(counts)
    return tally
