"""Postfix match lists: mynetworks, relay_domains, mydestination, virtual domains.

As match_list.c / match_ops.c: patterns in order, the first that matches decides, `!`
negates, `/file/name` is replaced by the patterns in that file, `type:table` looks up the
name (and its parent domains when the table takes fixed-string keys) or the address.
Host-name patterns match the name exactly or, with parent-style matching
(`parent_domain_matches_subdomains`), any subdomain; `.domain` always matches subdomains.
Address patterns are addresses, `[address]` or CIDR networks.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from postharden.access.tables import Table, TableCache
from postharden.config.model import split_list

_V4_CHARS = frozenset("01234567890.")
_V6_CHARS = frozenset("01234567890.abcdefABCDEF:")


class ListItem:
    """One pattern of a match list (filled in while the list is parsed)."""

    __slots__ = ("negate", "network", "outside", "pattern", "table", "text")

    def __init__(self, text: str, negate: bool, pattern: str) -> None:
        self.text = text  # as written, with `!`
        self.negate = negate
        self.pattern = pattern  # lowercase, without `!`
        self.table: Table | None = None
        self.network: tuple[int, int, int] | None = None  # (version, network, mask)
        self.outside = False

    def __repr__(self) -> str:
        return f"ListItem({self.text!r})"


class MatchList:
    """A parsed match list with the parameter it came from."""

    __slots__ = ("cache", "errors", "items", "parameter", "parent_style")

    def __init__(self, parameter: str, parent_style: bool) -> None:
        self.parameter = parameter
        self.parent_style = parent_style
        self.items: list[ListItem] = []
        self.errors: list[str] = []
        self.cache: dict[tuple[str, str], ListItem | None] = {}

    def __repr__(self) -> str:
        return f"MatchList({self.parameter!r}, {[item.text for item in self.items]!r})"

    def match_name(self, name: str) -> ListItem | None:
        """domain_list_match / string match on host names: the deciding item or None."""
        key = (name, "")
        if key in self.cache:
            return self.cache[key]
        found = self._match_name(name)
        if len(self.cache) < 65536 and not self.outside_items():
            self.cache[key] = found
        return found

    def _match_name(self, name: str) -> ListItem | None:
        name = name.lower()
        for item in self.items:
            if _match_hostname(self, item, name):
                return None if item.negate else item
        return None

    def match_client(self, name: str, address: str) -> ListItem | None:
        """namadr_list_match: name first, then address, per pattern."""
        key = (name, address)
        if key in self.cache:
            return self.cache[key]
        found = self._match_client(name, address)
        if len(self.cache) < 65536:
            self.cache[key] = found
        return found

    def _match_client(self, name: str, address: str) -> ListItem | None:
        name = name.lower()
        address = address.lower()
        for item in self.items:
            if _match_hostname(self, item, name) or _match_hostaddr(item, address):
                return None if item.negate else item
        return None

    def outside_items(self) -> list[ListItem]:
        return [item for item in self.items if item.outside]


def _match_hostname(lst: MatchList, item: ListItem, name: str) -> bool:
    table = item.table
    if table is not None:
        if table.outside:
            return False
        entry = name
        first = True
        while entry:
            if (first or table.fixed) and table.get(entry, partial=not first) is not None:
                return True
            first = False
            dot = entry.find(".", 1)
            if dot < 0:
                break
            entry = entry[dot + 1 :] if lst.parent_style else entry[dot:]
        return False
    pattern = item.pattern
    if name == pattern:
        return True
    if lst.parent_style:
        return name.endswith("." + pattern) and len(name) > len(pattern) + 1
    if pattern.startswith("."):
        return name.endswith(pattern) and len(name) > len(pattern)
    return False


def _match_hostaddr(item: ListItem, address: str) -> bool:
    if not address or not set(address) <= _V6_CHARS:
        return False
    table = item.table
    if table is not None:
        return not table.outside and table.get(address) is not None
    pattern = item.pattern
    if not pattern.startswith("["):
        if address == pattern:
            return True
    elif pattern[1:] == address + "]":
        return True
    if item.network is None:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    version, network, mask = item.network
    return parsed.version == version and (int(parsed) & mask) == network


def parse_match_list(
    parameter: str, value: str, tables: TableCache, parent_style: bool, depth: int = 0
) -> MatchList:
    result = MatchList(parameter, parent_style)
    _add_items(result, value, tables, depth)
    return result


def _add_items(result: MatchList, value: str, tables: TableCache, depth: int) -> None:
    for word in split_list(value):
        negate = False
        pattern = word
        while pattern.startswith("!"):
            negate = not negate
            pattern = pattern[1:]
        if pattern.startswith("/") and depth < 10:
            # A file of patterns, read in place (match_list_parse).
            try:
                text = Path(pattern).read_text(encoding="utf-8", errors="replace")
            except OSError as error:
                result.errors.append(f"{result.parameter}: open {pattern}: {error.strerror}")
                continue
            lines = [
                line.split("#", 1)[0] if line.lstrip().startswith("#") else line
                for line in text.splitlines()
            ]
            _add_items(result, " ".join(lines), tables, depth + 1)
            continue
        item = ListItem(word, negate, pattern if ":" in pattern else pattern.lower())
        if _is_table(pattern):
            item.table = tables.get(pattern)
            item.outside = item.table.outside
            if item.table.error:
                result.errors.append(f"{result.parameter}: {item.table.error}")
        else:
            item.network = _parse_network(item.pattern)
            if item.network is None and "/" in item.pattern and _looks_like_address(item.pattern):
                result.errors.append(f"{result.parameter}: bad net/mask pattern: {pattern!r}")
        result.items.append(item)


def _is_table(pattern: str) -> bool:
    # MATCH_DICTIONARY(): an unbracketed IPv6 address is taken for a table, as in Postfix.
    return not pattern.startswith("[") and ":" in pattern


def _looks_like_address(pattern: str) -> bool:
    return set(pattern) <= (_V6_CHARS | {"[", "]", "/"})


def _parse_network(pattern: str) -> tuple[int, int, int] | None:
    if "/" not in pattern or not _looks_like_address(pattern):
        return None
    text = pattern.replace("[", "").replace("]", "")
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.netmask)
