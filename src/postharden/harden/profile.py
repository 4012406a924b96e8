"""Hardening profiles: versioned data files (TOML), validated when they are loaded.

A profile is a list of rules. Each rule names the finding it fixes and says why; a rule
that could stop legitimate mail carries a `flag` (it is only used when that flag is given)
and a `breaks` sentence saying what it stops. Shipped profiles live next to this module
(`profiles/<name>.toml`), role parts in `profiles/role-<name>.toml`; a profile may also be
given as a path.

Rule kinds
----------
``relay``       close the relay on every smtpd service (repair, never replace, the lists)
``mynetworks``  trust loopback plus the networks the admin names; drop networks wider
                than ``min_prefix_v4`` / ``min_prefix_v6``
``set``         a parameter to ``value`` unless it already has one of ``accept`` (or
                matches ``accept_pattern``); ``scope = "smtpd"`` also repairs `-o`
                overrides of smtpd services; ``only_if_unset`` leaves an admin's choice
``list-add``    an ``item`` in a restriction list ``parameter`` at ``position``
                (``end`` or ``after-relay-closer``)
``service``     a master.cf service (``service``, ``type``, ``command``, ``options``)
                created when absent; its ``options`` enforced with `-o` when present
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from postharden.harden.errors import ProfileError

KINDS = frozenset({"relay", "mynetworks", "set", "list-add", "service"})
SCOPES = frozenset({"main", "smtpd"})
POSITIONS = frozenset({"end", "after-relay-closer"})
# Conditions a rule may require, evaluated on the configuration by plan.py.
CONDITIONS = {
    "tls-certificate": "a server certificate (smtpd_tls_cert_file or smtpd_tls_chain_files)",
    "sasl-backend": "a SASL backend (smtpd_sasl_type, smtpd_sasl_path)",
}
# Flags for rules that could stop legitimate mail: never in a plan unless asked for.
FLAGS = {
    "require-tls-port25": "require STARTTLS from every client on port 25",
    "reject-unknown-client": "reject clients without matching forward and reverse DNS",
    "reject-html-body": "reject messages whose body starts with HTML",
}
PROFILE_FORMAT = 1
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str
    finding: str
    why: str
    parameter: str | None = None
    value: str | None = None
    accept: tuple[str, ...] = ()
    accept_pattern: str | None = None
    scope: str = "main"
    only_if_unset: bool = False
    requires: tuple[str, ...] = ()
    flag: str | None = None
    breaks: str | None = None
    item: str | None = None
    position: str = "end"
    service: str | None = None
    service_type: str = "inet"
    command: str = "smtpd"
    options: tuple[tuple[str, str], ...] = ()
    new_service_options: tuple[tuple[str, str], ...] = ()
    min_prefix_v4: int = 8
    min_prefix_v6: int = 16

    def accepts(self, value: str) -> bool:
        """True when the (normalized) value already satisfies this rule."""
        normalized = normalize_list(value)
        if self.accept_pattern is not None and re.fullmatch(self.accept_pattern, value.strip()):
            return True
        accepted = self.accept or ((self.value,) if self.value is not None else ())
        return any(normalize_list(candidate) == normalized for candidate in accepted)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    version: int
    description: str
    rules: tuple[Rule, ...]
    sources: tuple[str, ...] = field(default=())
    role: str | None = None

    @property
    def label(self) -> str:
        base = f"{self.name} v{self.version}"
        return f"{base} (role {self.role})" if self.role else base


def normalize_list(value: str) -> str:
    """Compare values the way Postfix splits them: commas and spaces are one separator."""
    return " ".join(value.replace(",", " ").split())


def _profiles_dir() -> Any:
    return resources.files("postharden.harden") / "profiles"


def shipped_profiles() -> list[str]:
    names = []
    for entry in _profiles_dir().iterdir():
        name = entry.name
        if name.endswith(".toml") and not name.startswith("role-"):
            names.append(name.removesuffix(".toml"))
    return sorted(names)


def shipped_roles() -> list[str]:
    names = []
    for entry in _profiles_dir().iterdir():
        name = entry.name
        if name.startswith("role-") and name.endswith(".toml"):
            names.append(name.removeprefix("role-").removesuffix(".toml"))
    return sorted(names)


def _read(name_or_path: str, *, role: bool = False) -> tuple[dict[str, Any], str]:
    if "/" in name_or_path or name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ProfileError(
                f"cannot read profile: {error.strerror}", location=str(path)
            ) from None
        source = str(path)
    else:
        file_name = f"role-{name_or_path}.toml" if role else f"{name_or_path}.toml"
        entry = _profiles_dir() / file_name
        if not _NAME.match(name_or_path) or not entry.is_file():
            known = shipped_roles() if role else shipped_profiles()
            what = "role" if role else "profile"
            raise ProfileError(f"no {what} {name_or_path!r} (shipped: {', '.join(known)})")
        text = entry.read_text(encoding="utf-8")
        source = file_name
    try:
        return tomllib.loads(text), source
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"not valid TOML: {error}", location=source) from None


def _rule(raw: Mapping[str, Any], source: str) -> Rule:
    where = f"{source}: rule {raw.get('id', '?')!s}"
    allowed = set(Rule.__dataclass_fields__) - {"options", "new_service_options", "service_type"}
    allowed |= {"options", "new_service_options", "type"}
    unknown = set(raw) - allowed
    if unknown:
        raise ProfileError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    for key in ("id", "kind", "finding", "why"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise ProfileError(f"{where}: {key!r} is required (a non-empty string)")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("options", "new_service_options"):
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ProfileError(f"{where}: {key!r} must be a table of strings")
            values[key] = tuple(value.items())
        elif key in ("accept", "requires"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ProfileError(f"{where}: {key!r} must be a list of strings")
            values[key] = tuple(value)
        elif key == "type":
            values["service_type"] = value
        else:
            values[key] = value
    try:
        return Rule(**values)
    except TypeError as error:
        raise ProfileError(f"{where}: {error}") from None


def validate_rule(rule: Rule, known_parameters: Iterable[str] | None = None) -> list[str]:
    """Every reason this rule is inconsistent (empty when it is fine)."""
    problems: list[str] = []
    known = set(known_parameters) if known_parameters is not None else None
    if not _NAME.match(rule.id):
        problems.append("id must be lower-case words joined by '-'")
    if rule.kind not in KINDS:
        problems.append(f"kind {rule.kind!r} is not one of {', '.join(sorted(KINDS))}")
    if rule.scope not in SCOPES:
        problems.append(f"scope {rule.scope!r} is not one of {', '.join(sorted(SCOPES))}")
    for condition in rule.requires:
        if condition not in CONDITIONS:
            problems.append(f"unknown condition {condition!r}")
    if (rule.flag is None) != (rule.breaks is None):
        problems.append("a rule with a flag must say what it breaks, and only such a rule")
    if rule.flag is not None and rule.flag not in FLAGS:
        problems.append(f"unknown flag {rule.flag!r}")
    if rule.kind in ("set", "list-add"):
        if not rule.parameter:
            problems.append(f"a {rule.kind} rule needs 'parameter'")
        elif known is not None and rule.parameter not in known:
            problems.append(f"{rule.parameter} is not a Postfix parameter")
    if rule.kind == "set":
        if rule.value is None:
            problems.append("a set rule needs 'value'")
        elif not rule.accepts(rule.value):
            problems.append(f"value {rule.value!r} is not accepted by its own rule")
        if rule.accept_pattern is not None:
            try:
                re.compile(rule.accept_pattern)
            except re.error as error:
                problems.append(f"accept_pattern: {error}")
    if rule.kind == "list-add":
        if not rule.item:
            problems.append("a list-add rule needs 'item'")
        if rule.position not in POSITIONS:
            problems.append(
                f"position {rule.position!r} is not one of {', '.join(sorted(POSITIONS))}"
            )
    if rule.kind == "service":
        if not rule.service:
            problems.append("a service rule needs 'service'")
        for name, _ in rule.options + rule.new_service_options:
            if known is not None and name not in known:
                problems.append(f"option {name} is not a Postfix parameter")
    if rule.kind == "mynetworks" and not (
        0 <= rule.min_prefix_v4 <= 32 and 0 <= rule.min_prefix_v6 <= 128
    ):
        problems.append("min_prefix_v4 must be 0..32 and min_prefix_v6 0..128")
    return problems


def _load_rules(
    name: str, *, role: bool, seen: tuple[str, ...]
) -> tuple[dict[str, Any], list[Rule], list[str]]:
    raw, source = _read(name, role=role)
    if name in seen:
        raise ProfileError(f"profile {name!r} extends itself ({' -> '.join((*seen, name))})")
    if raw.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"'format' must be {PROFILE_FORMAT}", location=source)
    if not isinstance(raw.get("version"), int) or raw["version"] < 1:
        raise ProfileError("'version' must be a positive integer", location=source)
    if not isinstance(raw.get("name"), str) or not _NAME.match(raw["name"]):
        raise ProfileError("'name' must be a lower-case name", location=source)
    rules: list[Rule] = []
    sources: list[str] = []
    extends = raw.get("extends")
    if extends is not None:
        if not isinstance(extends, str):
            raise ProfileError("'extends' must be a profile name", location=source)
        _, rules, sources = _load_rules(extends, role=False, seen=(*seen, name))
    entries = raw.get("rule", [])
    if not isinstance(entries, list):
        raise ProfileError("'rule' must be an array of tables ([[rule]])", location=source)
    by_id = {rule.id: index for index, rule in enumerate(rules)}
    own_ids: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise ProfileError("each [[rule]] must be a table", location=source)
        rule = _rule(entry, source)
        if rule.id in own_ids:
            raise ProfileError(f"rule id {rule.id!r} appears twice", location=source)
        own_ids.add(rule.id)
        if rule.id in by_id:
            rules[by_id[rule.id]] = rule  # a derived profile refines its parent's rule
        else:
            by_id[rule.id] = len(rules)
            rules.append(rule)
    return raw, rules, [*sources, source]


def load_profile(
    name: str, role: str | None = None, known_parameters: Iterable[str] | None = None
) -> Profile:
    """A profile (plus a role part) with every rule validated; ProfileError otherwise."""
    raw, rules, sources = _load_rules(name, role=False, seen=())
    if role is not None:
        _, role_rules, role_sources = _load_rules(role, role=True, seen=())
        ids = {rule.id for rule in rules}
        for rule in role_rules:
            if rule.id in ids:
                raise ProfileError(f"role {role!r} redefines rule {rule.id!r} of the profile")
            rules.append(rule)
        sources += role_sources
    known = list(known_parameters) if known_parameters is not None else None
    for rule in rules:
        problems = validate_rule(rule, known)
        if problems:
            raise ProfileError(f"rule {rule.id}: " + "; ".join(problems), location=sources[-1])
    return Profile(
        name=raw["name"],
        version=raw["version"],
        description=str(raw.get("description", "")),
        rules=tuple(rules),
        sources=tuple(sources),
        role=role,
    )
