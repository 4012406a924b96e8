"""Logical lines and `name = value` entries, read exactly as Postfix's readllines() does.

Postfix rules (src/util/readlline.c, src/util/split_nameval.c):

- A line whose first non-space character is `#` is a comment, wherever it stands, even in
  the middle of a continued value; a `#` after a value is part of the value.
- Empty and all-space lines are skipped and do not end a logical line.
- A line that starts with whitespace continues the current logical line; the text is
  joined as is (the continuation keeps its leading whitespace, the newline is dropped).
- Text that starts with whitespace before any logical line started is ignored (warning).
- `name = value`: the name runs to the first space or `=`; spaces around `=` and at the
  end of the value are removed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

# C isspace() in the "C" locale.
SPACE = " \t\n\v\f\r"


class LogicalLine(NamedTuple):
    text: str
    first_line: int
    last_line: int
    # (offset in text, physical line number) where each physical line's text starts.
    starts: tuple[tuple[int, int], ...] = ()

    def line_at(self, offset: int) -> int:
        """The physical line number that holds text[offset]."""
        found = self.first_line
        for start, number in self.starts:
            if start > offset:
                break
            found = number
        return found


class LineProblem(NamedTuple):
    """Something Postfix warns about (or dies on) while reading a file."""

    line: int
    message: str
    fatal: bool


def _is_skipped(physical: str) -> bool:
    stripped = physical.lstrip(SPACE)
    return stripped == "" or stripped.startswith("#")


def logical_lines(text: str, problems: list[LineProblem] | None = None) -> Iterator[LogicalLine]:
    """Yield the logical lines of a Postfix configuration file."""
    parts: list[str] = []
    starts: list[tuple[int, int]] = []
    length = 0
    first = last = 0
    physical_lines = text.split("\n")
    if physical_lines and physical_lines[-1] == "":
        physical_lines.pop()
    for number, physical in enumerate(physical_lines, start=1):
        if _is_skipped(physical):
            continue
        if physical[0] in SPACE:
            if parts:
                starts.append((length, number))
                parts.append(physical)
                length += len(physical)
                last = number
            elif problems is not None:
                problems.append(
                    LineProblem(
                        number,
                        f'logical line must not start with whitespace: "{physical[:30]}"',
                        fatal=False,
                    )
                )
            continue
        if parts:
            yield LogicalLine("".join(parts), first, last, tuple(starts))
        parts = [physical]
        starts = [(0, number)]
        length = len(physical)
        first = last = number
    if parts:
        yield LogicalLine("".join(parts), first, last, tuple(starts))


class NameValueError(ValueError):
    pass


def split_nameval(text: str) -> tuple[str, str]:
    """Split `name = value` like Postfix's split_nameval(); raise NameValueError."""
    start = len(text) - len(text.lstrip(SPACE))
    if start == len(text) or text[start] == "=":
        raise NameValueError("missing attribute name")
    end = start
    while end < len(text) and text[end] not in SPACE and text[end] != "=":
        end += 1
    equals = end
    while equals < len(text) and text[equals] in SPACE:
        equals += 1
    if equals >= len(text) or text[equals] != "=":
        raise NameValueError("missing '=' after attribute name")
    value = text[equals + 1 :].lstrip(SPACE).rstrip(SPACE)
    return text[start:end], value


# Postfix splits list values on commas and whitespace (CHARS_COMMA_SP).
LIST_SEPARATORS = ", \t\r\n"


def split_spans(text: str, separators: str) -> list[tuple[int, int]]:
    """(start, end) of each token: separators split, `{...}` groups (Postfix >= 3.0) stay
    whole, as mystrtokq() does for master.cf fields and list values."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in separators:
            i += 1
        if i >= n:
            break
        start, depth = i, 0
        while i < n:
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}" and depth > 0:
                depth -= 1
            elif depth == 0 and ch in separators:
                break
            i += 1
        spans.append((start, i))
    return spans


def normalize_space(value: str) -> str:
    """Whitespace folded the way `postconf` prints values (for comparisons and display)."""
    return " ".join(value.split())
