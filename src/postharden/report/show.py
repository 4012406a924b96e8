"""Renderers for `postharden show`."""

from __future__ import annotations

import json
from typing import Any

from postharden.config import Context, PostfixConfig, Service, normalize_space


def _bool_field(value: str, default: bool) -> bool:
    return default if value == "-" else value == "y"


def listen_text(service: Service) -> str | None:
    listen = service.listen
    if listen is None:
        return None
    host, port = listen
    if host is None:
        return f"*:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def service_document(service: Service) -> dict[str, Any]:
    return {
        "name": service.name,
        "type": service.type,
        "private": _bool_field(service.private, True),
        "unpriv": _bool_field(service.unpriv, True),
        # Postfix 3.0 made chroot default to "n".
        "chroot": _bool_field(service.chroot, False),
        "wakeup": service.wakeup,
        "maxproc": service.maxproc,
        "command": service.command,
        "arguments": list(service.arguments),
        "listen": listen_text(service),
        "line": service.first_line,
        "overrides": {o.name: o.value for o in service.overrides},
        "override_lines": {o.name: o.line for o in service.overrides},
    }


def parameters_document(context: Context, names: list[str]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name in names:
        parameter = context.parameter(name)
        if parameter is None:
            continue
        document[name] = {
            "value": parameter.value,
            "expanded": parameter.expanded,
            "origin": str(parameter.origin),
        }
    return document


def render_json(
    config: PostfixConfig, context: Context, names: list[str], services: list[Service]
) -> str:
    document = {
        "schema_version": 1,
        "postfix_version": config.postfix_version,
        "defaults": config.defaults.source,
        "config_directory": str(config.config_dir),
        "service": context.service.key if context.service else None,
        "parameters": parameters_document(context, names),
        "services": [service_document(s) for s in services],
        "warnings": [str(p) for p in config.problems],
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def render_text(
    config: PostfixConfig, context: Context, names: list[str], services: list[Service]
) -> str:
    lines: list[str] = []
    scope = f"service {context.service.key}" if context.service else "main.cf"
    lines.append(
        f"# {config.config_dir} ({scope}); Postfix {config.postfix_version} "
        f"defaults ({config.defaults.source})"
    )
    for name in names:
        parameter = context.parameter(name)
        if parameter is None:
            continue
        expanded = normalize_space(parameter.expanded)
        raw = normalize_space(parameter.value)
        note = str(parameter.origin)
        if raw != expanded:
            note += f"; from: {raw}"
        lines.append(f"{name} = {expanded}".rstrip() + f"    # {note}")
    if services:
        lines.append("")
        lines.append("# master.cf services")
        for service in services:
            fields = [
                service.name,
                service.type,
                service.private,
                service.unpriv,
                service.chroot,
                service.wakeup,
                service.maxproc,
                service.command,
            ]
            lines.append("  ".join(fields) + f"    # master.cf:{service.first_line}")
            for override in service.overrides:
                lines.append(
                    f"    -o {override.name}={override.value}    # master.cf:{override.line}"
                )
    return "\n".join(lines)
