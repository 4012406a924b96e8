"""The compiled fast path: blocks of whole lines -> Tally, with the C scanner `_scan`.

`_scan.Scanner` walks a block's bytes once. Lines of the frequent Postfix shapes
(printable ASCII, classic syslog / maillog_file or RFC 3339 headers) are counted in C
straight into the tables the report needs, reject reasons included (the scanner's
`classify` is parser.classify_reason); every other line comes back as bytes and goes
through the exact parser, in order, exactly as in fastscan.py. What needs Python's own
rules is asked once per distinct value through callbacks, and remembered across blocks:
the time of a stamp, whether a program name is Postfix's, the auth counts of a
disconnect, and where parser._reject finds the reply text of an unusual reject line.

`RangeScan` adds consecutive blocks (a worker's range) the way scan.py's `Tally.merge`
of their tallies would: the scanner keeps the range's tables in C as long as no merge
could prune them (their keys, counted in C and by the parser, stay within CAP), and a
table that could is handed to Python and merged block by block from then on.

When the extension is not built (no compiler at install time), `available()` is False
and the caller uses fastscan.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from postharden.logs.analyze import COUNTERS, SAMPLES, Tally, add_counts
from postharden.logs.events import Kind
from postharden.logs.fastscan import _SASL_TAIL, CAP, _auth_failures, _MonthParser, scan_exact
from postharden.logs.parser import (
    _DSN_ONLY,
    _ENVELOPE,
    _REPLY,
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
    Kind.ERROR,
    Kind.FATAL,
    Kind.PANIC,
    Kind.UNPARSED,
)
_SENDER = ("sender_messages", "sender_bytes", "sender_rcpts")


def _counters(table: str) -> tuple[str, ...]:
    """The Tally counters a table of the scanner fills."""
    if table == "sender":
        return _SENDER
    if table == "sasl_tail":
        return ("sasl_fail_user",)
    return (table,)


TABLES: tuple[str, ...] = _scan.TABLES if _scan is not None else ()
_NAMES = tuple(_counters(t) for t in TABLES)
# The Tally counters that travel between processes as packed tables and that the main
# process merges in C: all but anvil_max (merged by max) and kinds (Kind keys, few).
PACKED = tuple(name for name in COUNTERS if name not in ("anvil_max", "kinds"))
Blobs = dict[str, list[bytes]]  # counter -> packed tables that add up to it


def available() -> bool:
    return _scan is not None


def _stamp_info(stamp: bytes, year: int) -> tuple[float, int, int]:
    """A stamp at minute 0, second 0 -> (seconds, month if yearless, usable).

    The scanner adds the minutes and seconds (and an RFC 3339 fraction) of each line:
    `header_time` is linear in them, and its local-time offset depends on the hour only.
    A yearless stamp is in YEAR. A stamp the parser dates 0.0 (a date `calendar.timegm`
    refuses) is left to it."""
    h = parse_header(stamp.decode() + " h p: ")
    if h is None:  # pragma: no cover - the scanner only passes stamps of the parser
        return 0.0, 0, 0
    ts = header_time(h, h.year if h.year is not None else year)
    return ts, h.month if h.year is None else 0, 1 if ts else 0


def _reply_span(rest_b: bytes) -> tuple[int, int]:
    """Where parser._reject finds the reply text it classifies in the text after the
    client (the envelope cut off, then the reply code or DSN)."""
    rest = rest_b.decode()
    em = _ENVELOPE.search(rest)
    end = em.start() if em is not None else len(rest)
    rm = _REPLY.match(rest, 0, end)
    if rm is not None:
        return rm.start(3), rm.end(3)
    dm = _DSN_ONLY.match(rest, 0, end)
    return (dm.start(2), dm.end(2)) if dm is not None else (0, end)


def _disconnect_failures(tail: bytes) -> int:
    return _auth_failures(tail) if b"auth=" in tail else 0


def _is_postfix(program: bytes) -> bool:
    return is_postfix_program(program.decode())


class RangeScan:
    """The tally of consecutive blocks, as `Tally.merge` of their tallies in order gives it.

    `add_block` scans a block (False: the scanner cannot prove it equal; the caller scans
    it exactly and passes its tally to `add_tally`, nothing of it was counted). A table
    merge prunes only when the merged table exceeds CAP keys: while the keys the scanner
    and the parser counted for a table stay within CAP, the blocks' tables are plain sums
    and stay in C; at the first block where they might not, the table comes to Python
    and is merged block by block from then on, pruning where the merge prunes."""

    def __init__(self) -> None:
        assert _scan is not None
        self._scanner: Any = _scan.Scanner(
            _stamp_info, _is_postfix, _disconnect_failures, _reply_span
        )
        self._tally = Tally()  # the parser's part; all of a table taken per block
        self._per_block = 0  # bit i: TABLES[i] is merged block by block
        self._sizes: Sequence[int] = (0,) * len(TABLES)  # keys of the range's C tables

    def add_block(
        self,
        block: Any,
        year: int | None,
        month: int | None,
        reference: float,
        since: float | None,
        until: float | None,
        contains: Callable[[float | None], bool] | None,
    ) -> bool:
        """Count a block of whole lines (bytes or a buffer); False: scan it exactly."""
        if year is None or month is None:
            return False
        # Once the range has all its samples of unparsed and fatal lines, the scanner
        # counts such lines itself (the parser keeps a line's text only for a sample).
        full = (len(self._tally.unparsed_samples) >= SAMPLES) | (
            len(self._tally.fatal_samples) >= SAMPLES
        ) << 1
        odd, unsure, month_bits, sizes = self._scanner.scan(block, year, since, until, full)
        # More odd lines than CAP: a parser table could have been pruned inside the block.
        if unsure or len(odd) > CAP:
            return False
        months: set[int] = {month} | {m for m in range(1, 13) if month_bits >> m & 1}
        part = Tally()
        scan_exact(odd, _MonthParser(YearTracker(year, month), reference, months), contains, part)
        # The year of every yearless line is the block's year only while no month can move
        # the tracker (a span of more than six months: New Year inside the block).
        if max(months) - min(months) > 6:
            return False
        for size, names in zip(sizes, _NAMES, strict=True):
            if any(size + len(getattr(part, name)) > CAP for name in names):
                return False  # the exact path could prune inside the block: let it
        self._add(part, sizes)
        return True

    def add_tally(self, part: Tally) -> None:
        """Add the tally of a block scanned exactly."""
        self._add(part, None)

    def _add(self, part: Tally, sizes: Sequence[int] | None) -> None:
        mask = 0
        for i, names in enumerate(_NAMES):
            if self._per_block >> i & 1:
                continue
            mine = self._sizes[i] + (sizes[i] if sizes is not None else 0)
            if all(
                mine + len(getattr(self._tally, name)) + len(getattr(part, name)) <= CAP
                for name in names
            ):
                mask |= 1 << i
        done = mask
        if sizes is not None:
            done, self._sizes = self._scanner.commit(mask)
        for i in range(len(TABLES)):
            if done >> i & 1:
                continue
            if not self._per_block >> i & 1:
                # Nothing of the range was pruned so far: its table is the plain sum.
                self._per_block |= 1 << i
                for name, table in self._take(i, True).items():
                    add_counts(getattr(self._tally, name), table)
            if sizes is not None:
                for name, table in self._take(i, False).items():  # the block's whole table
                    add_counts(table, getattr(part, name))
                    setattr(part, name, table)
        self._tally.merge(part)

    def _take(self, i: int, whole_range: bool) -> dict[str, Counter[str]]:
        """Table i of the scanner (of the range, or of the block) as Tally counters."""
        got: dict[str, Any] = self._scanner.take(i, whole_range)
        table = TABLES[i]
        if table == "sender":
            out: dict[str, Counter[str]] = {name: Counter() for name in _SENDER}
            for sender, counts in got.items():
                for name, n in zip(_SENDER, counts, strict=True):
                    out[name][sender] = n
            return out
        if table == "sasl_tail":
            users: Counter[str] = Counter()
            for tail, n in got.items():
                m = _SASL_TAIL.match(tail)
                assert m is not None  # the scanner only admits tails the rule accepts
                users[m.group(2) or "(not logged)"] += n
            return {"sasl_fail_user": users}
        return {table: Counter(got)}

    def tally(self) -> Tally:
        """The tally of the blocks added (once, after the last block)."""
        tally = self._tally
        for i in range(len(TABLES)):
            if not self._per_block >> i & 1:
                for name, table in self._take(i, True).items():
                    add_counts(getattr(tally, name), table)
        self._totals(tally)
        return tally

    def packed(self) -> tuple[Tally, Blobs]:
        """The tally of the blocks added, its tables packed (once, after the last block):
        the tables the scanner kept go from C to packed tables without Python objects."""
        tally = self._tally
        blobs: Blobs = {}
        for i, names in enumerate(_NAMES):
            if self._per_block >> i & 1:
                continue
            if TABLES[i] == "sasl_tail":  # tails become users in Python
                for name, table in self._take(i, True).items():
                    add_counts(getattr(tally, name), table)
                continue
            got = self._scanner.pack(i)
            for name, blob in zip(names, got if len(names) > 1 else (got,), strict=True):
                blobs[name] = [blob]
        self._totals(tally)
        return pack_tally(tally, blobs)

    def _totals(self, tally: Tally) -> None:
        kinds, lines, postfix, other, tmin, tmax, hours = self._scanner.totals()
        for kind, n in zip(KINDS, kinds, strict=True):
            if n:
                tally.kinds[kind] += n
        tally.lines_total += lines
        tally.lines_postfix += postfix
        tally.lines_other += other
        tally.add_time(tmin)
        tally.add_time(tmax)
        for hour, (rejects, relay, sasl) in hours.items():
            counts = tally.hourly[hour]
            if rejects:
                counts["rejects"] += rejects
            if relay:
                counts["relay_denied"] += relay
            if sasl:
                counts["sasl_failures"] += sasl


def pack_tally(tally: Tally, blobs: Blobs) -> tuple[Tally, Blobs]:
    """TALLY's PACKED counters moved into packed tables (added to BLOBS'). A counter that
    cannot be packed (a count beyond int64) stays a Counter, with BLOBS' part added."""
    assert _scan is not None
    for name in PACKED:
        table: Counter[str] = getattr(tally, name)
        if not table:
            continue
        blob = _scan.pack(table)
        if blob is None:
            for got in blobs.pop(name, []):
                add_counts(table, _scan.unpack(got))
            continue
        blobs.setdefault(name, []).append(blob)
        setattr(tally, name, Counter())
    return tally, blobs


