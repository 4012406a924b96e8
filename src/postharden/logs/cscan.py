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
from postharden.logs.parser import classify_reason, header_time, is_postfix_program, parse_header
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
)
INSIDE, OUTSIDE, EXACT = 1, 0, 2


def available() -> bool:
    return _scan is not None


class Unsure(Exception):
    """The block holds something the scanner cannot prove equal: rescan it exactly."""


def _stamp_info(
    year: int, since: float | None, until: float | None
) -> Callable[[bytes], tuple[float, int, int, int]]:
    """-> callback: stamp (without a fraction) -> (seconds, hour, flag, month if yearless)."""

    def info(stamp: bytes) -> tuple[float, int, int, int]:
        h = parse_header(stamp.decode() + " h p: ")
        if h is None:  # pragma: no cover - the scanner only passes stamps of the parser
            return 0.0, 0, EXACT, 0
        ts = header_time(h, h.year if h.year is not None else year)
        hour = int(ts // 3600 * 3600) if ts else 0
        flag = INSIDE
        if since is not None or until is not None:
            # An RFC 3339 stamp can carry a fraction the key leaves out: a boundary
            # inside this second is decided per line by the parser.
            if h.year is not None and any(
                b is not None and ts < b <= ts + 1 for b in (since, until)
            ):
                flag = EXACT
            elif (since is not None and ts < since) or (until is not None and ts >= until):
                flag = OUTSIDE
        return ts, hour, flag, h.month if h.year is None else 0

    return info


def _reject_flags(action_b: bytes, text_b: bytes) -> int:
    """-1: the text could move the parser's split (the line goes to the parser);
    0: not a reject action; 1: a reject; 3: a relay-access-denied reject."""
    if action_b.decode() not in REJECT_ACTIONS:
        return 0
    text = text_b.decode()
    if any(u in text for u in _UNSAFE_TEXT):
        return -1
    reason = _reason(action_b, text_b)[0]
    return 3 if reason == "relay_denied" else 1


_REASONS: dict[tuple[bytes, bytes], tuple[str, str | None]] = {}


def _reason(action_b: bytes, text_b: bytes) -> tuple[str, str | None]:
    got = _REASONS.get((action_b, text_b))
    if got is None:
        reason, detail = classify_reason(text_b.decode())
        if action_b == b"milter-reject":
            reason = "greylisting" if reason == "greylisting" else "milter"
        if len(_REASONS) > 10_000:
            _REASONS.clear()
        got = _REASONS[(action_b, text_b)] = (reason, detail)
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
        block, _stamp_info(year, since, until), _is_postfix, _reject_flags, _disconnect_failures
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
    for action_b, text_b, n in r["rejects"]:
        action = action_b.decode()
        if action not in REJECT_ACTIONS:
            tally.other_actions[action] += n
            continue
        reason, detail = _reason(action_b, text_b)
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
