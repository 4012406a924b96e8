"""Which parameter names Postfix knows, and which settings it ignores as "unused".

postconf (src/postconf/postconf_user.c, postconf_service.c, postconf_dbms.c,
postconf_unused.c) knows a name when it is

- built in (the defaults table) or service-defined (`<service>_destination_concurrency_limit`
  for a master.cf row whose command is smtp, lmtp, local, virtual, error, pipe or spawn);
- user-defined and *used*: it has a `name = value` entry and is referenced as `$name` from a
  value in main.cf, from an `-o` value in master.cf, or from the default value of a built-in
  parameter that main.cf leaves alone; or it is listed in `smtpd_restriction_classes`;
- a legacy database parameter: `ldap:name` (also `mysql:`, `pgsql:`, `sqlite:`,
  `memcache:`, behind `proxy:`) in a value makes `name_server_host` etc. known.

Every other `name = value` in main.cf, and every other `-o name=value` of a service, is an
"unused parameter": Postfix ignores it (postconf -n hides it and warns). A `$name` whose
name has no value anywhere is an "undefined parameter" and expands to nothing.

`analyse_names(config)` computes both, exactly as postconf does; the tests compare it with
the warnings of the real postconf.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from postharden.config.defaults import LEGACY_PARAMETERS, RAW_PARAMETERS, READ_ONLY_PARAMETERS
from postharden.config.expand import ExpansionError, expand

if TYPE_CHECKING:
    from postharden.config.master import Service
    from postharden.config.model import PostfixConfig

# Suffixes of legacy database parameters (postconf_dbms.c; checked against Postfix 3.7.11).
DBMS_SUFFIXES: dict[str, list[str]] = {
    "ldap": [
        "bind",
        "bind_dn",
        "bind_pw",
        "cache",
        "cache_expiry",
        "cache_size",
        "chase_referrals",
        "debuglevel",
        "dereference",
        "domain",
        "expansion_limit",
        "leaf_result_attribute",
        "query_filter",
        "recursion_limit",
        "result_attribute",
        "result_format",
        "sasl_authz_id",
        "sasl_mechs",
        "sasl_minssf",
        "sasl_realm",
        "scope",
        "search_base",
        "server_host",
        "server_port",
        "size_limit",
        "special_result_attribute",
        "start_tls",
        "terminal_result_attribute",
        "timeout",
        "tls_ca_cert_dir",
        "tls_ca_cert_file",
        "tls_cert",
        "tls_cipher_suite",
        "tls_key",
        "tls_random_file",
        "tls_require_cert",
        "version",
    ],
    "mysql": [
        "additional_conditions",
        "dbname",
        "domain",
        "expansion_limit",
        "hosts",
        "option_file",
        "option_group",
        "password",
        "query",
        "result_format",
        "select_field",
        "table",
        "tls_CAfile",
        "tls_CApath",
        "tls_cert_file",
        "tls_ciphers",
        "tls_key_file",
        "tls_verify_cert",
        "user",
        "where_field",
    ],
    "pgsql": [
        "additional_conditions",
        "dbname",
        "domain",
        "expansion_limit",
        "hosts",
        "password",
        "query",
        "result_format",
        "select_field",
        "select_function",
        "table",
        "user",
        "where_field",
    ],
    "sqlite": [
        "additional_conditions",
        "dbpath",
        "domain",
        "expansion_limit",
        "query",
        "result_format",
        "select_field",
        "table",
        "where_field",
    ],
    "memcache": [
        "backup",
        "data_size_limit",
        "domain",
        "flags",
        "key_format",
        "line_size_limit",
        "max_try",
        "memcache",
        "retry_pause",
        "timeout",
        "ttl",
    ],
}

# mac_expand() in scan mode reports every macro name, in both branches of `?`/`:` and in
# relational operands; `$$` is a literal dollar.
_MACRO_NAME = re.compile(r"\$(?:\$|\{\s*(\w+)|\((\w+)|(\w+))")
_LIST_SEPARATORS = re.compile(r"[ ,\t\r\n]+")


def macro_names(value: str) -> list[str]:
    """Every `$name` in a raw value, nested ones included, in order."""
    names: list[str] = []
    for match in _MACRO_NAME.finditer(value):
        name = match.group(1) or match.group(2) or match.group(3)
        if name:
            names.append(name)
    return names


class UnusedSetting(NamedTuple):
    """A setting Postfix ignores: its name is neither built in nor used."""

    file: str  # "main.cf" or "master.cf"
    name: str
    value: str
    service: Service | None  # for master.cf: the service whose -o it is


class UndefinedReference(NamedTuple):
    """`$name` in a value where name has no value anywhere (it expands to nothing)."""

    file: str  # where the referencing value is: "main.cf" or "master.cf"
    name: str
    referenced_by: str  # the parameter whose value holds the reference
    service: Service | None


class NameAnalysis(NamedTuple):
    known: frozenset[str]  # built-in, service-defined and used user-defined global names
    unused: tuple[UnusedSetting, ...]
    undefined: tuple[UndefinedReference, ...]


class _Scope:
    def __init__(self, service: Service | None, params: dict[str, str]) -> None:
        self.service = service
        self.params = params
        self.valid: set[str] = set()


def analyse_names(config: PostfixConfig) -> NameAnalysis:
    """Known, unused and undefined names, as postconf computes them."""
    builtin = set(config.defaults.values) | set(config.service_defaults)
    builtin |= {"config_directory", "mydomain", "mynetworks", *READ_ONLY_PARAMETERS}
    builtin |= LEGACY_PARAMETERS
    main_params = {name: d.value for name, d in config.winning.items()}
    scopes = [
        _Scope(s, {o.name: o.value for o in s.overrides if o.name not in READ_ONLY_PARAMETERS})
        for s in config.services
    ]
    global_valid: set[str] = set()
    restriction_classes: set[str] = set()
    undefined: list[UndefinedReference] = []

    def flag(name: str, scope: _Scope | None) -> bool:
        """Mark a user-defined name valid; True when it has a value somewhere."""
        supplied = False
        if scope is not None and name in scope.params:
            scope.valid.add(name)
            supplied = True
        elif name in main_params:
            global_valid.add(name)
            supplied = True
        if scope is None:
            for other in scopes:
                if name in other.params:
                    other.valid.add(name)
                    supplied = True
        return supplied

    def check(name: str, scope: _Scope | None, referenced_by: str) -> None:
        if not flag(name, scope) and name not in builtin and name not in global_valid:
            file = "main.cf" if scope is None else "master.cf"
            service = None if scope is None else scope.service
            undefined.append(UndefinedReference(file, name, referenced_by, service))

    def evaluate(value: str, params: dict[str, str]) -> str:
        try:
            return expand(value, lambda name, _test: params.get(name)).value
        except ExpansionError:
            return ""

    def dbms(value: str, scope: _Scope | None) -> None:
        def lookup(name: str, _test: bool) -> str | None:
            if scope is not None and name in scope.params:
                return scope.params[name]
            return main_params.get(name)

        try:
            expanded = expand(value, lookup).value
        except ExpansionError:
            return
        for token in _LIST_SEPARATORS.split(expanded):
            db_type, colon, prefix = token.partition(":")
            while colon and db_type == "proxy":
                db_type, colon, prefix = prefix.partition(":")
            if not colon or prefix.startswith(("/", ".")):
                continue
            for suffix in DBMS_SUFFIXES.get(db_type, ()):
                flag(f"{prefix}_{suffix}", scope)

    def scan_namespace(params: dict[str, str], scope: _Scope | None) -> None:
        classes = params.get("smtpd_restriction_classes")
        if classes is not None:
            for name in _LIST_SEPARATORS.split(evaluate(classes, params)):
                if not name:
                    continue
                if scope is None:
                    restriction_classes.add(name)
                check(name, scope, "smtpd_restriction_classes")
        for name, value in params.items():
            if scope is not None and name in restriction_classes:
                scope.valid.add(name)
            if name in RAW_PARAMETERS:
                continue
            for referenced in macro_names(value):
                check(referenced, scope, name)
            dbms(value, scope)

    # Defaults that main.cf leaves alone may name obsolete parameters ($virtual_maps): such
    # a main.cf setting still works and is not unused.
    for name in sorted(builtin):
        if name in RAW_PARAMETERS or name in main_params:
            continue
        default = config.defaults.values.get(name) or config.service_defaults.get(name)
        if default and "$" in default:
            for referenced in macro_names(default):
                flag(referenced, None)
    scan_namespace(main_params, None)
    for scope in scopes:
        if scope.params:
            scan_namespace(scope.params, scope)

    known = frozenset(builtin | global_valid)
    unused: list[UnusedSetting] = [
        UnusedSetting("main.cf", name, value, None)
        for name, value in main_params.items()
        if name not in known
    ]
    for scope in scopes:
        unused.extend(
            UnusedSetting("master.cf", name, value, scope.service)
            for name, value in scope.params.items()
            if name not in known and name not in scope.valid
        )
    return NameAnalysis(known, tuple(unused), tuple(undefined))