class Merged:
    """`Tally.merge` of tallies in order, as scan.py merges the parts of its inputs, with
    the PACKED counters in C (`_scan.Merger`: add, prune beyond CAP keys) as long as their
    counts fit in int64; a counter that does not comes to Python, merged as Tally.merge
    merges it."""

    def __init__(self) -> None:
        assert _scan is not None
        self._tally = Tally()
        self._merger: Any = _scan.Merger(len(PACKED))
        self._python: set[str] = set()  # counters merged in Python

    def merge(self, part: Tally, blobs: Blobs) -> None:
        """Merge PART, whose counters BLOBS holds packed (a part's Counters are packed here)."""
        assert _scan is not None
        part, blobs = pack_tally(part, blobs)
        for i, name in enumerate(PACKED):
            got = blobs.get(name, [])
            if name not in self._python:
                if not getattr(part, name) and (not got or self._merger.merge(i, got, CAP)):
                    continue
                self._python.add(name)
                setattr(self._tally, name, Counter(self._merger.take(i)))
            table: Counter[str] = getattr(part, name)
            for blob in got:
                add_counts(table, _scan.unpack(blob))
        self._tally.merge(part)

    def tally(self) -> Tally:
        """The merged tally (once, after the last part)."""
        for i, name in enumerate(PACKED):
            if name not in self._python:
                setattr(self._tally, name, Counter(self._merger.take(i)))
        return self._tally


def scan_c(
    block: Any,
    year: int | None,
    month: int | None,
    reference: float,
    since: float | None,
    until: float | None,
    contains: Callable[[float | None], bool] | None,
) -> Tally | None:
    """Tally of a block of whole lines, or None when the block must be rescanned exactly."""
    if _scan is None:
        return None
    scan = RangeScan()
    if not scan.add_block(block, year, month, reference, since, until, contains):
        return None
    return scan.tally()
