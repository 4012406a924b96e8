"""Scan log sources into a Tally: large blocks, all cores, one regex pass per block.

Each block of whole lines is scanned in one of two ways that give the same Tally:

* exact: every line through the pure parser;
* fast: the compiled scanner (cscan.py, `_scan.c`) when it is built, else one
  `re.findall` pass (fastscan.py); lines of the frequent shapes give only the fields the
  report needs, any other line (unknown, truncated, another program, junk) goes through
  the exact parser on its own. When the block holds something the fast path cannot prove
  equal (New Year inside the block, a count that would overflow), the block is rescanned
  exactly.

`POSTHARDEN_LOGS_ENGINE=regex` forces the pure-Python fast path (tests and benchmarks).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from postharden.logs import cscan
from postharden.logs.analyze import COUNTERS, Tally
from postharden.logs.errors import LogError
from postharden.logs.events import Kind
from postharden.logs.fastscan import scan_exact, scan_fast
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

# findall rows of a block are ~3x its size: 4 MB keeps the regex path's workers small;
# the compiled scanner holds little more than the block, but a worker also holds the
# tally of its range: 8 MB keeps the sum of the processes under 200 MB.
BLOCK_REGEX = 4 * 1024 * 1024
BLOCK_C = 8 * 1024 * 1024
ENGINE = os.environ.get("POSTHARDEN_LOGS_ENGINE") or ("c" if cscan.available() else "regex")
BLOCK = BLOCK_C if ENGINE == "c" else BLOCK_REGEX
_T = TypeVar("_T")
SMALL = 32 * 1024 * 1024  # below this, no worker processes
# A plain file is cut into at most RANGES ranges of whole consecutive blocks. A worker
# merges the blocks of its range (in order, pruning as the main process would), so the
# main process merges a few range tallies, not one per block. The cut depends only on
# the file's size and the block size (never on the number of cores): the report, and
# where the tables are pruned, is the same on every machine, fast or --exact.
RANGES = 8


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


def _compiled(exact: bool) -> bool:
    return not exact and ENGINE == "c" and cscan.available()


def scan_block(
    block: bytes, year: int | None, month: int | None, reference: float, window: Window, exact: bool
) -> Tally:
    """One block of whole lines -> Tally (the fast path when it can prove its result)."""
    contains = None if window.open else window.contains
    if not exact:
        if _compiled(exact):
            tally = cscan.scan_c(
                block, year, month, reference, window.since, window.until, contains
            )
        else:
            tally = scan_fast(block, year, month, reference, contains)
        if tally is not None:
            return tally
    tally = Tally()
    tracker = YearTracker(year, month) if year is not None and month is not None else None
    scan_exact(_split_lines(block), LineParser(tracker, reference), contains, tally)
    return tally


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


def _read_into(fh: Any, task: Task, buffer: bytearray) -> tuple[memoryview, bool]:
    """The byte range of TASK read into BUFFER -> (its whole lines, shrank)."""
    view = memoryview(buffer)
    fh.seek(task.offset)
    got = 0
    while got < task.length:
        n = fh.readinto(view[got : task.length])
        if not n:
            break
        got += n
    if got == task.length:
        return view[:got], False
    return view[: buffer.rfind(b"\n", 0, got) + 1], True


def _run_range(tasks: tuple[Task, ...]) -> tuple[tuple[Tally, Any], bool]:
    """The blocks of one range, merged in order exactly as the main process merges."""
    if not _compiled(tasks[0].exact):
        tally = Tally()
        shrank = False
        for task in tasks:
            part, short = _run_task(task)
            tally.merge(part)
            del part  # not alive while the next block is scanned (peak memory)
            shrank = shrank or short
        return _pack(tally), shrank
    # The compiled scanner keeps the range's tables (cscan.RangeScan); every block is read
    # into one buffer (no fresh pages per block).
    scan = cscan.RangeScan()
    buffer = bytearray(max(task.length for task in tasks))
    shrank = False
    assert tasks[0].path is not None
    with open(tasks[0].path, "rb", buffering=0) as fh:
        for task in tasks:
            window = task.window
            contains = None if window.open else window.contains
            block, short = _read_into(fh, task, buffer)
            shrank = shrank or short
            with block:
                if not scan.add_block(
                    block,
                    task.year,
                    task.month,
                    task.reference,
                    window.since,
                    window.until,
                    contains,
                ):
                    data = bytes(block)
                    scan.add_tally(
                        scan_block(data, task.year, task.month, task.reference, window, True)
                    )
                    del data
    return scan.packed(), shrank


Packed = dict[str, tuple[int, str, "array[int]"]]


def _pack(tally: Tally) -> tuple[Tally, Any]:
    """Large tables packed: the main process merges one table at a time instead of holding
    a whole second tally (peak memory). With the compiled scanner, cscan's packed tables
    (merged in C); without it, (size, keys joined by newlines, int64 counts), a table with
    a newline in a key or a count beyond int64 as it is."""
    if cscan.available():
        return cscan.pack_tally(tally, {})
    packed: Packed = {}
    for name in COUNTERS:
        table: Counter[str] = getattr(tally, name)
        if name == "anvil_max" or len(table) < 1000:
            continue
        keys = "\n".join(table)
        if keys.count("\n") != len(table) - 1:
            continue
        try:
            counts = array("q", table.values())
        except OverflowError:
            continue
        packed[name] = (len(table), keys, counts)
        setattr(tally, name, Counter())
    return tally, packed


class _Merged:
    """Tally.merge of the parts of the inputs in order, without the compiled scanner (the
    interface of cscan.Merged)."""

    def __init__(self) -> None:
        self._tally = Tally()

    def merge(self, part: Tally, packed: Packed) -> None:
        """One packed table at a time (tables are merged independently of each other, so
        the result is the same)."""
        self._tally.merge(part)
        for name, (n, keys, counts) in packed.items():
            table = Counter(dict(zip(keys.split("\n") if n else [], counts, strict=True)))
            self._tally.merge_counter(name, table)
            del table

    def tally(self) -> Tally:
        return self._tally


def _ranges(tasks: Iterator[Task], size: int, block: int) -> Iterator[tuple[Task, ...]]:
    """Consecutive blocks grouped by ceil(blocks / RANGES), a function of the size only."""
    blocks = max(1, -(-size // block))
    per = max(1, -(-blocks // RANGES))
    group: list[Task] = []
    for task in tasks:
        group.append(task)
        if len(group) == per:
            yield tuple(group)
            group = []
    if group:
        yield tuple(group)


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
    block: int | None = None,
) -> tuple[Tally, list[Source]]:
    """Read every input (in time order) into one Tally."""
    if block is None:
        block = BLOCK_C if ENGINE == "c" and cscan.available() else BLOCK_REGEX
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
        pool = _pool(jobs)
    merged = cscan.Merged() if cscan.available() else _Merged()
    year_state: YearTracker | None = None
    try:
        run: Callable[[Iterator[Task]], Iterator[tuple[Tally, bool]]]
        run_ranges: Callable[[Iterator[tuple[Task, ...]]], Iterator[tuple[Any, bool]]]
        if pool is not None:

            def run(tasks: Iterator[Task]) -> Iterator[tuple[Tally, bool]]:
                return _bounded_imap(pool, _run_task, tasks, jobs * 2)

            def run_ranges(ranges: Iterator[tuple[Task, ...]]) -> Iterator[tuple[Any, bool]]:
                return _bounded_imap(pool, _run_range, ranges, jobs * 2)
        else:

            def run(tasks: Iterator[Task]) -> Iterator[tuple[Tally, bool]]:
                return map(_run_task, tasks)

            def run_ranges(ranges: Iterator[tuple[Task, ...]]) -> Iterator[tuple[Any, bool]]:
                return map(_run_range, ranges)

        for source in ordered:
            tracker = year_state if year is not None else None
            parser = LineParser(tracker, source.mtime)
            if year is not None and tracker is None:
                parser.tracker = _forced(year, source, parser)
            results: Iterator[tuple[Any, bool]]
            if source.compression is None:
                assert source.size is not None
                tasks = _tasks_for_plain(source, parser, window, exact, block)
                results = run_ranges(_ranges(tasks, source.size, block))
            else:
                stream = open_binary(source.path)  # type: ignore[arg-type]
                blocks = run(_tasks_for_stream(source, stream, parser, window, exact, block))
                results = (((part, {}), shrank) for part, shrank in blocks)
            for got, shrank in results:
                merged.merge(*got)
                del got  # not alive while the next range is awaited (peak memory)
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
                merged.merge(part, {})
            ordered.append(source)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return merged.tally(), ordered


def _pool(jobs: int) -> Any:
    """The worker processes of a scan (forked: they share the parent's memory)."""
    return multiprocessing.get_context("fork").Pool(jobs, initializer=_worker_signals)


def _worker_signals() -> None:
    """A pool worker dies at once on SIGTERM (Pool.terminate) and leaves SIGINT to the main
    process. A forked worker inherits the parent's Python handlers (the sandbox turns
    SIGTERM into SystemExit): unwinding in a child forked from a threaded process can block
    forever on a lock another thread of the parent held at the fork."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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


def _bounded_imap(
    pool: Any, func: Callable[[_T], tuple[Any, bool]], tasks: Iterator[_T], limit: int
) -> Iterator[tuple[Any, bool]]:
    """Pool.imap reads its input eagerly in a thread: bound the blocks in flight so a
    large compressed stream is never held in memory whole."""
    slots = threading.Semaphore(limit)

    def gated() -> Iterator[_T]:
        for task in tasks:
            slots.acquire()
            yield task

    for result in pool.imap(func, gated()):
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
