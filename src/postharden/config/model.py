"""The configuration model: main.cf, master.cf and defaults, per service, with origins."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from postharden.config.defaults import (
    DYNAMIC_DEFAULTS,
    RAW_PARAMETERS,
    READ_ONLY_PARAMETERS,
    Defaults,
    default_mydomain,
    default_mynetworks,
    load_defaults,
    service_defined_defaults,
)
from postharden.config.errors import ConfigError
from postharden.config.expand import Expansion, ExpansionError, expand
from postharden.config.master import MasterError, Service, parse_service
from postharden.config.syntax import (
    LIST_SEPARATORS,
    LineProblem,
    NameValueError,
    logical_lines,
    split_nameval,
    split_spans,
)

# Larger than any real main.cf or master.cf by orders of magnitude; refusing beyond it
# keeps a wrong path (a mailbox, a log) from being read for minutes.
MAX_FILE_BYTES = 16 * 1024 * 1024

# Computed defaults and the parameters they are computed from (mail_params.c).
_DYNAMIC_INPUTS: dict[str, frozenset[str]] = {
    "mydomain": frozenset({"myhostname"}),
    "mynetworks": frozenset({"mynetworks_style", "inet_interfaces", "inet_protocols"}),
}
# Read-only per-service parameters that master sets for each daemon.
_SERVICE_PARAMETERS = frozenset({"process_name", "service_name"})


class Origin(NamedTuple):
    """Where a value comes from: `default`, `main.cf:LINE` or `master.cf:LINE`."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


DEFAULT = Origin("default")


class Definition(NamedTuple):
    """One `name = value` entry of main.cf (a logical line)."""

    name: str
    value: str
    first_line: int
    last_line: int


class Parameter(NamedTuple):
    name: str
    value: str
    expanded: str
    origin: Origin


class ReadProblem(NamedTuple):
    """Something Postfix warns about while reading a file (not fatal)."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return (
            f"{self.file}:{self.line}: {self.message}"
            if self.line
            else f"{self.file}: {self.message}"
        )


class Context:
    """The parameters one process sees: main.cf plus, for a service, its `-o` overrides.

    Values are expanded on demand and cached; a service shares the main.cf expansion of
    every parameter that does not depend on one of its overrides.
    """

    def __init__(
        self, config: PostfixConfig, service: Service | None, parent: Context | None
    ) -> None:
        self.config = config
        self.service = service
        self._parent = parent
        self._cache: dict[str, Expansion] = {}
        # Postfix ignores assignments to read-only names (process_name, service_name ...).
        self._overrides = (
            {k: v for k, v in service.overrides_dict().items() if k not in READ_ONLY_PARAMETERS}
            if service
            else {}
        )
        self._shadow = frozenset(self._overrides) | (
            _SERVICE_PARAMETERS if service else frozenset()
        )

    def raw(self, name: str) -> str | None:
        """The unexpanded value this process sees, or None when the name is undefined."""
        if name in self._overrides:
            return self._overrides[name]
        if self.service is not None:
            if name == "process_name":
                return self.service.program
            if name == "service_name":
                return self.service.name
        definition = self.config.definition(name)
        if definition is not None:
            return definition.value
        return self._default_raw(name)

    def _default_raw(self, name: str) -> str | None:
        """The default value (no main.cf or -o setting), unexpanded."""
        if name in DYNAMIC_DEFAULTS:
            # postconf computes these once, from main.cf, for every service (-Px agrees).
            if self._parent is not None:
                return self._parent.raw(name)
            return self._dynamic_default(name)
        if name == "config_directory":
            return str(self.config.config_dir)
        found = self.config.defaults.values.get(name)
        if found is None:
            found = self.config.service_defaults.get(name)
        return found

    def _dynamic_default(self, name: str) -> str:
        if name == "mydomain":
            return default_mydomain(self.expanded("myhostname"))
        return default_mynetworks(
            self.expanded("mynetworks_style"),
            self.expanded("inet_interfaces"),
            self.expanded("inet_protocols"),
        )

    def origin(self, name: str) -> Origin:
        if self.service is not None:
            override = self.service.override(name)
            if override is not None:
                return Origin("master.cf", override.line)
            if name in _SERVICE_PARAMETERS:
                return Origin("master.cf", self.service.first_line)
        if name in READ_ONLY_PARAMETERS:
            return DEFAULT
        definition = self.config.definition(name)
        if definition is not None:
            return Origin("main.cf", definition.first_line)
        return DEFAULT

    def is_set(self, name: str) -> bool:
        """True when main.cf or an `-o` of this service sets the name (not a default)."""
        return self.origin(name).source != "default"

    def expansion(self, name: str) -> Expansion:
        """The expanded value with the names it was built from; ExpansionError on loops."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if self._parent is not None and name not in self._shadow:
            shared = self._parent.expansion(name)
            if not shared.references & self._shadow:
                self._cache[name] = shared
                return shared
        raw = self.raw(name)
        if raw is None:
            result = Expansion("", frozenset({name}), frozenset())
        elif name in RAW_PARAMETERS:
            # Shown as written; a $reference to it from another value is still expanded
            # (Postfix 3.7), so it must not enter the cache that nested lookups use.
            return Expansion(raw, frozenset(), frozenset())
        else:
            result = expand(raw, self._lookup, self._cache)
            inputs = _DYNAMIC_INPUTS.get(name)
            if inputs and self.config.definition(name) is None and name not in self._overrides:
                result = Expansion(result.value, result.undefined, result.references | inputs)
        self._cache[name] = result
        return result

    def _lookup(self, name: str, test: bool) -> str | None:
        return self.raw(name)

    def expanded(self, name: str) -> str:
        return self.expansion(name).value

    def parameter(self, name: str) -> Parameter | None:
        raw = self.raw(name)
        if raw is None:
            return None
        return Parameter(name, raw, self.expanded(name), self.origin(name))

    def __getitem__(self, name: str) -> Parameter:
        found = self.parameter(name)
        if found is None:
            raise KeyError(name)
        return found

    def names(self) -> list[str]:
        """Every name this process knows: defaults, main.cf and overrides."""
        names = set(self.config.defaults.values) | set(self.config.winning) | set(self._overrides)
        names |= set(self.config.service_defaults)
        names |= DYNAMIC_DEFAULTS | {"config_directory"}
        if self.service is not None:
            names |= _SERVICE_PARAMETERS
        return sorted(names)

    def set_names(self) -> list[str]:
        """Names set in main.cf or by this service's `-o` (like `postconf -n` plus -P)."""
        return sorted(set(self.config.winning) | set(self._overrides))

    def list_value(self, name: str) -> list[str]:
        """A list parameter split as Postfix does: commas and whitespace, {...} kept whole."""
        return split_list(self.expanded(name))


