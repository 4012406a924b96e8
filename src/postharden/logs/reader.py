"""Read log sources: plain, .gz/.xz/.bz2 (by magic bytes), stdin, journalctl output.

Lines become (timestamp, Event) through the pure parser; this module owns the impure
parts: files, decompression, the year of yearless timestamps, ordering rotated sets.
"""

from __future__ import annotations

import bz2
import datetime
import gzip
import io
import json
import lzma
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from postharden.logs.errors import LogError
from postharden.logs.events import Event, Kind
from postharden.logs.parser import (
    Header,
    header_time,
    is_postfix_program,
    parse_header,
    parse_message,
)

MAGIC = {b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bzip2"}
MAX_LINE = 64 * 1024  # longer lines are not syslog lines: counted as invalid


def compression_of(head: bytes) -> str | None:
    for magic, name in MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def open_binary(path: Path) -> BinaryIO:
    """Open a log file, decompressing by content (not by name)."""
    try:
        raw = path.open("rb")
    except IsADirectoryError:
        raise LogError("is a directory, not a log file", location=str(path)) from None
    except OSError as error:
        raise LogError(f"cannot open: {error.strerror}", location=str(path)) from None
    head = raw.read(6)
    raw.seek(0)
    kind = compression_of(head)
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if kind == "bzip2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    return raw


class YearTracker:
    """The year of yearless timestamps in a time-ordered log.

    Anchored at the first line; a month that jumps back by more than half a year
    (Dec -> Jan) starts a new year; a line a few seconds out of order across New Year
    (Jan -> Dec) belongs to the previous year and does not move the anchor.
    """

    def __init__(self, year: int, month: int) -> None:
        self.year = year
        self.month = month

    def year_for(self, month: int) -> int:
        if month < self.month - 6:
            self.year += 1
            self.month = month
        elif month > self.month + 6:
            return self.year - 1
        elif month > self.month:
            self.month = month
        return self.year

    @staticmethod
    def anchored(month: int, day: int, reference: float) -> YearTracker:
        """Start a tracker for a log whose first line is MONTH/DAY and that was last
        written at REFERENCE (mtime, or now): the first line is not in the future."""
        ref = datetime.datetime.fromtimestamp(reference)
        year = ref.year if (month, day) <= (ref.month, ref.day) else ref.year - 1
        return YearTracker(year, month)


def journal_header(raw: bytes) -> Header | None:
    """A `journalctl -o json` record as a Header (None if it is not one)."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    message = rec.get("MESSAGE")
    if isinstance(message, list):  # journald stores non-UTF-8 messages as byte arrays
        message = bytes(b & 0xFF for b in message if isinstance(b, int)).decode("utf-8", "replace")
    stamp = rec.get("__REALTIME_TIMESTAMP")
    if not isinstance(message, str) or not isinstance(stamp, str) or not stamp.isdigit():
        return None
    micros = int(stamp)
    t = datetime.datetime.fromtimestamp(micros // 1_000_000, tz=datetime.UTC)
    pid = rec.get("SYSLOG_PID") or rec.get("_PID")
    return Header(
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        micros % 1_000_000,
        0,
        str(rec.get("_HOSTNAME", "")),
        str(rec.get("SYSLOG_IDENTIFIER", "")),
        int(pid) if isinstance(pid, str) and pid.isdigit() else None,
        message.rstrip("\n"),
    )


@dataclass
class LineResult:
    event: Event | None  # None: not a usable line (invalid) or another program's line
    invalid: bool
    text: str


class LineParser:
    """Turns raw lines into events, keeping the year of yearless formats."""

    def __init__(self, tracker: YearTracker | None, reference: float) -> None:
        self.tracker = tracker
        self.reference = reference

    def header(self, raw: bytes) -> tuple[Header | None, str, bool]:
        if len(raw) > MAX_LINE or b"\x00" in raw:
            return None, "", True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            if text.count("\ufffd") * 8 > len(text):
                return None, text, True
        text = text.rstrip("\r\n")
        if text.startswith("{"):
            return journal_header(raw), text, False
        return parse_header(text), text, False

    def time_of(self, h: Header) -> float:
        if h.year is not None:
            return header_time(h, h.year)
        if self.tracker is None:
            self.tracker = YearTracker.anchored(h.month, h.day, self.reference)
        return header_time(h, self.tracker.year_for(h.month))

    def parse(self, raw: bytes) -> LineResult:
        h, text, invalid = self.header(raw)
        if h is None:
            return LineResult(None, invalid, text)
        ts = self.time_of(h)
        if not is_postfix_program(h.program):
            return LineResult(Event(Kind.OTHER_PROGRAM, ts=ts, program=h.program), False, text)
        return LineResult(
            parse_message(h.program, h.message, ts=ts, host=h.host, pid=h.pid), False, text
        )


@dataclass
class Source:
    """One input: a path or stdin, with what the reader learnt about it."""

    name: str
    path: Path | None
    compression: str | None
    size: int | None
    mtime: float
    first_ts: float | None = None
    error: str | None = None

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "compression": self.compression, "error": self.error}


def probe_source(path: Path, year: int | None) -> Source:
    """Open once to learn compression and the first timestamp (for ordering)."""
    try:
        st = path.stat()
    except OSError as error:
        raise LogError(f"cannot open: {error.strerror}", location=str(path)) from None
    if not path.is_file():
        raise LogError("not a regular file", location=str(path))
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
    except OSError as error:
        raise LogError(f"cannot read: {error.strerror}", location=str(path)) from None
    source = Source(str(path), path, compression_of(head), st.st_size, st.st_mtime)
    try:
        with open_binary(path) as fh:
            parser = LineParser(None, st.st_mtime)
            for _ in range(1000):
                raw = fh.readline(MAX_LINE + 1)
                if not raw:
                    break
                h, _text, _invalid = parser.header(raw)
                if h is not None:
                    # Ordering uses the mtime anchor even with --year: the forced year
                    # applies to the first line of the ordered set, not to each file.
                    source.first_ts = parser.time_of(h)
                    break
    except (OSError, EOFError, lzma.LZMAError) as error:
        raise LogError(f"cannot read: {error}", location=str(path)) from None
    return source


def order_sources(sources: list[Source]) -> list[Source]:
    """Rotated sets in time order: by first timestamp, then older rotation numbers first."""

    def rotation(s: Source) -> int:
        for part in reversed(s.name.split(".")):
            if part.isdigit():
                return int(part)
        return 0

    return sorted(
        sources,
        key=lambda s: (s.first_ts if s.first_ts is not None else float("inf"), -rotation(s)),
    )


def iter_lines(fh: BinaryIO, source: Source) -> Iterator[bytes]:
    """Lines of a stream; a truncated compressed file or a shrinking file ends the stream
    early and is recorded in `source.error` instead of raising."""
    start_size = source.size
    try:
        while True:
            raw = fh.readline(MAX_LINE + 1)
            if not raw:
                break
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                # Skip the rest of an over-long line without holding it in memory.
                while raw and not raw.endswith(b"\n"):
                    raw = fh.readline(1024 * 1024)
                yield b"\x00"  # counted as invalid
                continue
            yield raw
    except EOFError:
        source.error = "compressed stream is truncated; read up to the damage"
    except (OSError, lzma.LZMAError, ValueError) as error:
        source.error = f"read error: {error}"
    if source.path is not None and start_size is not None and source.compression is None:
        try:
            now = source.path.stat().st_size
        except OSError:
            now = start_size
        if now < start_size:
            source.error = f"file shrank while being read ({start_size} -> {now} bytes)"


def stdin_source() -> tuple[Source, BinaryIO]:
    stream = io.BufferedReader(os.fdopen(os.dup(0), "rb", buffering=0), 1 << 20)
    head = stream.peek(6)[:6]
    kind = compression_of(head)
    source = Source("-", None, kind, None, time.time())
    if kind == "gzip":
        return source, gzip.GzipFile(fileobj=stream)  # type: ignore[return-value]
    if kind == "xz":
        return source, lzma.LZMAFile(stream)  # type: ignore[return-value]
    if kind == "bzip2":
        return source, bz2.BZ2File(stream)  # type: ignore[return-value]
    return source, stream
