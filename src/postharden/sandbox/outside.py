"""Contacts a sandbox configuration would make to services outside the instance.

``outside_contacts(main_cf, master_cf) -> list[Contact]`` finds, in main.cf values and
master.cf ``-o`` overrides:

- ``check_policy_service`` endpoints (``inet:host:port``, ``host:port``, ``unix:/path``,
  also inside ``{ endpoint, option=... }`` groups and restriction classes);
- ``smtpd_milters`` / ``non_smtpd_milters`` endpoints (``inet:``, ``unix:/path``);
- ``smtpd_proxy_filter`` (a before-queue content filter, ``host:port``);
- lookup tables served by other processes or hosts: ``tcp:``, ``socketmap:``, ``ldap:``,
  ``mysql:``, ``pgsql:``, ``memcache:`` (also behind ``proxy:``).

A loopback endpoint is still outside: ``inet:127.0.0.1:10023`` is the production postgrey.
Unix sockets given relative to the queue directory (``unix:private/policy``,
``private/policy``) are the sandbox's own master.cf services and stay.

``isolate(main_cf, master_cf, replacements)`` rewrites every contact to the endpoint the
caller gives for it (``{"inet:127.0.0.1:10023": "inet:127.0.0.1:40123"}``, keyed by the
endpoint or table exactly as written) and raises ``OutsideContactError`` naming every
contact without a replacement: a sandbox asked to be isolated never talks to a service it
was not told about.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from postharden.errors import EXIT_UNEVALUATED, PostHardenError

MILTER_PARAMETERS = ("smtpd_milters", "non_smtpd_milters")
PROXY_PARAMETERS = ("smtpd_proxy_filter",)
REMOTE_TABLES = ("tcp", "socketmap", "ldap", "mysql", "pgsql", "memcache")


class OutsideContactError(PostHardenError):
    """The configuration contacts a service outside the sandbox that has no replacement."""

    exit_code = EXIT_UNEVALUATED


@dataclass(frozen=True)
class Contact:
    kind: str  # policy | milter | proxy_filter | table
    endpoint: str  # as written
    where: str  # main.cf:NAME or master.cf:SERVICE -o NAME


_WORD = re.compile(r"[^\s,{}]+")


def _is_local_socket(endpoint: str) -> bool:
    """A unix socket relative to the queue directory: the sandbox's own service."""
    if endpoint.startswith("unix:"):
        return not endpoint[5:].startswith("/")
    return ":" not in endpoint and not endpoint.startswith("/")


def _endpoints_in(value: str, kind: str) -> list[str]:
    found: list[str] = []
    if kind == "policy":
        for match in re.finditer(r"check_policy_service\s*[\s,]\s*(\{[^}]*\}|[^\s,]+)", value):
            token = match.group(1)
            if token.startswith("{"):
                words = _WORD.findall(token[1:-1])
                token = words[0] if words else ""
            if token and not _is_local_socket(token):
                found.append(token)
    elif kind in ("milter", "proxy_filter"):
        for group in re.finditer(r"\{[^}]*\}|[^\s,{}]+", value):
            token = group.group(0)
            if token.startswith("{"):
                words = _WORD.findall(token[1:-1])
                token = words[0] if words else ""
            if token and not token.startswith("$") and not _is_local_socket(token):
                found.append(token)
    else:
        pattern = r"(?:proxy:)?(?:" + "|".join(REMOTE_TABLES) + r"):[^\s,{}]+"
        found.extend(match.group(0) for match in re.finditer(pattern, value))
    return found


def _main_values(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    current: list[str] = []

    def flush() -> None:
        if current:
            name, sep, value = " ".join(part.strip() for part in current).partition("=")
            if sep:
                values[name.strip()] = value.strip()
            current.clear()

    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            flush()
        current.append(line)
    flush()
    return values


def _master_overrides(text: str) -> list[tuple[str, str, str]]:
    """(service, name, value) of every `-o name=value` in master.cf."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and rows:
            rows[-1].extend(line.split())
        else:
            rows.append(line.split())
    result = []
    for words in rows:
        service = words[0] if words else "?"
        joined = " ".join(words[8:])
        for match in re.finditer(r"-o\s*\{\s*([\w]+)\s*=\s*([^}]*)\}|-o\s*([\w]+)=(\S*)", joined):
            if match.group(1):
                result.append((service, match.group(1), match.group(2).strip()))
            else:
                result.append((service, match.group(3), match.group(4)))
    return result


def outside_contacts(main_cf: str, master_cf: str) -> list[Contact]:
    places = [(f"main.cf:{name}", name, value) for name, value in _main_values(main_cf).items()]
    places += [
        (f"master.cf:{service} -o {name}", name, value)
        for service, name, value in _master_overrides(master_cf)
    ]
    contacts: list[Contact] = []
    for where, name, value in places:
        kinds = ["policy", "table"]
        if name in MILTER_PARAMETERS:
            kinds.append("milter")
        if name in PROXY_PARAMETERS:
            kinds.append("proxy_filter")
        for kind in kinds:
            contacts.extend(Contact(kind, e, where) for e in _endpoints_in(value, kind))
    return list(dict.fromkeys(contacts))


def isolate(main_cf: str, master_cf: str, replacements: Mapping[str, str]) -> tuple[str, str]:
    """main.cf and master.cf with every outside contact replaced; see the docstring."""
    contacts = outside_contacts(main_cf, master_cf)
    missing = [c for c in contacts if c.endpoint not in replacements]
    if missing:
        listed = "; ".join(f"{c.kind} {c.endpoint} ({c.where})" for c in missing)
        raise OutsideContactError(
            f"the sandbox would contact services outside it, with no loopback replacement "
            f"given: {listed}"
        )
    for endpoint in sorted({c.endpoint for c in contacts}, key=len, reverse=True):
        pattern = re.compile(r"(?<![\w:/.\-])" + re.escape(endpoint) + r"(?![\w:/.\-])")
        replacement = replacements[endpoint].replace("\\", "\\\\")
        main_cf = pattern.sub(replacement, main_cf)
        master_cf = pattern.sub(replacement, master_cf)
    return main_cf, master_cf


__all__ = ["Contact", "OutsideContactError", "isolate", "outside_contacts"]
