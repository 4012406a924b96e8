"""The fast path: one block of whole lines -> Tally, with one regex pass in C.

One compiled pattern matches every line of the block exactly once (`re.findall`): lines
of the frequent, well-understood shapes (connect, client=, queue and delivery lines,
rejects, SASL failures, TLS, postscreen...) match a branch that captures only the fields
the report needs; any other line (a shape no branch knows, a truncated line, another
program, journal records, non-ASCII or control bytes, over-long lines) falls to the last
branch, which captures the raw line, and only that line goes through the exact parser.
Fallback is per line, never per block.

Each branch is written so that a line it matches is one the exact parser turns into the
same event (same kind, same fields the tally uses): character classes are printable
ASCII only (so the bytes pattern means what the str pattern of the parser means),
quantifiers are bounded (so a matched line is never an over-long one), and every branch
runs to the end of its line. What a regex cannot prove (a reject text that could change
the parser's envelope split, a block whose months could move the year) is checked on
the distinct values after the pass; when the check fails the caller rescans the block
exactly, so the result is the exact path's in every case.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import filterfalse
from operator import itemgetter
from typing import Any

from postharden.logs.analyze import COUNTERS, Tally, _domain, _warning_key
from postharden.logs.events import Event, Kind
from postharden.logs.parser import (
    MONTHS,
    POSTFIX_PROGRAMS,
    Header,
    _warning,
    classify_reason,
    header_time,
    service_of,
)
from postharden.logs.reader import LineParser, YearTracker

# Printable-ASCII classes (a bytes `\S` would also accept bytes a str `\S` rejects).
_NS = rb"[!-~]"  # not space
_NAME = rb"[!-Z\\^-~]"  # client name: no space, no brackets
_IP = rb"[!-\\^-~]"  # inside [...]: no space, no ]
_ANGLE = rb"[!-=?-~]"  # inside <...>: no space, no >
_NOCOMMA = rb"[ -+\--~]"  # printable, no comma
_ADDR = rb"[ -+\--=?-~]"  # printable, no comma, no >
_CLIENT = _NAME + rb"{0,255}\[%s\](?::\d{1,5})?"
_TAIL = rb"[ -~]{0,8000}(?=\n)"

# The parser's header split (`([^\s\[]+?)(?:\[(\d+)\])?: `) is unique, since a program
# name holds neither a space nor `[`: the greedy form finds the same one, much faster.
# Only Postfix programs (parser.is_postfix_program): other programs' lines go exact.
_P = rb"[!-Z\\-~]"  # a program name's characters
_P1 = rb"[!-.0-Z\\-~]"  # the same without /
_NAMES = b"|".join(re.escape(n.encode()) for n in sorted(POSTFIX_PROGRAMS, key=len, reverse=True))
_HEADER = (
    rb"(?P<ts>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d)(?:\.\d{1,9})? [!-~]{1,255} "
    rb"(?P<prog>postfix" + _P1 + rb"{0,255}/" + _P + rb"{0,255}"
    rb"|" + _P1 + rb"{0,255}/(?:" + _P + rb"{0,255}/)?(?:" + _NAMES + rb"))"
    rb"(?:\[\d{1,10}\])?: "
)
_QID = rb"(?:NOQUEUE|[0-9A-Z]{5,24}|(?=[A-Za-z]*\d)[0-9A-Za-z]{10,20}): "
_STAGES = rb"CONNECT|HELO|EHLO|MAIL|RCPT|DATA|BDAT|END-OF-MESSAGE|VRFY|ETRN|AUTH|STARTTLS"
_VERDICTS = (
    rb"PASS NEW|PASS OLD|PREGREET|DNSBL|HANGUP|COMMAND PIPELINING|COMMAND TIME LIMIT|"
    rb"COMMAND COUNT LIMIT|COMMAND LENGTH LIMIT|NON-SMTP COMMAND|BARE NEWLINE|WHITELISTED|"
    rb"ALLOWLISTED|BLACKLISTED|DENYLISTED|WHITELIST VETO|ALLOWLIST VETO|CONNECT|DISCONNECT"
)


def _client(name: str) -> bytes:
    return _CLIENT % (rb"(?P<" + name.encode() + rb">" + _IP + rb"{0,100})",)


_BRANCHES = [
    # connect from name[ip]
    rb"(?P<cn>c)onnect from " + _CLIENT % (_IP + rb"{0,100}",) + rb"(?=\n)",
    # disconnect from name[ip] ehlo=1 auth=0/1 ... (the auth counts matter)
    rb"(?P<dc>d)isconnect from " + _client("dcip") + rb"(?P<dct>[ -~]{0,2000})(?=\n)",
    # QID: ...
    _QID
    + rb"(?:"
    + rb"(?P<cl>c)lient="
    + _client("clip")
    + rb"(?:, sasl_method="
    + _NS.replace(b"!-~", b"!-+\\--~")
    + rb"{1,100}, sasl_username=(?P<clu>"
    + _NOCOMMA
    + rb"{0,255}))?(?=\n)"
    + rb"|(?P<mi>m)essage-id="
    + _TAIL
    + rb"|from=<(?P<qs>"
    + _ADDR
    + rb"{0,1000})>, size=(?P<qz>\d{1,15}), nrcpt=(?P<qn>\d{1,9})(?!\d)"
    + _TAIL
    + rb"|to=<(?P<dr>"
    + _ADDR
    + rb"{0,1000})>, (?:orig_to=<"
    + _ADDR
    + rb"{0,1000}>, )?relay="
    + _NOCOMMA
    + rb"{0,1000}, [ -~]{0,2000}?dsn=\d\.\d{1,3}\.\d{1,3}, status=(?P<ds>"
    + _NS
    + rb"{1,100})(?: \([ -~]{0,8000}\))?(?=\n)"
    + rb"|(?P<rm>r)emoved(?=\n)"
    + rb"|(?P<ex>f)rom=<"
    + _ADDR
    + rb"{0,1000}>, status=[!-~]{0,100}expired"
    + _TAIL
    + rb"|(?P<bn>s|p)(?:ender|ostmaster) (?:non-delivery|delivery status|delay) notification: "
    + rb"[0-9A-Za-z]{1,30}(?=\n)"
    + rb"|(?P<pk>u)id=\d{1,10} from=<"
    + _ANGLE
    + rb"{0,1000}>(?=\n)"
    # reject: STAGE from name[ip]: 554 5.7.1 <addr>: text; from=<> to=<> proto=P helo=<>
    + rb"|(?!warning: |fatal: |panic: |error: )(?P<ra>[a-z][a-z_-]{0,28}): (?P<rs>"
    + _STAGES
    + rb") from "
    + _client("rip")
    + rb": \d{3} \d\.\d{1,3}\.\d{1,3} (?:<(?P<raddr>"
    + _ANGLE.replace(b"!-=", b"!-;=")
    + rb"{0,1000})>: )?(?P<rt>[ -~]{0,4000}?); (?:from=<"
    + _ANGLE
    + rb"{0,1000}> )?(?:to=<"
    + _ANGLE
    + rb"{0,1000}> )?proto="
    + _NS
    + rb"{1,100}?(?: helo=<"
    + _ANGLE
    + rb"{0,1000}>)?(?=\n)"
    + rb")",
    # warning: name[ip]: SASL LOGIN authentication failed: ..., sasl_username=u
    rb"(?P<wr>w)arning: "
    + rb"(?:"
    + _client("sip")
    + rb": SASL (?P<sm>"
    + _NS
    + rb"{1,100}) authentication (?P<sk>failed|aborted)(?P<st>(?::[ -~]{0,4000})?)(?=\n)"
    + rb"|(?P<wd>[ -~]{0,8000})(?=\n))",
    # lost connection / timeout / too many errors after STAGE from name[ip]
    rb"(?:"
    + _QID
    + rb")?(?P<lk>lost connection|timeout|too many errors) after (?P<ls>"
    + _NS
    + rb"{1,100})(?: \(\d{1,15} bytes\))? from "
    + _CLIENT % (_IP + rb"{0,100}",)
    + _TAIL,
    # Anonymous TLS connection established from name[ip]: TLSv1.3 with cipher ...
    rb"(?P<tk>Anonymous|Trusted|Untrusted|Verified) TLS connection established "
    rb"(?P<td>from|to) "
    + _CLIENT % (_IP + rb"{0,100}",)
    + rb"(?::\d{1,5})?: (?P<tp>"
    + _NS
    + rb"{1,100}) with cipher "
    + _NS
    + rb"{1,200}"
    + _TAIL,
    # improper command pipelining after CMD from name[ip]: ...
    rb"(?P<pl>i)mproper command pipelining after "
    + _NS
    + rb"{1,100} from "
    + _CLIENT % (_IP + rb"{0,100}",)
    + _TAIL,
    # delivery problems and daemon life cycle: counted only
    rb"(?:"
    + _QID
    + rb")?(?P<dp>connect to |lost connection with |conversation with |host )"
    + _TAIL,
    rb"(?P<lc>daemon started|terminating on signal|reload -- |table )" + _TAIL,
    # postscreen verdicts
    rb"(?P<pv>"
    + _VERDICTS
    + rb")(?: \d{1,10})?(?: after [\d.]{1,20})?(?: rank \d{1,10})?(?: for| from)? \["
    + _IP.replace(b"!-", b" -")
    + rb"{1,100}\]:\d{1,5}"
    + _TAIL,
]

PATTERN = re.compile(
    rb"\n(?:(?>" + _HEADER + rb")(?:" + b"|".join(_BRANCHES) + rb")|(?P<raw>[^\n]*))"
)
_G = {name: index - 1 for name, index in PATTERN.groupindex.items()}

# The tail of the parser's SASL failure rule: what it makes of the text after "failed".
_SASL_TAIL = re.compile(r"(?::\s?(.*?))?(?:, sasl_username=(\S*))?\s*$")
_COUNT = re.compile(r"([a-z]+)=(\d+)(?:/(\d+))?")
_REJECT_ACTIONS = frozenset({"reject", "milter-reject", "proxy-reject", "defer", "defer_if_permit"})
# A reject text holding one of these could move the parser's split of the line.
_UNSAFE_TEXT = (" from ", "from=<", "to=<", "proto=")
_ADDR_TRIGGERS = (b"greylist", b"pipelining")

CAP = 50_000


class Unsure(Exception):
    """The block holds something the fast path cannot prove equal: rescan it exactly."""


def _auth_failures(tail: bytes) -> int:
    n = 0
    for name, ok, total in _COUNT.findall(tail.decode()):
        if name == "auth" and int(ok) < (int(total) if total else int(ok)):
            n += 1
    return n


def scan_fast(
    block: bytes,
    year: int | None,
    month: int | None,
    reference: float,
    contains: Callable[[float | None], bool] | None,
) -> Tally | None:
    """Tally of a block of whole lines, or None when the block must be rescanned exactly."""
    if year is None or month is None:
        return None
    try:
        return _scan(block, year, month, reference, contains)
    except Unsure:
        return None


def _scan(
    block: bytes,
    year: int,
    month: int,
    reference: float,
    contains: Callable[[float | None], bool] | None,
) -> Tally:
    buf = b"\n" + block if block.endswith(b"\n") else b"\n" + block + b"\n"
    rows = PATTERN.findall(buf)
    del buf
    rows.pop()  # the empty match after the block's last newline
    g = _G
    TS, PROG, RAW = g["ts"], g["prog"], g["raw"]
    lines_total = len(rows)
    raws = [r[RAW] for r in filterfalse(itemgetter(TS), rows)]
    rows = list(filter(itemgetter(TS), rows))

    # Every distinct time stamp once: seconds, hour bucket, month, inside the window.
    months: set[int] = {month}
    times: dict[bytes, tuple[float, int, bool]] = {}
    for t in set(map(itemgetter(TS), rows)):
        mon = MONTHS.get(t[:3].decode())
        if mon is None:
            raise Unsure  # not a month name: the parser sees no header (rare: go exact)
        months.add(mon)
        times[t] = _time_info(t, year, contains)
    if contains is not None and not all(info[2] for info in times.values()):
        inside = len(rows)
        rows = [r for r in rows if times[r[TS]][2]]
        lines_total -= inside - len(rows)

    tally = Tally()
    kinds: Counter[Any] = Counter()
    hourly: Counter[tuple[int, str]] = Counter()

    def pick(name: str) -> list[tuple[bytes, ...]]:
        return list(filter(itemgetter(g[name]), rows))

    def fields(part: list[tuple[bytes, ...]], *names: str) -> Counter[Any]:
        return Counter(map(itemgetter(*(g[n] for n in names)), part))

    def per_hour(part: list[tuple[bytes, ...]], name: str) -> None:
        for t, n in Counter(map(itemgetter(TS), part)).items():
            hourly[(times[t][1], name)] += n

    kinds[Kind.CONNECT] += len(pick("cn"))
    kinds[Kind.MESSAGE_ID] += len(pick("mi"))
    kinds[Kind.REMOVED] += len(pick("rm"))
    kinds[Kind.BOUNCE_NOTICE] += len(pick("bn"))
    kinds[Kind.PICKUP] += len(pick("pk"))
    kinds[Kind.PIPELINING] += len(pick("pl"))
    kinds[Kind.DELIVERY_PROBLEM] += len(pick("dp"))
    kinds[Kind.LIFECYCLE] += len(pick("lc"))
    expired = len(pick("ex"))
    if expired:
        kinds[Kind.EXPIRED] += expired
        tally.deliveries["expired"] += expired

    part = pick("dc")
    kinds[Kind.DISCONNECT] += len(part)
    auth: dict[bytes, int] = {}
    for (ip, tail), n in fields(part, "dcip", "dct").items():
        bumps = auth.get(tail)
        if bumps is None:
            bumps = auth[tail] = _auth_failures(tail) if b"auth=" in tail else 0
        if bumps:
            tally.auth_fail_disconnect[ip.decode() or "unknown"] += bumps * n

    part = pick("cl")
    logins = pick_from(part, g["clu"])
    kinds[Kind.CLIENT] += len(part) - len(logins)
    kinds[Kind.SASL_LOGIN] += len(logins)
    for (user_b, ip, t), n in fields(logins, "clu", "clip", "ts").items():
        user = user_b.decode()
        client = ip.decode() or "unknown"
        tally.login_user[user] += n
        tally.login_user_client[f"{user}\0{client}"] += n
        tally.login_user_hour[f"{user}\0{times[t][1]}"] += n

    part = pick("qz")
    kinds[Kind.QUEUED] += len(part)
    for (sender_b, size, nrcpt), n in fields(part, "qs", "qz", "qn").items():
        sender = sender_b.decode() or "<>"
        tally.sender_messages[sender] += n
        tally.sender_bytes[sender] += int(size) * n
        tally.sender_rcpts[sender] += int(nrcpt) * n

    part = pick("ds")
    kinds[Kind.DELIVERY] += len(part)
    for (status_b, rcpt), n in fields(part, "ds", "dr").items():
        status = status_b.decode()
        tally.deliveries[status] += n
        if status == "deferred":
            tally.deferred_domain[_domain(rcpt.decode())] += n
        elif status == "bounced":
            tally.bounced_domain[_domain(rcpt.decode())] += n

    part = pick("ra")
    kinds[Kind.REJECT] += len(part)
    # An address holding a one-word reason trigger would change the parser's class.
    addrs = b"\0".join(map(itemgetter(g["raddr"]), part)).lower()
    if any(trigger in addrs for trigger in _ADDR_TRIGGERS):
        raise Unsure
    reasons: dict[bytes, tuple[str, str | None]] = {}
    for (action_b, stage_b, ip, text_b, t), n in fields(
        part, "ra", "rs", "rip", "rt", "ts"
    ).items():
        action = action_b.decode()
        if action not in _REJECT_ACTIONS:
            tally.other_actions[action] += n
            continue
        got = reasons.get(text_b)
        if got is None:
            text = text_b.decode()
            if any(u in text for u in _UNSAFE_TEXT):
                raise Unsure
            got = reasons[text_b] = classify_reason(text)
        reason, detail = got
        if action == "milter-reject":
            reason = "greylisting" if reason == "greylisting" else "milter"
        client = ip.decode() or "unknown"
        hour = times[t][1]
        tally.reject_reason[reason] += n
        tally.reject_client[client] += n
        tally.reject_stage[stage_b.decode()] += n
        hourly[(hour, "rejects")] += n
        if reason == "relay_denied":
            tally.relay_client[client] += n
            hourly[(hour, "relay_denied")] += n
        elif reason == "rbl" and detail:
            tally.reject_rbl[detail] += n
        elif reason == "policy_service":
            tally.policy_servers["(451 4.3.5 reply)"] += n

    part = pick("sk")
    failed = pick_from(part, g["sk"], b"failed")
    kinds[Kind.SASL_ABORTED] += len(part) - len(failed)
    kinds[Kind.SASL_FAILURE] += len(failed)
    per_hour(failed, "sasl_failures")
    users: dict[bytes, str | None] = {}
    for tail, n in fields(failed, "st").items():
        m = _SASL_TAIL.match(tail.decode())
        assert m is not None  # the branch only admits tails the rule accepts
        users[tail] = m.group(2) or None
        tally.sasl_fail_user[users[tail] or "(not logged)"] += n
    for ip, n in fields(failed, "sip").items():
        tally.sasl_fail_client[ip.decode() or "unknown"] += n
    for mech, n in fields(failed, "sm").items():
        tally.sasl_fail_mech[mech.decode().upper() or "unknown"] += n

    for (kind_b, stage_b), n in fields(pick("lk"), "lk", "ls").items():
        kind = _AFTER_KINDS[kind_b]
        kinds[kind] += n
        tally.connection_problems[f"{kind}:{stage_b.decode()}"] += n
    for (direction, protocol), n in fields(pick("tk"), "td", "tp").items():
        kinds[Kind.TLS_ESTABLISHED] += n
        stage = "inbound" if direction == b"from" else "outbound"
        tally.tls_protocols[f"{stage}:{protocol.decode()}"] += n
    for verdict, n in fields(pick("pv"), "pv").items():
        kinds[Kind.POSTSCREEN] += n
        tally.postscreen[verdict.decode()] += n
    warned = [r for r in pick("wr") if not r[g["sk"]]]
    for prog_b, detail_b, t in map(itemgetter(PROG, g["wd"], TS), warned):
        prog = prog_b.decode()
        base = {"ts": times[t][0], "program": prog, "service": service_of(prog)}
        _add_warning(tally, _warning(detail_b.decode(), base), kinds, hourly)

    tally.lines_postfix = len(rows)
    for ts, _hour, inside in times.values():
        if inside:
            tally.add_time(ts)

    # --- the other lines, in order, through the exact parser (samples keep their order)
    parser = _MonthParser(YearTracker(year, month), reference, months)
    exact = Tally()
    scan_exact((raw + b"\n" for raw in raws), parser, contains, exact)
    lines_total -= len(raws) - exact.lines_total  # the lines outside the window
    # The year of every yearless line is the block's year only while no month can move
    # the tracker (a span of more than six months: New Year inside the block).
    if max(months) - min(months) > 6:
        raise Unsure

    for (hour, name), n in hourly.items():
        tally.hourly[hour][name] += n
    for kind, n in kinds.items():
        if n:
            tally.kinds[kind] += n
    tally.lines_postfix += exact.lines_postfix
    tally.add_time(exact.start)
    tally.add_time(exact.end)
    for name in COUNTERS:
        mine: Counter[str] = getattr(tally, name)
        mine.update(getattr(exact, name))
        if len(mine) > CAP:
            raise Unsure  # the exact path would have pruned mid-block: let it
    tally.unparsed_samples = exact.unparsed_samples
    tally.fatal_samples = exact.fatal_samples
    for hour, counts in exact.hourly.items():
        tally.hourly[hour].update(counts)
    tally.lines_total = lines_total
    tally.lines_other = exact.lines_other
    tally.lines_invalid = exact.lines_invalid
    return tally


_AFTER_KINDS = {
    b"lost connection": Kind.LOST_CONNECTION,
    b"timeout": Kind.TIMEOUT,
    b"too many errors": Kind.TOO_MANY_ERRORS,
}


def pick_from(
    part: list[tuple[bytes, ...]], index: int, value: bytes | None = None
) -> list[tuple[bytes, ...]]:
    """The rows of PART whose group INDEX is set (or equals VALUE)."""
    if value is None:
        return list(filter(itemgetter(index), part))
    return [r for r in part if r[index] == value]


def _add_warning(t: Tally, e: Event, kinds: Counter[Any], hourly: Counter[tuple[int, str]]) -> None:
    """The tally of one event of the warning rule (same as Tally.add, minus lines)."""
    kind = e.kind
    kinds[kind] += 1
    hour = int(e.ts // 3600 * 3600) if e.ts else 0
    if kind is Kind.SASL_FAILURE:
        t.sasl_fail_client[e.client_ip or "unknown"] += 1
        t.sasl_fail_user[e.user or "(not logged)"] += 1
        t.sasl_fail_mech[e.mechanism or "unknown"] += 1
        hourly[(hour, "sasl_failures")] += 1
    elif kind is Kind.TLS_ERROR:
        t.tls_error_client[e.client_ip or "unknown"] += 1
        hourly[(hour, "tls_errors")] += 1
    elif kind is Kind.POLICY_FAILURE:
        t.policy_servers[e.detail or "unknown"] += 1
        hourly[(hour, "policy_failures")] += 1
    elif kind is Kind.WARNING:
        t.warnings[_warning_key(e.detail or "")] += 1


def _time_info(
    stamp: bytes, year: int, contains: Callable[[float | None], bool] | None
) -> tuple[float, int, bool]:
    """(seconds, hour bucket, inside the window) of a classic `Mon dd hh:mm:ss` stamp;
    the hour is -1 when the stamp has no month name."""
    s = stamp.decode()
    if s[:3] not in MONTHS:
        return 0.0, -1, True
    h = Header(
        None,
        MONTHS[s[:3]],
        int(s[4:6]),
        int(s[-8:-6]),
        int(s[-5:-3]),
        int(s[-2:]),
        0,
        None,
        "",
        "",
        None,
        "",
    )
    ts = header_time(h, year)
    hour = int(ts // 3600 * 3600) if ts else 0
    return ts, hour, contains is None or contains(ts)


def scan_exact(
    lines: Iterable[bytes],
    parser: LineParser,
    contains: Callable[[float | None], bool] | None,
    tally: Tally,
) -> None:
    """Every line through the exact parser into TALLY (CONTAINS: the time window)."""
    for raw in lines:
        result = parser.parse(raw)
        event = result.event
        if event is not None and contains is not None and not contains(event.ts):
            continue
        tally.lines_total += 1
        if result.invalid:
            tally.lines_invalid += 1
        elif event is None or event.kind is Kind.OTHER_PROGRAM:
            tally.lines_other += 1
        else:
            tally.add(event, result.text)


class _MonthParser(LineParser):
    """The exact parser, noting the month of every yearless line it dates."""

    def __init__(self, tracker: YearTracker, reference: float, months: set[int]) -> None:
        super().__init__(tracker, reference)
        self.months = months

    def time_of(self, h: Header) -> float:
        if h.year is None:
            self.months.add(h.month)
        return super().time_of(h)
