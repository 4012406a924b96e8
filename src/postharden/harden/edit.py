"""Minimal, byte-preserving edits of main.cf and master.cf text.

Every function takes the whole file text and returns the whole new text; everything
outside the edited span stays byte-identical. Text is decoded with `surrogateescape`
(see `decode`/`encode`) so that bytes which are not UTF-8 survive an edit unchanged.

- A main.cf parameter is changed where its winning (last) definition is, keeping how
  the admin wrote `name = ` and any continuation layout; it is appended only when main.cf
  does not define it.
- A restriction list is edited item by item: items move between the existing slots, so
  separators, line breaks, indentation and comment lines inside the value stay put; a new
  item copies a neighbouring separator.
- A master.cf `-o name=value` is edited in place; a new one is a new `-o` line at the end
  of its service (where Postfix reads it as part of that service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from postharden.config import Definition, Override, Service
from postharden.config.master import split_fields
from postharden.config.syntax import LIST_SEPARATORS, SPACE, logical_lines, split_spans
from postharden.harden.restrictions import Insert, Item, Move, Operation, Replace


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def line_offsets(text: str) -> list[int]:
    """offsets[n - 1] is where physical line n starts; one extra entry for the end."""
    offsets = [0]
    position = text.find("\n")
    while position >= 0:
        offsets.append(position + 1)
        position = text.find("\n", position + 1)
    if offsets[-1] != len(text):
        offsets.append(len(text))
    return offsets


def _line_span(offsets: list[int], text: str, number: int) -> tuple[int, int]:
    """(start, end) of physical line `number` without its newline."""
    start = offsets[number - 1]
    end = offsets[number] if number < len(offsets) else len(text)
    if end > start and text[end - 1] == "\n":
        end -= 1
    return start, end


def _is_skipped(line: str) -> bool:
    stripped = line.lstrip(SPACE)
    return stripped == "" or stripped.startswith("#")


def _tokenize(virtual: str) -> list[tuple[int, int]]:
    """Token spans of a list value: commas and whitespace separate, {...} stays whole."""
    return split_spans(virtual, LIST_SEPARATORS)


@dataclass(frozen=True, slots=True)
class Region:
    """Where a value is in the file: its tokens as (start, end) offsets."""

    value_start: int
    tokens: tuple[tuple[int, int], ...]
    default_separator: str
    joiner: str
    # Put before a value that used to be empty when the preceding character is not a space
    # (`name =` in main.cf); nothing for an unbraced `-o name=`.
    pad: str = " "

    @property
    def value_end(self) -> int:
        return self.tokens[-1][1] if self.tokens else self.value_start

    def token_texts(self, text: str) -> list[str]:
        return [text[a:b] for a, b in self.tokens]


def main_region(text: str, definition: Definition) -> Region:
    """The value of a main.cf definition (its physical lines, comment lines skipped)."""
    offsets = line_offsets(text)
    virtual: list[str] = []
    where: list[int] = []
    value_start = -1
    for number in range(definition.first_line, definition.last_line + 1):
        start, end = _line_span(offsets, text, number)
        line = text[start:end]
        if number == definition.first_line:
            position = line.index("=") + 1
            while position < len(line) and line[position] in SPACE:
                position += 1
            value_start = start + position
        elif _is_skipped(line):
            continue
        else:
            position = 0
        for index in range(position, len(line)):
            virtual.append(line[index])
            where.append(start + index)
        virtual.append("\n")
        where.append(end)
    tokens = tuple((where[a], where[b - 1] + 1) for a, b in _tokenize("".join(virtual)))
    return Region(value_start, tokens, ", ", " ")


@dataclass(frozen=True, slots=True)
class OverrideSpan:
    """A `-o` in master.cf: the span of the whole option and of its value."""

    option_start: int
    option_end: int
    value_start: int
    value_end: int
    braced: bool


def _logical_for(text: str, service: Service) -> tuple[str, list[tuple[int, int]], list[int]]:
    offsets = line_offsets(text)
    for logical in logical_lines(text):
        if logical.first_line == service.first_line:
            return logical.text, list(logical.starts), offsets
    raise ValueError(f"service {service.key} not found at line {service.first_line}")


def _to_file(offset: int, starts: list[tuple[int, int]], offsets: list[int]) -> int:
    found_start, found_line = starts[0]
    for start, number in starts:
        if start > offset:
            break
        found_start, found_line = start, number
    return offsets[found_line - 1] + (offset - found_start)


def override_spans(text: str, service: Service) -> list[tuple[str, OverrideSpan]]:
    """Every `-o name=value` of a service, in order, with file offsets."""
    logical, starts, offsets = _logical_for(text, service)
    fields = split_fields(logical)
    found: list[tuple[str, OverrideSpan]] = []
    index = 8
    while index < len(fields):
        offset, word = fields[index]
        index += 1
        if not word.startswith("-") or word == "--":
            break
        if word[1:2] != "o":
            continue
        option_start = offset
        if len(word) > 2:
            value_offset, value_word = offset + 2, word[2:]
        elif index < len(fields):
            value_offset, value_word = fields[index]
            index += 1
        else:
            break
        option_end = value_offset + len(value_word)
        if value_word.startswith("{"):
            inner = value_word[1:]
            equals = inner.find("=")
            if equals < 0:
                continue
            name = inner[:equals].strip(SPACE)
            start = 1 + equals + 1
            while start < len(value_word) and value_word[start] in SPACE:
                start += 1
            end = len(value_word) - 1 if value_word.endswith("}") else len(value_word)
            while end > start and value_word[end - 1] in SPACE:
                end -= 1
            braced = True
        else:
            name, equals_sign, _ = value_word.partition("=")
            if not equals_sign:
                continue
            start, end = len(name) + 1, len(value_word)
            braced = False
        found.append(
            (
                name,
                OverrideSpan(
                    _to_file(option_start, starts, offsets),
                    _to_file(option_end - 1, starts, offsets) + 1,
                    _to_file(value_offset + start, starts, offsets),
                    _to_file(value_offset + max(end - 1, start), starts, offsets)
                    + (1 if end > start else 0),
                    braced,
                ),
            )
        )
    return found


def override_span(text: str, service: Service, override: Override) -> OverrideSpan:
    """The span of the `-o` that wins for override.name (the last one)."""
    matches = [span for name, span in override_spans(text, service) if name == override.name]
    if not matches:
        raise ValueError(f"-o {override.name} not found in service {service.key}")
    return matches[-1]


def override_region(text: str, span: OverrideSpan) -> Region:
    virtual = text[span.value_start : span.value_end]
    tokens = tuple((span.value_start + a, span.value_start + b) for a, b in _tokenize(virtual))
    if span.braced:
        return Region(span.value_start, tokens, ", ", " ")
    return Region(span.value_start, tokens, ",", ",", pad="")


# -- edits -------------------------------------------------------------------------------


def _splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def replace_value(text: str, region: Region, value: str) -> str:
    """Replace a whole value (scalar parameters), keeping what surrounds it."""
    if region.tokens:
        return _splice(text, region.tokens[0][0], region.value_end, value)
    start = region.value_start
    prefix = "" if not value or (start > 0 and text[start - 1] in SPACE) else region.pad
    return _splice(text, start, start, prefix + value)


def rewrite_list(
    text: str, region: Region, items: Sequence[tuple[int, int]], operations: Sequence[Operation]
) -> str:
    """Apply item operations to a list value in place.

    `items` are token-index ranges of the items (restrictions.group_items). Existing items
    keep their exact text; the separators between slots stay where they are.
    """
    if not region.tokens:
        current: list[Item] = []
        for operation in operations:
            if isinstance(operation, Insert):
                current.insert(operation.position, operation.item)
            elif isinstance(operation, Replace):
                current[operation.position] = operation.item
        joined = region.default_separator.join(item.text(region.joiner) for item in current)
        return replace_value(text, region, joined)
    slots = [(region.tokens[a][0], region.tokens[b - 1][1]) for a, b in items]
    pieces = [text[a:b] for a, b in slots]
    separators = [text[slots[i][1] : slots[i + 1][0]] for i in range(len(slots) - 1)]
    for operation in operations:
        if isinstance(operation, Move):
            piece = pieces.pop(operation.source)
            pieces.insert(operation.target, piece)
        elif isinstance(operation, Insert):
            pieces.insert(operation.position, operation.item.text(region.joiner))
            if separators:
                neighbour = min(max(operation.position - 1, 0), len(separators) - 1)
                separators.insert(neighbour, separators[neighbour])
            else:
                separators.append(region.default_separator)
        else:
            pieces[operation.position] = operation.item.text(region.joiner)
    body = pieces[0] + "".join(
        sep + piece for sep, piece in zip(separators, pieces[1:], strict=True)
    )
    return _splice(text, slots[0][0], slots[-1][1], body)


def set_main(text: str, definition: Definition | None, name: str, value: str) -> str:
    """Set a main.cf parameter at its winning definition, or append it."""
    if definition is not None:
        return replace_value(text, main_region(text, definition), value)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + f"{name} = {value}\n"


def definition_lines(text: str, definition: Definition) -> str:
    """The physical lines of a definition, as written (comment lines inside included)."""
    offsets = line_offsets(text)
    start = offsets[definition.first_line - 1]
    end = offsets[definition.last_line] if definition.last_line < len(offsets) else len(text)
    lines = text[start:end]
    return lines if lines.endswith("\n") else lines + "\n"


def restore_definition(
    text: str, current: Definition | None, source_text: str, source: Definition
) -> str:
    """Put a definition back exactly as it is written in another file (a backup)."""
    lines = definition_lines(source_text, source)
    if current is None:
        if text and not text.endswith("\n"):
            text += "\n"
        return text + lines
    offsets = line_offsets(text)
    start = offsets[current.first_line - 1]
    end = offsets[current.last_line] if current.last_line < len(offsets) else len(text)
    if end == len(text) and not text.endswith("\n"):
        lines = lines.removesuffix("\n")
    return text[:start] + lines + text[end:]


def delete_main(text: str, definition: Definition) -> str:
    """Remove a definition (all its physical lines)."""
    offsets = line_offsets(text)
    start = offsets[definition.first_line - 1]
    end = offsets[definition.last_line] if definition.last_line < len(offsets) else len(text)
    return text[:start] + text[end:]


def format_override(name: str, value: str) -> str:
    if any(ch in SPACE for ch in value) or value.startswith("{"):
        return f"-o {{ {name} = {value} }}"
    return f"-o {name}={value}"


def set_override(text: str, service: Service, override: Override, value: str) -> str:
    span = override_span(text, service, override)
    if not span.braced and any(ch in SPACE for ch in value):
        return _splice(
            text, span.option_start, span.option_end, format_override(override.name, value)
        )
    return replace_value(text, override_region(text, span), value)


def add_override(text: str, service: Service, name: str, value: str) -> str:
    """A new `-o` line at the end of the service, indented like its other option lines."""
    offsets = line_offsets(text)
    indent = "  "
    for number in range(service.first_line + 1, service.last_line + 1):
        start, end = _line_span(offsets, text, number)
        line = text[start:end]
        if not _is_skipped(line) and line.lstrip(SPACE).startswith("-o"):
            indent = line[: len(line) - len(line.lstrip(SPACE))]
    _, end = _line_span(offsets, text, service.last_line)
    insertion = "\n" + indent + format_override(name, value)
    return _splice(text, end, end, insertion)


def remove_override(text: str, service: Service, override: Override) -> str:
    span = override_span(text, service, override)
    offsets = line_offsets(text)
    # The physical line that holds the option: drop it whole when nothing else is on it.
    number = max(i for i, start in enumerate(offsets, start=1) if start <= span.option_start)
    start, end = _line_span(offsets, text, number)
    rest = text[start : span.option_start] + text[span.option_end : end]
    if rest.strip(SPACE) == "" and number != service.first_line:
        line_end = end + 1 if end < len(text) and text[end] == "\n" else end
        return text[:start] + text[line_end:]
    cut_start = span.option_start
    while cut_start > start and text[cut_start - 1] in " \t":
        cut_start -= 1
    return text[:cut_start] + text[span.option_end :]


def append_service(text: str, row: str) -> str:
    if text and not text.endswith("\n"):
        text += "\n"
    return text + row + ("" if row.endswith("\n") else "\n")
