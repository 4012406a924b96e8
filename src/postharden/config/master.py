"""master.cf: services, their 8 fields, and their `-o name=value` overrides.

Read as postconf does (src/postconf/postconf_master.c): logical lines as in main.cf (so an
indented `-o` line after a blank or comment line still belongs to the service above),
fields split on whitespace with `{...}` kept together, `-oname=value` split into `-o`
`name=value`, `-o { name = value }` unwrapped and normalised to `name=value`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import NamedTuple

from postharden.config.syntax import (
    SPACE,
    LogicalLine,
    NameValueError,
    split_nameval,
    split_spans,
)

SERVICE_TYPES = ("unix", "fifo", "inet", "pass", "unix-dgram")


class Override(NamedTuple):
    """One `-o name=value` of a master.cf service."""

    name: str
    value: str
    line: int


class Service(NamedTuple):
    """One master.cf row."""

    name: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    arguments: tuple[str, ...]
    overrides: tuple[Override, ...]
    first_line: int
    last_line: int
    problems: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """`name/type`, the service's identity in postconf -M/-P."""
        return f"{self.name}/{self.type}"

    @property
    def program(self) -> str:
        """The daemon that runs (`smtpd`, `postscreen`, ...), without a directory."""
        return PurePosixPath(self.command).name

    @property
    def is_smtpd(self) -> bool:
        return self.program == "smtpd"

    @property
    def listen(self) -> tuple[str | None, str] | None:
        """For inet services: (host or None for every inet_interfaces address, port)."""
        if self.type != "inet":
            return None
        name = self.name
        if name.startswith("["):
            host, _, rest = name[1:].partition("]")
            return host, rest.removeprefix(":") or name
        host, colon, port = name.rpartition(":")
        if not colon:
            return None, name
        return host or None, port

    def override(self, name: str) -> Override | None:
        """The `-o` that sets name (the last one wins), or None."""
        found = None
        for item in self.overrides:
            if item.name == name:
                found = item
        return found

    def overrides_dict(self) -> dict[str, str]:
        return {item.name: item.value for item in self.overrides}


class MasterError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def split_fields(text: str) -> list[tuple[int, str]]:
    """Whitespace-separated fields with balanced {} kept whole: (offset, text)."""
    return [(start, text[start:end]) for start, end in split_spans(text, SPACE)]


def _unwrap_braces(text: str) -> str:
    """extpar() with STRIP: `{ a = b }` -> `a = b`."""
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1].strip(SPACE)
    return text.strip(SPACE)


def _check_fields(fields: list[str], raw: str) -> None:
    if fields[1] not in SERVICE_TYPES:
        raise ValueError(f'invalid type field "{fields[1]}" in "{raw}"')
    for index, label in ((2, "private"), (3, "unpriv"), (4, "chroot")):
        value = fields[index]
        if len(value) != 1 or value not in "yn-":
            raise ValueError(f'invalid {label} field "{value}" in "{raw}"')
    wakeup = fields[5].removesuffix("?")
    if fields[5] != "-" and not (wakeup.isdigit() and wakeup.isascii()):
        raise ValueError(f'invalid wakeup field "{fields[5]}" in "{raw}"')
    if fields[6] != "-" and not (fields[6].isdigit() and fields[6].isascii()):
        raise ValueError(f'invalid maxproc field "{fields[6]}" in "{raw}"')


def parse_service(logical: LogicalLine) -> Service:
    """One logical master.cf line."""
    raw = logical.text
    located = split_fields(raw)
    if len(located) < 8:
        raise MasterError(logical.first_line, "bad field count")
    words = [text for _, text in located]
    try:
        _check_fields(words, raw.replace("\n", " "))
    except ValueError as error:
        raise MasterError(logical.first_line, str(error)) from None

    arguments: list[str] = []
    overrides: list[Override] = []
    problems: list[str] = []
    index = 8
    options_done = False
    while index < len(located):
        offset, word = located[index]
        index += 1
        if options_done or not word.startswith("-") or word == "--":
            options_done = True
            arguments.append(_unwrap_braces(word) if word.startswith("{") else word)
            continue
        # "-vo" style bundles: split before the first option that expects a value.
        if len(word) > 2 and "o" in word[2:] and word[1] != "o":
            cut = word.index("o", 2)
            arguments.append(word[:cut])
            word = "-" + word[cut:]
        if word[1:2] != "o":
            arguments.append(word)
            continue
        if len(word) > 2:
            value_offset, value_word = offset + 2, word[2:]
        elif index < len(located):
            value_offset, value_word = located[index]
            index += 1
        else:
            arguments.append(word)
            problems.append("-o without a value")
            continue
        arguments.extend(["-o", value_word])
        braced = value_word.startswith("{")
        text = _unwrap_braces(value_word) if braced else value_word
        if braced:
            try:
                name, value = split_nameval(text)
            except NameValueError as error:
                problems.append(f'{error}: "{text}"')
                continue
        else:
            name, equals, value = text.partition("=")
            if not equals or not name:
                problems.append(f'-o argument is not name=value: "{text}"')
                continue
        overrides.append(Override(name, value, logical.line_at(value_offset)))
    return Service(
        name=words[0],
        type=words[1],
        private=words[2],
        unpriv=words[3],
        chroot=words[4],
        wakeup=words[5],
        maxproc=words[6],
        command=words[7],
        arguments=tuple(arguments),
        overrides=tuple(overrides),
        first_line=logical.first_line,
        last_line=logical.last_line,
        problems=tuple(problems),
    )
