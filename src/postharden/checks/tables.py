"""Where a configuration names lookup tables (`type:name`), found without any I/O.

Postfix accepts a table wherever a parameter takes a list of tables or a restriction takes
one (`check_client_access hash:/etc/postfix/access`). `proxy:` wraps another table;
`unionmap:{...}` / `pipemap:{...}` hold several.
"""

from __future__ import annotations

from typing import NamedTuple

from postharden.config import Context, PostfixConfig, split_list

# Tables read from a file: the source is the file; hash/btree/lmdb/cdb/dbm have a
# compiled file next to it that postmap writes.
COMPILED_SUFFIX = {
    "hash": ".db",
    "btree": ".db",
    "lmdb": ".lmdb",
    "cdb": ".cdb",
    "dbm": ".pag",
    "sdbm": ".pag",
}
SOURCE_ONLY = frozenset({"texthash", "regexp", "pcre", "cidr"})
# Client configuration files of database tables: they hold passwords.
CLIENT_CONFIG = frozenset({"mysql", "pgsql", "ldap", "sqlite", "memcache"})
FILE_TYPES = frozenset(COMPILED_SUFFIX) | SOURCE_ONLY | CLIENT_CONFIG
NESTING_TYPES = frozenset({"unionmap", "pipemap"})
# Parameters whose tables hold secrets (passwords).
SECRET_PARAMETERS = frozenset(
    {"smtp_sasl_password_maps", "lmtp_sasl_password_maps", "smtpd_sasl_password_maps"}
)


class TableRef(NamedTuple):
    """One `type:name` in one parameter of main.cf or of a service's -o."""

    type: str
    path: str
    parameter: str
    service: str | None  # name/type when the value came from an -o override
    origin: str

    @property
    def spec(self) -> str:
        return f"{self.type}:{self.path}"

    @property
    def compiled_path(self) -> str | None:
        suffix = COMPILED_SUFFIX.get(self.type)
        return self.path + suffix if suffix else None

    @property
    def secret(self) -> bool:
        return self.parameter in SECRET_PARAMETERS or self.type in CLIENT_CONFIG


def _table_tokens(value: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for token in split_list(value):
        while token.startswith("proxy:"):
            token = token[len("proxy:") :]
        kind, colon, rest = token.partition(":")
        if not colon or not rest:
            continue
        if kind in NESTING_TYPES and rest.startswith("{") and rest.endswith("}"):
            found.extend(_table_tokens(rest[1:-1]))
        elif kind in FILE_TYPES and not rest.startswith("{"):
            found.append((kind, rest))
    return found


def table_refs(config: PostfixConfig) -> list[TableRef]:
    """Every file-backed table that main.cf or an -o override names, once per place."""
    refs: list[TableRef] = []
    seen: set[tuple[str, str, str | None]] = set()
    contexts: list[Context] = [config.main, *(config.effective(s) for s in config.services)]
    for context in contexts:
        service = context.service
        names = [o.name for o in service.overrides] if service is not None else context.set_names()
        for name in names:
            try:
                value = context.expanded(name)
            except ValueError:
                continue  # an expansion error: lint reports it
            for kind, path in _table_tokens(value):
                key = (f"{kind}:{path}", name, service.key if service else None)
                if key in seen:
                    continue
                seen.add(key)
                refs.append(
                    TableRef(
                        kind,
                        path,
                        name,
                        service.key if service else None,
                        str(context.origin(name)),
                    )
                )
    return refs


def tables_of(context: Context, name: str) -> list[tuple[str, str]]:
    """(type, path) of the file-backed tables in one parameter as this context sees it."""
    return _table_tokens(context.expanded(name))
