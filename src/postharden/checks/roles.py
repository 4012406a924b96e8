"""Roles: versioned data files (`checks/roles/*.json`) that set what each check expects.

A role file says which severity a check has for that kind of server and which checks do not
apply to it, with why. Files are validated on load; a broken file is an InputError naming
the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from postharden.checks.model import Severity
from postharden.errors import InputError

ROLE_NAMES = ("mx", "submission", "relay-hub", "local-only")
ROLE_SCHEMA = 1
_EXPECT_KEYS = {
    "public_smtp": bool,  # port 25 open to the world is the point of the role
    "local_delivery": bool,  # the server delivers mail for its own domains
    "greylisting": bool,  # a policy service is expected on port 25
    "rbl": bool,  # DNS blocklists are expected on port 25
    "loopback_only": bool,  # inet_interfaces must be loopback-only
    "submission": bool,  # a submission (587) or smtps (465) service is expected
}


class RoleError(InputError):
    """A role name that does not exist or a role file that is not valid."""


class Role(NamedTuple):
    name: str
    version: str
    title: str
    description: str
    expects: dict[str, bool]
    severity: dict[str, Severity]
    not_applicable: dict[str, str]

    def expect(self, key: str) -> bool:
        return self.expects[key]

    def severity_for(self, check_id: str, default: Severity) -> Severity:
        return self.severity.get(check_id, default)


def _fail(name: str, message: str) -> RoleError:
    return RoleError(message, location=f"role file {name}.json")


def parse_role(name: str, document: Any) -> Role:
    """Validate a role document (already parsed from JSON)."""
    if not isinstance(document, dict):
        raise _fail(name, "must be a JSON object")
    required = {
        "schema",
        "name",
        "version",
        "title",
        "description",
        "expects",
        "severity",
        "not_applicable",
    }
    missing = sorted(required - set(document))
    if missing:
        raise _fail(name, "missing field(s): " + ", ".join(missing))
    unknown = sorted(set(document) - required)
    if unknown:
        raise _fail(name, "unknown field(s): " + ", ".join(unknown))
    if document["schema"] != ROLE_SCHEMA:
        raise _fail(name, f"schema must be {ROLE_SCHEMA}, not {document['schema']!r}")
    if document["name"] != name:
        raise _fail(name, f"name {document['name']!r} does not match the file name")
    for field in ("version", "title", "description"):
        if not isinstance(document[field], str) or not document[field]:
            raise _fail(name, f"{field} must be a non-empty string")
    expects = document["expects"]
    if not isinstance(expects, dict) or set(expects) != set(_EXPECT_KEYS):
        raise _fail(name, "expects must set exactly: " + ", ".join(sorted(_EXPECT_KEYS)))
    for key, value in expects.items():
        if not isinstance(value, _EXPECT_KEYS[key]):
            raise _fail(name, f"expects.{key} must be true or false")
    severity: dict[str, Severity] = {}
    if not isinstance(document["severity"], dict):
        raise _fail(name, "severity must be an object of check id -> severity")
    for check_id, text in document["severity"].items():
        try:
            severity[check_id] = Severity.parse(str(text))
        except ValueError as error:
            raise _fail(name, f"severity.{check_id}: {error}") from None
    not_applicable = document["not_applicable"]
    if not isinstance(not_applicable, dict) or not all(
        isinstance(v, str) and v for v in not_applicable.values()
    ):
        raise _fail(name, "not_applicable must be an object of check id -> reason")
    both = sorted(set(severity) & set(not_applicable))
    if both:
        raise _fail(name, "checks both rated and not applicable: " + ", ".join(both))
    return Role(
        name=name,
        version=document["version"],
        title=document["title"],
        description=document["description"],
        expects=dict(expects),
        severity=severity,
        not_applicable=dict(not_applicable),
    )


def load_role(name: str) -> Role:
    if name not in ROLE_NAMES:
        raise RoleError(f"unknown role {name!r} (one of: {', '.join(ROLE_NAMES)})")
    # Beside this module (package data), read without importlib.resources' import cost.
    data = Path(__file__).with_name("roles") / f"{name}.json"
    try:
        document = json.loads(data.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise _fail(name, f"cannot be read: {error}") from None
    return parse_role(name, document)
