"""Lookup tables as smtpd sees them: access maps and the tables inside match lists.

Read from their source text, never from a compiled database: `hash:`, `btree:`, `lmdb:`,
`cdb:`, `dbm:` read the source file beside the `.db`/`.lmdb` that Postfix opens (and warn
when that database is missing or older than its source), `texthash:` reads the file
itself, `cidr:`, `regexp:`, `pcre:` are parsed as Postfix parses them (first match wins,
`!` negation, `if`/`endif`), `inline:{...}` and `static:` are read from the value.

Fixed-string tables (hash, texthash, inline, ...) fold keys to lower case and answer
partial lookups (parent domains, shorter networks, `user@`); pattern tables (cidr, regexp,
pcre) see only the full key, as with Postfix's DICT_FLAG_FIXED rule in maps_find().

Tables whose answer lives outside the configuration (ldap, mysql, pgsql, sqlite,
socketmap, tcp, memcache, proxied remote tables) have `outside = True`: the engine reports
their lookups as depending on an outside answer.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import re
from pathlib import Path
from typing import NamedTuple

from postharden.config.model import split_list

# The database file each indexed type opens beside its source (dict_open per type).
_INDEXED_SUFFIX = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb", "dbm": ".dir"}
_PATTERN_TYPES = frozenset({"cidr", "regexp", "pcre"})
_OUTSIDE_TYPES = frozenset(
    {"ldap", "mysql", "pgsql", "sqlite", "socketmap", "tcp", "memcache", "nisplus", "netinfo"}
)
MAX_TABLE_BYTES = 64 * 1024 * 1024


class Hit(NamedTuple):
    """A lookup result: the value and the file:line (or table spec) it came from."""

    value: str
    where: str


class Table:
    """One lookup table, read once. `get(key, partial)` mirrors dict_get under maps_find."""

    def __init__(self, spec: str, config_dir: Path) -> None:
        self.spec = spec
        self.type, _, self.name = spec.partition(":")
        self.type = self.type.lower()
        self.fixed = True  # answers partial (fixed-string) lookups
        self.outside = False
        self.error: str | None = None  # lookups fail: smtpd answers 451 4.3.5
        self.warnings: list[str] = []
        self._entries: dict[str, Hit] = {}
        self._patterns: list[_Pattern] = []
        self._cidrs: list[_CidrRule] = []
        self._static: str | None = None
        self._unix: str | None = None
        self._pattern_cache: dict[str, Hit | None] = {}
        self._load(config_dir)

    # -- loading ---------------------------------------------------------------------

    def _load(self, config_dir: Path) -> None:
        kind, name = self.type, self.name
        while kind == "proxy":
            # proxy:type:name is answered by proxymap from the same table.
            kind, _, name = name.partition(":")
            kind = kind.lower()
        self.type, self.name = kind, name
        if kind in _OUTSIDE_TYPES:
            self.outside = True
            return
        if kind == "inline":
            self._load_inline(name)
        elif kind == "static":
            self._static = _unbrace(name)
        elif kind == "fail":
            self.error = f"{self.spec}: fail table: every lookup fails"
        elif kind == "nis":
            # Debian's Postfix has NIS; without a NIS domain every lookup is "not found".
            return
        elif kind == "unix":
            if name not in ("passwd.byname", "group.byname"):
                self.error = f"{self.spec}: unknown unix table"
            self._unix = name
        elif kind == "environ":
            self._entries = {k.lower(): Hit(v, self.spec) for k, v in os.environ.items()}
        elif kind in ("texthash", *_INDEXED_SUFFIX):
            self._load_fixed_file(kind, name)
        elif kind in _PATTERN_TYPES:
            self.fixed = False
            text = self._read(Path(name))
            if text is None:
                return
            if kind == "cidr":
                self._load_cidr(text)
            else:
                self._load_regexp(text, pcre=kind == "pcre")
        elif kind in ("randmap", "pipemap", "unionmap", "internal"):
            self.outside = True
        else:
            self.error = f"unsupported dictionary type: {kind}"

    def _read(self, path: Path) -> str | None:
        try:
            if path.stat().st_size > MAX_TABLE_BYTES:
                self.error = f"{path}: larger than {MAX_TABLE_BYTES} bytes"
                return None
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            self.error = f"open {path}: No such file or directory"
        except OSError as error:
            self.error = f"open {path}: {error.strerror or error}"
        return None

    def _load_fixed_file(self, kind: str, name: str) -> None:
        source = Path(name)
        if kind in _INDEXED_SUFFIX:
            database = Path(name + _INDEXED_SUFFIX[kind])
            try:
                db_mtime = database.stat().st_mtime
            except OSError:
                self.error = f"open database {database}: No such file or directory"
                return
            try:
                if source.stat().st_mtime > db_mtime:
                    self.warnings.append(
                        f"{database} is older than {source}: Postfix answers from the "
                        f"database (run postmap {kind}:{source}); read from the source"
                    )
            except OSError:
                self.error = (
                    f"{source}: the source of {database} is missing; cannot read the database"
                )
                return
        text = self._read(source)
        if text is None:
            return
        for line, key, value in _logical_entries(text):
            key = key.lower()
            if key in self._entries:
                self.warnings.append(f"{source}:{line}: duplicate entry: {key!r} (first wins)")
                continue
            self._entries[key] = Hit(value, f"{source}:{line}")

    def _load_inline(self, name: str) -> None:
        body = name.strip()
        if not (body.startswith("{") and body.endswith("}")):
            self.error = f"{self.spec}: inline table needs {{...}}"
            return
        for item in split_list(body[1:-1]):
            text = _unbrace(item) if item.startswith("{") else item
            key, equals, value = text.partition("=")
            if not equals:
                self.error = f"{self.spec}: missing '=' after attribute name: {text!r}"
                return
            key = key.strip().lower()
            self._entries.setdefault(key, Hit(value.strip(), self.spec))

    def _load_cidr(self, text: str) -> None:
        for line, key, value in _logical_entries(text):
            negate = key.startswith("!")
            pattern = key[1:] if negate else key
            if pattern.startswith("[") and "]" in pattern:
                pattern = pattern[1:].replace("]", "", 1)
            try:
                network = ipaddress.ip_network(pattern, strict=True)
            except ValueError:
                self.warnings.append(f"{self.name}:{line}: bad net/mask pattern {key!r}: skipped")
                continue
            self._cidrs.append(
                _CidrRule(
                    network.version,
                    int(network.network_address),
                    int(network.netmask),
                    negate,
                    value,
                    f"{self.name}:{line}",
                )
            )

    def _load_regexp(self, text: str, pcre: bool) -> None:
        depth_skip: list[_Pattern] = []
        for line, rule in _logical_lines(text):
            stripped = rule.strip()
            lowered = stripped.lower()
            if lowered == "endif":
                if depth_skip:
                    depth_skip.pop()
                continue
            is_if = lowered.startswith("if") and len(stripped) > 2 and stripped[2] in " \t!/"
            body = stripped[2:].lstrip() if is_if else stripped
            negate = body.startswith("!")
            if negate:
                body = body[1:].lstrip()
            parsed = _parse_regexp(body, pcre)
            if parsed is None:
                self.warnings.append(f"{self.name}:{line}: bad regular expression: skipped")
                continue
            regex, rest = parsed
            where = f"{self.name}:{line}"
            if is_if:
                depth_skip.append(_Pattern(regex, negate, "", where, tuple(depth_skip)))
                continue
            self._patterns.append(_Pattern(regex, negate, rest.strip(), where, tuple(depth_skip)))

    # -- lookups ----------------------------------------------------------------------

    def get(self, key: str, partial: bool = False) -> Hit | None:
        """dict_get: the value for key, or None. Partial lookups skip pattern tables."""
        if partial and not self.fixed:
            return None
        if self._static is not None:
            return Hit(self._static, self.spec)
        if self._unix is not None:
            if self._unix == "passwd.byname":
                try:
                    entry = pwd.getpwnam(key)
                except (KeyError, UnicodeError, ValueError):
                    return None
                return Hit(":".join(str(x) for x in entry), "/etc/passwd")
            return None
        if self.fixed:
            return self._entries.get(key.lower())
        cache = self._pattern_cache
        if key in cache:
            return cache[key]
        found = self._cidr_get(key) if self._cidrs else self._regexp_get(key)
        if len(cache) < 65536:
            cache[key] = found
        return found

    def _cidr_get(self, key: str) -> Hit | None:
        try:
            # The key as smtpd gives it: `[192.0.2.1]` (a HELO literal) is no address.
            address = ipaddress.ip_address(key)
        except ValueError:
            return None
        number, version = int(address), address.version
        for rule in self._cidrs:
            if rule.version != version:
                continue
            if ((number & rule.mask) == rule.network) != rule.negate:
                return Hit(rule.value, rule.where)
        return None

    def _regexp_get(self, key: str) -> Hit | None:
        for pattern in self._patterns:
            if not all(_matches(guard, key) for guard in pattern.guards):
                continue
            if pattern.negate:
                if pattern.regex.search(key) is None:
                    return Hit(pattern.value, pattern.where)
                continue
            found = pattern.regex.search(key)
            if found is not None:
                return Hit(_substitute(pattern.value, found), pattern.where)
        return None

    @property
    def entry_keys(self) -> list[str]:
        """Keys of a fixed table (for relay analysis: the networks and names it singles out)."""
        return list(self._entries)

    def entries(self) -> list[tuple[str, Hit]]:
        return list(self._entries.items())

    def cidr_rules(self) -> list[tuple[str, Hit]]:
        result = []
        for rule in self._cidrs:
            network = ipaddress.ip_network((rule.network, bin(rule.mask).count("1")))
            result.append(
                (("!" if rule.negate else "") + str(network), Hit(rule.value, rule.where))
            )
        return result


class _CidrRule(NamedTuple):
    version: int
    network: int
    mask: int
    negate: bool
    value: str
    where: str


class _Pattern(NamedTuple):
    regex: re.Pattern[str]
    negate: bool
    value: str
    where: str
    guards: tuple[_Pattern, ...]


def _matches(guard: _Pattern, key: str) -> bool:
    return (guard.regex.search(key) is None) == guard.negate


def _substitute(value: str, found: re.Match[str]) -> str:
    if "$" not in value:
        return value

    def group(match: re.Match[str]) -> str:
        number = int(match.group(1) or match.group(2))
        try:
            return found.group(number) or ""
        except IndexError:
            return ""

    return re.sub(r"\$\{?(\d+)\}?|\$\((\d+)\)", group, value)


def _parse_regexp(body: str, pcre: bool) -> tuple[re.Pattern[str], str] | None:
    """`/pattern/flags rest` (any delimiter) -> compiled pattern, rest of the line."""
    if not body:
        return None
    delimiter = body[0]
    i, escaped = 1, False
    while i < len(body):
        ch = body[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == delimiter:
            break
        i += 1
    if i >= len(body):
        return None
    source = body[1:i]
    j = i + 1
    flags_text = ""
    while j < len(body) and not body[j].isspace():
        flags_text += body[j]
        j += 1
    flags = re.IGNORECASE  # both regexp and pcre tables are case-insensitive by default
    for flag in flags_text:
        if flag == "i":
            flags ^= re.IGNORECASE
        elif flag == "m":
            flags |= re.MULTILINE
        elif flag == "s" and pcre:
            flags |= re.DOTALL
        elif flag == "x" and pcre:
            flags |= re.VERBOSE
        elif flag in "AEUXx":
            continue
        else:
            return None
    if "A" in flags_text and pcre:
        source = r"\A(?:" + source + ")"
    try:
        return re.compile(source, flags), body[j:]
    except re.error:
        return None


def _unbrace(text: str) -> str:
    text = text.strip()
    if text.startswith("{") and text.endswith("}"):
        return text[1:-1].strip()
    return text


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Table source lines: `#` comments, blank lines skipped, indented lines continue."""
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t" and lines:
            first, previous = lines[-1]
            lines[-1] = (first, previous + " " + stripped)
            continue
        lines.append((number, stripped))
    return lines


def _logical_entries(text: str) -> list[tuple[int, str, str]]:
    entries = []
    for number, line in _logical_lines(text):
        parts = line.split(None, 1)
        key = parts[0]
        value = parts[1].strip() if len(parts) > 1 else ""
        entries.append((number, key, value))
    return entries


class TableCache:
    """Tables of one configuration, each read once."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self._tables: dict[str, Table] = {}

    def get(self, spec: str) -> Table:
        table = self._tables.get(spec)
        if table is None:
            table = Table(spec, self.config_dir)
            self._tables[spec] = table
        return table

    def warnings(self) -> list[str]:
        return [w for t in self._tables.values() for w in t.warnings]

    def __len__(self) -> int:
        return len(self._tables)
