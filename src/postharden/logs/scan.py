"""Scan log sources into a Tally: large blocks, all cores, a multi-pattern prefilter.

Each block of whole lines is scanned in one of two ways that give the same Tally:

* exact: every line through the pure parser;
* fast: hyperscan finds the lines that matter (rejects, SASL, TLS, warnings, queue
  events...) at memory speed and only those are parsed; frequent lines that only need
  counting (connect, message-id, removed, status=sent...) are counted with bytes.count.
  An accounting identity checks that every Postfix line of the block was either parsed or
  counted; when it does not hold (a line no prefilter knows, junk, NUL bytes), the block
  is rescanned exactly. So unparsed lines are still found and counted, only slower.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postharden.logs.analyze import Tally
from postharden.logs.errors import LogError
from postharden.logs.events import Kind
from postharden.logs.reader import (
    MAX_LINE,
    LineParser,
    Source,
    YearTracker,
    iter_lines,
    open_binary,
    order_sources,
    probe_source,
    stdin_source,
)

BLOCK = 16 * 1024 * 1024
SMALL = 32 * 1024 * 1024  # below this, no worker processes

# Literal -> (kind, postscreen verdict or delivery status) of lines only counted.
_BORING: list[tuple[bytes, Kind, str | None]] = [
    (b"]: connect from ", Kind.CONNECT, None),
    (b"]: disconnect from ", Kind.DISCONNECT, None),
    (b": message-id=", Kind.MESSAGE_ID, None),
    (b": removed\n", Kind.REMOVED, None),
    (b": client=", Kind.CLIENT, None),
    (b", status=sent ", Kind.DELIVERY, "sent"),
    (b"]: CONNECT from [", Kind.POSTSCREEN, "CONNECT"),
    (b"]: DISCONNECT [", Kind.POSTSCREEN, "DISCONNECT"),
    (b"]: PASS OLD [", Kind.POSTSCREEN, "PASS OLD"),
]
_POSTFIX_TAGS = (b" postfix/", b" postfix-")

_INTERESTING = [
    rb"\]: (?:[0-9A-Za-z]+: )?[a-z][a-z_-]*: (?:CONNECT|HELO|EHLO|MAIL|RCPT|DATA|BDAT|END-OF-MESSAGE|VRFY|ETRN|AUTH|STARTTLS|header|body) ",
    rb"\]: (?:[0-9A-Za-z]+: )?(?:warning|fatal|panic|error): ",
    rb"\]: (?:[0-9A-Za-z]+: )?(?:lost connection after|timeout after|too many errors after) ",
    rb"\]: disconnect from [^\n]* auth=",
    rb": client=[^\n]*sasl_username=",
    rb"TLS connection established ",
    rb"\]: SSL_",
    rb"\]: improper command pipelining",
    rb"\]: bare <LF>",
    rb"\]: (?:PASS NEW|PREGREET|DNSBL|HANGUP|COMMAND|NON-SMTP|BARE NEWLINE|WHITELIST|ALLOWLIST|BLACKLISTED|DENYLISTED|WHITELISTED|ALLOWLISTED) ",
    rb"\]: addr [^\n]* listed by domain ",
    rb"\]: statistics: ",
    rb"\]: [0-9A-Za-z]+: from=[^\n]*, (?:size|status)=",
    rb", status=(?:[a-rt-z]|s[a-df-z])",
    rb"\]: (?:[0-9A-Za-z]+: )?(?:sender|postmaster) (?:non-delivery|delivery status|delay) notification",
    rb"\]: [0-9A-Za-z]+: uid=",
    rb"\]: (?:[0-9A-Za-z]+: )?(?:connect to |lost connection with |conversation with |host |certificate verification|enabling PIX|SASL authentication failed; server|discarding EHLO)",
    rb"\]: (?:daemon started|terminating on signal|reload -- |starting the Postfix|stopping the Postfix|refreshing the Postfix|Deleted: |Requeued: |Placed on hold: |Released from hold: |cache |proxy-accept: |proxy-reject: |table )",
    rb"\]: [0-9A-Za-z]+: (?:requeued|placed on hold|released from hold|skipped, still being delivered|expired)\n",
]

_DB: Any = None


def _database() -> Any:
    """The compiled hyperscan database, or None when hyperscan is not installed."""
    global _DB
    if _DB is None:
        try:
            import hyperscan
        except ImportError:
            _DB = False
            return None
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(
            expressions=_INTERESTING,
            ids=list(range(len(_INTERESTING))),
            elements=len(_INTERESTING),
            flags=[hyperscan.HS_FLAG_SINGLEMATCH * 0] * len(_INTERESTING),
        )
        _DB = db
    return _DB or None


@dataclass(frozen=True)
class Window:
    since: float | None = None
    until: float | None = None

    def contains(self, ts: float | None) -> bool:
        if ts is None:
            return True
        return not (
            (self.since is not None and ts < self.since)
            or (self.until is not None and ts >= self.until)
        )

    @property
    def open(self) -> bool:
        return self.since is None and self.until is None


def scan_exact(lines: Iterator[bytes], parser: LineParser, window: Window, tally: Tally) -> None:
    for raw in lines:
        result = parser.parse(raw)
        event = result.event
        if event is not None and not window.contains(event.ts):
            continue
        tally.lines_total += 1
        if result.invalid:
            tally.lines_invalid += 1
        elif event is None or event.kind is Kind.OTHER_PROGRAM:
            tally.lines_other += 1
        else:
            tally.add(event, result.text)


def _split_lines(block: bytes) -> Iterator[bytes]:
    start = 0
    n = len(block)
    while start < n:
        end = block.find(b"\n", start)
        if end < 0:
            yield block[start:]
            return
        yield block[start : end + 1]
        start = end + 1


def scan_block(
    block: bytes, year: int | None, month: int | None, reference: float, window: Window, exact: bool
) -> Tally:
    """One block of whole lines -> Tally."""
    tracker = YearTracker(year, month) if year is not None and month is not None else None
    # The prefilter knows syslog-style lines; journalctl -o json records go line by line.
    journal = block.startswith(b"{") or b"\n{" in block
    if not exact and window.open and not journal and b"\x00" not in block:
        tally = _scan_fast(block, tracker, reference)
        if tally is not None:
            return tally
    tally = Tally()
    tracker = YearTracker(year, month) if year is not None and month is not None else None
    scan_exact(_split_lines(block), LineParser(tracker, reference), window, tally)
    return tally


# Prefilter patterns whose lines also hold a counting-only literal: (pattern id, literal index).
_OVERLAPS = {3: 1, 4: 4}


def _scan_fast(block: bytes, tracker: YearTracker | None, reference: float) -> Tally | None:
    db = _database()
    if db is None:
        return None
    if not block.isascii():
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None
    starts: list[int] = []
    ids: list[int] = []
    last = -1

    def on_match(pattern: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
        nonlocal last
        if to <= last:
            return
        start = block.rfind(b"\n", 0, to - 1) + 1
        end = block.find(b"\n", to)
        last = len(block) if end < 0 else end
        starts.append(start)
        ids.append(pattern)

    db.scan(block, match_event_handler=on_match)
    remaining = [block.count(lit) for lit, _k, _d in _BORING]
    if not block.endswith(b"\n") and block.endswith(b": removed"):
        remaining[3] += 1
    postfix = sum(block.count(tag) for tag in _POSTFIX_TAGS)
    # The accounting identity, checked before any parsing: every Postfix line is either
    # a prefiltered line or holds exactly one counting-only literal.
    matched_postfix = 0
    for start, pattern in zip(starts, ids, strict=True):
        head = block[start : start + 200]
        if b" postfix/" in head or b" postfix-" in head:
            matched_postfix += 1
            overlap = _OVERLAPS.get(pattern)
            if overlap is not None:
                remaining[overlap] -= 1
    parser = LineParser(tracker, reference)
    if min(remaining) < 0 or postfix != matched_postfix + sum(remaining):
        return _scan_every_line(block, set(starts), parser)
    tally = Tally()
    for start in starts:
        end = block.find(b"\n", start)
        raw = block[start : (len(block) if end < 0 else end + 1)]
        result = parser.parse(raw)
        event = result.event
        if result.invalid:
            tally.lines_invalid += 1
        elif event is None or event.kind is Kind.OTHER_PROGRAM:
            tally.lines_other += 1
        else:
            tally.add(event, result.text)
    _add_counted(tally, remaining)
    tally.lines_total = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    tally.lines_other = tally.lines_total - tally.lines_postfix - tally.lines_invalid
    _edge_times(block, parser, tally)
    return tally


def _add_counted(tally: Tally, counted: list[int]) -> None:
    for (_lit, kind, detail), k in zip(_BORING, counted, strict=True):
        if not k:
            continue
        tally.kinds[kind] += k
        tally.lines_postfix += k
        if kind is Kind.DELIVERY:
            tally.deliveries["sent"] += k
        elif kind is Kind.POSTSCREEN and detail is not None:
            tally.postscreen[detail] += k


def _scan_every_line(block: bytes, starts: set[int], parser: LineParser) -> Tally:
    """When the identity fails (a line the prefilter does not know): every line is looked
    at, but lines holding a counting-only literal are still counted without parsing."""
    tally = Tally()
    counted = [0] * len(_BORING)
    boring = [(i, lit.rstrip(b"\n")) for i, (lit, _k, _d) in enumerate(_BORING)]
    pos = 0
    n = len(block)
    while pos < n:
        end = block.find(b"\n", pos)
        end = n if end < 0 else end + 1
        raw = block[pos:end]
        start = pos
        pos = end
        tally.lines_total += 1
        if start not in starts and (b" postfix/" in raw or b" postfix-" in raw):
            hit = next((i for i, lit in boring if lit in raw), None)
            if hit is not None and len(raw) <= MAX_LINE and b"\x00" not in raw:
                counted[hit] += 1
                continue
        result = parser.parse(raw)
        event = result.event
        if result.invalid:
            tally.lines_invalid += 1
        elif event is None or event.kind is Kind.OTHER_PROGRAM:
            tally.lines_other += 1
        else:
            tally.add(event, result.text)
    _add_counted(tally, counted)
    _edge_times(block, parser, tally)
    return tally


def _edge_times(block: bytes, parser: LineParser, tally: Tally) -> None:
    """Period bounds from the first and last Postfix lines of the block."""
    lines = block.split(b"\n", 20)[:20]
    for raw in lines:
        r = parser.parse(raw)
        if r.event is not None and r.event.kind is not Kind.OTHER_PROGRAM:
            tally.add_time(r.event.ts)
            break
    tail = block[-64 * 1024 :].rsplit(b"\n", 21)[::-1]
    for raw in tail:
        r = parser.parse(raw)
        if r.event is not None and r.event.kind is not Kind.OTHER_PROGRAM:
            tally.add_time(r.event.ts)
            break


# --- tasks and workers -----------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    path: str | None
    offset: int
    length: int
    data: bytes | None
    year: int | None
    month: int | None
    reference: float
    window: Window
    exact: bool


def _run_task(task: Task) -> tuple[Tally, bool]:
    """-> (tally, shrank): a byte range shorter than planned means the file shrank."""
    data = task.data
    shrank = False
    if data is None:
        assert task.path is not None
        with open(task.path, "rb") as fh:
            fh.seek(task.offset)
            data = fh.read(task.length)
        if len(data) < task.length:
            shrank = True
            cut = data.rfind(b"\n")
            data = data[: cut + 1] if cut >= 0 else b""
    return scan_block(data, task.year, task.month, task.reference, task.window, task.exact), shrank


def _first_header_month(raw: bytes, parser: LineParser) -> tuple[int | None, int | None]:
    h, _t, _i = parser.header(raw)
    if h is None:
        return None, None
    if h.year is not None:
        return h.year, h.month
    parser.time_of(h)  # advances the tracker
    assert parser.tracker is not None
    return parser.tracker.year_for(h.month), h.month


def _tasks_for_plain(
    source: Source, parser: LineParser, window: Window, exact: bool, block: int
) -> Iterator[Task]:
    assert source.path is not None and source.size is not None
    size = source.size
    with source.path.open("rb") as fh:
        offset = 0
        while offset < size:
            fh.seek(offset)
            first = fh.readline(MAX_LINE + 1)
            year, month = _first_header_month(first, parser)
            end = min(offset + block, size)
            if end < size:
                fh.seek(end)
                rest = fh.readline()
                end += len(rest)
            yield Task(
                str(source.path),
                offset,
                end - offset,
                None,
                year,
                month,
                source.mtime,
                window,
                exact,
            )
            offset = end


def _tasks_for_stream(
    source: Source, stream: Any, parser: LineParser, window: Window, exact: bool, block: int
) -> Iterator[Task]:
    carry = b""
    pieces: list[bytes] = []
    try:
        while True:
            # Small reads: a truncated compressed stream raises at the damage, and what was
            # read before it must already be ours.
            pieces = [carry]
            got = 0
            chunk = b""
            while got < block:
                chunk = stream.read1(1 << 20)
                if not chunk:
                    break
                pieces.append(chunk)
                got += len(chunk)
            if not got:
                break
            data = b"".join(pieces)
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > 4 * MAX_LINE:
                    data = data[:MAX_LINE] + b"\x00\n"  # an endless line: junk
                    cut = len(data) - 1
                else:
                    carry = data
                    continue
            carry = data[cut + 1 :]
            data = data[: cut + 1]
            year, month = _first_header_month(data[: data.find(b"\n") + 1], parser)
            yield Task(None, 0, len(data), data, year, month, source.mtime, window, exact)
    except EOFError:
        source.error = "compressed stream is truncated; read up to the damage"
        carry = b"".join(pieces)
    except Exception as error:  # OSError, lzma.LZMAError, zlib.error and friends
        source.error = f"read error: {error}"
        carry = b"".join(pieces)
    if carry:
        year, month = _first_header_month(carry, parser)
        yield Task(None, 0, len(carry), carry, year, month, source.mtime, window, exact)


def analyze_paths(
    paths: list[str],
    *,
    window: Window = Window(),
    year: int | None = None,
    exact: bool = False,
    jobs: int | None = None,
    block: int = BLOCK,
) -> tuple[Tally, list[Source]]:
    """Read every input (in time order) into one Tally."""
    sources: list[Source] = []
    use_stdin = False
    for p in paths:
        if p == "-":
            use_stdin = True
            continue
        sources.append(probe_source(Path(p), year))
    ordered = order_sources(sources)
    total_size = sum(s.size or 0 for s in ordered)
    jobs = jobs or min(os.cpu_count() or 1, 4)
    pool: Any = None
    if jobs > 1 and (total_size > SMALL or use_stdin):
        pool = multiprocessing.get_context("fork").Pool(jobs, initializer=_database)
    tally = Tally()
    year_state: YearTracker | None = None
    try:
        run: Callable[[Iterator[Task]], Iterator[tuple[Tally, bool]]]
        if pool is not None:

            def run(tasks: Iterator[Task]) -> Iterator[tuple[Tally, bool]]:
                return _bounded_imap(pool, tasks, jobs * 2)
        else:

            def run(tasks: Iterator[Task]) -> Iterator[tuple[Tally, bool]]:
                return map(_run_task, tasks)

        for source in ordered:
            tracker = year_state if year is not None else None
            parser = LineParser(tracker, source.mtime)
            if year is not None and tracker is None:
                parser.tracker = _forced(year, source, parser)
            if source.compression is None:
                tasks = _tasks_for_plain(source, parser, window, exact, block)
            else:
                stream = open_binary(source.path)  # type: ignore[arg-type]
                tasks = _tasks_for_stream(source, stream, parser, window, exact, block)
            for part, shrank in run(tasks):
                tally.merge(part)
                if shrank:
                    source.error = "file shrank while being read"
            year_state = parser.tracker
        if use_stdin:
            source, stream = stdin_source()
            parser = LineParser(year_state if year is not None else None, source.mtime)
            if year is not None and parser.tracker is None:
                parser.tracker = _forced(year, source, parser)
            for part, _shrank in run(
                _tasks_for_stream(
                    source, stream, parser, window, exact, min(block, 4 * 1024 * 1024)
                )
            ):
                tally.merge(part)
            ordered.append(source)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return tally, ordered


def _forced(year: int, source: Source, parser: LineParser) -> YearTracker | None:
    """--year: the first line of the first input is in YEAR."""
    if source.path is None:
        return None
    try:
        with open_binary(source.path) as fh:
            for _ in range(1000):
                raw = fh.readline(MAX_LINE + 1)
                if not raw:
                    break
                h, _t, _i = parser.header(raw)
                if h is not None:
                    return YearTracker(year, h.month)
    except (OSError, EOFError, ValueError) as error:
        raise LogError(f"cannot read: {error}", location=source.name) from None
    return None


def _bounded_imap(pool: Any, tasks: Iterator[Task], limit: int) -> Iterator[tuple[Tally, bool]]:
    """Pool.imap reads its input eagerly in a thread: bound the blocks in flight so a
    large compressed stream is never held in memory whole."""
    slots = threading.Semaphore(limit)

    def gated() -> Iterator[Task]:
        for task in tasks:
            slots.acquire()
            yield task

    for result in pool.imap(_run_task, gated()):
        slots.release()
        yield result


def list_unparsed(
    paths: list[str], *, window: Window = Window(), year: int | None = None
) -> Iterator[str]:
    """Every Postfix line no rule understands, in time order of the inputs."""
    sources = order_sources([probe_source(Path(p), year) for p in paths if p != "-"])
    streams: list[tuple[Source, Any]] = [(s, open_binary(s.path)) for s in sources if s.path]
    if "-" in paths:
        streams.append(stdin_source())
    tracker: YearTracker | None = None
    for source, stream in streams:
        parser = LineParser(tracker if year is not None else None, source.mtime)
        if year is not None and parser.tracker is None:
            parser.tracker = _forced(year, source, parser)
        with stream:
            for raw in iter_lines(stream, source):
                result = parser.parse(raw)
                event = result.event
                if event is not None and event.kind is Kind.UNPARSED and window.contains(event.ts):
                    yield result.text
        tracker = parser.tracker