def split_list(value: str) -> list[str]:
    """Split on commas and whitespace, keeping `{ ... }` groups (Postfix >= 3.0) whole."""
    return [value[start:end] for start, end in split_spans(value, LIST_SEPARATORS)]


class PostfixConfig:
    """A Postfix configuration directory read as Postfix reads it."""

    def __init__(
        self,
        config_dir: Path,
        definitions: list[Definition],
        services: list[Service],
        defaults: Defaults,
        problems: list[ReadProblem],
        master_cf_present: bool,
        source_lines: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.config_dir = config_dir
        self.definitions = tuple(definitions)
        self.services = tuple(services)
        self.defaults = defaults
        self.problems = tuple(problems)
        self.master_cf_present = master_cf_present
        # The physical lines of "main.cf" and "master.cf" as read (for lint's line-level
        # checks: a `#` inside a continued value, -o lines after comments).
        self.source_lines = dict(source_lines or {})
        self.winning: dict[str, Definition] = {}
        for definition in definitions:
            # Postfix drops assignments to read-only names ("read-only parameter assignment").
            if definition.name not in READ_ONLY_PARAMETERS:
                self.winning[definition.name] = definition
        self.service_defaults = service_defined_defaults(
            ((s.name, s.command) for s in self.services), defaults
        )
        self.main = Context(self, None, None)
        self._contexts: dict[str, Context] = {}

    @property
    def main_cf(self) -> Path:
        return self.config_dir / "main.cf"

    @property
    def master_cf(self) -> Path:
        return self.config_dir / "master.cf"

    @property
    def postfix_version(self) -> str:
        return self.defaults.version

    def definition(self, name: str) -> Definition | None:
        """The definition that wins (the last one in main.cf)."""
        return self.winning.get(name)

    def definitions_of(self, name: str) -> list[Definition]:
        return [d for d in self.definitions if d.name == name]

    def service(self, name: str) -> Service:
        """A service by `name/type`, or by name when that is unambiguous.

        Every stock master.cf has both `smtp/inet` (the smtpd server) and `smtp/unix` (the
        delivery client); a bare name that matches one smtpd service and other kinds means
        the smtpd service, which is what every server-side question is about.
        """
        for service in self.services:
            if service.key == name:
                return service
        matches = [s for s in self.services if s.name == name]
        if len(matches) == 1:
            return matches[0]
        servers = [s for s in matches if s.is_smtpd]
        if len(servers) == 1:
            return servers[0]
        if not matches:
            known = ", ".join(s.key for s in self.services) or "none"
            raise ConfigError(f"no service {name!r} in master.cf (services: {known})")
        raise ConfigError(
            f"service name {name!r} is ambiguous; say one of " + ", ".join(s.key for s in matches)
        )

    def effective(self, service: Service | None) -> Context:
        """The parameters the given service sees (main.cf for None)."""
        if service is None:
            return self.main
        context = self._contexts.get(service.key)
        if context is None:
            context = Context(self, service, self.main)
            self._contexts[service.key] = context
        return context

    def smtpd_services(self) -> list[Service]:
        return [s for s in self.services if s.is_smtpd]

    def iter_contexts(self) -> Iterator[tuple[Service, Context]]:
        for service in self.services:
            yield service, self.effective(service)

    def check_expansions(self) -> None:
        """Expand every value that is set; raise ConfigError where Postfix would die.

        Defaults that compare compatibility_level are expanded too: a malformed level
        (`compatibility_level =`) is fatal in them, for postconf and every daemon.
        """
        level_defaults = [
            name for name, value in self.defaults.values.items() if "level {" in value
        ]
        checked = [*self.main.set_names(), *level_defaults]
        for context in [self.main, *(self.effective(s) for s in self.services)]:
            names = checked
            if context is not self.main:
                # A value that uses none of the service's overrides expands as in main.cf,
                # which was checked first; only the others can fail differently here.
                names = [*context._overrides] + [
                    name
                    for name in checked
                    if self.main.expansion(name).references & context._shadow
                ]
            for name in names:
                try:
                    context.expansion(name)
                except ExpansionError as error:
                    origin = context.origin(name)
                    if origin.source == "default":
                        origin = context.origin("compatibility_level")
                    location = (
                        f"{self.config_dir / origin.source}:{origin.line}"
                        if origin.line is not None
                        else str(self.main_cf)
                    )
                    raise ConfigError(f"{name}: {error}", location=location) from None


def _read_text(path: Path, label: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"{size // (1024 * 1024)} MiB is not a Postfix configuration file "
                f"(limit {MAX_FILE_BYTES // (1024 * 1024)} MiB)",
                location=str(path),
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"no {label} here", location=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", location=str(path)) from None
    except PermissionError:
        raise ConfigError(
            "permission denied (run as root or a user who can read it)", location=str(path)
        ) from None
    except OSError as error:
        raise ConfigError(error.strerror or str(error), location=str(path)) from None
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ConfigError(
            f"binary data (a NUL byte): not a Postfix {label} file", location=f"{path}:{line}"
        )
    return data.decode("utf-8", errors="replace")


def parse_main_cf(text: str, path: str, problems: list[ReadProblem]) -> list[Definition]:
    """main.cf entries in file order; ConfigError where Postfix stops reading."""
    line_problems: list[LineProblem] = []
    definitions: list[Definition] = []
    for logical in logical_lines(text, line_problems):
        try:
            name, value = split_nameval(logical.text)
        except NameValueError as error:
            shown = logical.text if len(logical.text) <= 60 else logical.text[:57] + "..."
            raise ConfigError(
                f'{error}: "{shown}"', location=f"{path}:{logical.first_line}"
            ) from None
        definitions.append(Definition(name, value, logical.first_line, logical.last_line))
    problems.extend(ReadProblem(path, p.line, p.message) for p in line_problems)
    return definitions


def parse_master_cf(text: str, path: str, problems: list[ReadProblem]) -> list[Service]:
    line_problems: list[LineProblem] = []
    services: list[Service] = []
    for logical in logical_lines(text, line_problems):
        try:
            service = parse_service(logical)
        except MasterError as error:
            raise ConfigError(str(error), location=f"{path}:{error.line}") from None
        services.append(service)
        problems.extend(ReadProblem(path, service.first_line, p) for p in service.problems)
    problems.extend(ReadProblem(path, p.line, p.message) for p in line_problems)
    return services


def load_config(config_dir: Path | str, defaults: str | Defaults = "auto") -> PostfixConfig:
    """Read main.cf and master.cf of a configuration directory.

    `defaults`: "auto" (the installed Postfix, else the bundled snapshot), "installed",
    "bundled", or a Defaults table.
    """
    directory = Path(config_dir)
    try:
        mode = directory.stat().st_mode
    except FileNotFoundError:
        raise ConfigError("no such directory", location=str(directory)) from None
    except PermissionError:
        # A parent directory this user may not enter.
        raise ConfigError("permission denied", location=str(directory)) from None
    except OSError as error:
        raise ConfigError(error.strerror or str(error), location=str(directory)) from None
    if not stat.S_ISDIR(mode):
        raise ConfigError("not a directory", location=str(directory))
    if not os.access(directory, os.R_OK | os.X_OK):
        raise ConfigError("permission denied", location=str(directory))
    table = defaults if isinstance(defaults, Defaults) else load_defaults(defaults)
    problems: list[ReadProblem] = []
    main_path = directory / "main.cf"
    main_text = _read_text(main_path, "main.cf")
    definitions = parse_main_cf(main_text, str(main_path), problems)
    source_lines = {"main.cf": tuple(main_text.split("\n"))}
    master_path = directory / "master.cf"
    services: list[Service] = []
    master_present = master_path.exists()
    if master_present:
        master_text = _read_text(master_path, "master.cf")
        services = parse_master_cf(master_text, str(master_path), problems)
        source_lines["master.cf"] = tuple(master_text.split("\n"))
    else:
        problems.append(ReadProblem(str(master_path), None, "no master.cf: no services"))
    return PostfixConfig(
        directory, definitions, services, table, problems, master_present, source_lines
    )
