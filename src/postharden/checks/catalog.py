"""The check catalog: every check declared once with a stable ID and its metadata.

    @check("PH-DIS-001", "VRFY is enabled", Category.DISCLOSURE, Severity.MEDIUM,
           implements=("runbook:vrfy",), references=(POSTCONF("disable_vrfy_command"),))
    def vrfy(env: CheckEnv) -> Iterable[Hit]:
        '''User documentation: what, why, what the fix changes.'''

IDs are stable: a check may be retired, never renumbered. The docstring is the user
documentation (docs/commands/audit.md is generated from the same text).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from postharden.checks.model import Category, CheckFunction, CheckSpec, Reference, Severity

_REGISTRY: dict[str, CheckSpec] = {}
_ID = re.compile(r"^PH-(REL|ACC|DIS|TLS|AUT|CNT|LIM|FIL|SVC|SYN)-\d{3}$")
CHECK_MODULES = (
    "relay",
    "disclosure",
    "hygiene",
    "tls",
    "auth",
    "content",
    "limits",
    "service",
    "files",
    "syntax",
)


def postconf_ref(name: str) -> Reference:
    return Reference(f"postconf(5) {name}", f"https://www.postfix.org/postconf.5.html#{name}")


def readme_ref(name: str, anchor: str = "") -> Reference:
    url = f"https://www.postfix.org/{name}.html" + (f"#{anchor}" if anchor else "")
    return Reference(f"Postfix {name}", url)


def rfc_ref(number: int, section: str = "") -> Reference:
    title = f"RFC {number}" + (f" section {section}" if section else "")
    anchor = f"#section-{section}" if section else ""
    return Reference(title, f"https://www.rfc-editor.org/rfc/rfc{number}{anchor}")


def check(
    check_id: str,
    title: str,
    category: Category,
    severity: Severity,
    *,
    implements: tuple[str, ...],
    references: tuple[Reference, ...],
) -> Callable[[CheckFunction], CheckFunction]:
    if not _ID.match(check_id):
        raise ValueError(f"bad check id {check_id!r}")

    def register(function: CheckFunction) -> CheckFunction:
        if check_id in _REGISTRY:
            raise ValueError(f"duplicate check id {check_id}")
        _REGISTRY[check_id] = CheckSpec(
            check_id, title, category, severity, implements, references, function
        )
        return function

    return register


def load_catalog() -> tuple[CheckSpec, ...]:
    """Every declared check, ordered by ID."""
    for name in CHECK_MODULES:
        importlib.import_module(f"postharden.checks.{name}")
    return tuple(sorted(_REGISTRY.values(), key=lambda spec: spec.id))
