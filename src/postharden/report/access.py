"""Renderers of `postharden explain` and `postharden relay`: strings, never printing."""

from __future__ import annotations

import json

from postharden.access.model import Decision, RelayReport, ServiceRelay

SCHEMA_VERSION = 1


def decision_object(decision: Decision) -> dict[str, object]:
    """One `explain` answer as JSON data (also one line of `--cases` output)."""
    data: dict[str, object] = {"schema_version": SCHEMA_VERSION}
    data.update(decision.as_dict())
    return data


def render_decision_json(decision: Decision) -> str:
    return json.dumps(decision_object(decision), indent=2)


def render_decision_line(decision: Decision) -> str:
    return json.dumps(decision_object(decision), separators=(",", ":"))


def render_decision_text(decision: Decision) -> str:
    if decision.decision == "unavailable":
        head = f"{decision.service}: smtpd refuses to run - no answer ({decision.text})"
    else:
        head = f"{decision.service}: {decision.command.upper()} -> {decision.code} {decision.text}"
    lines = [head, f"decision: {decision.decision}"]
    if decision.trace:
        lines.append("trace:")
        width = max(len(step.restriction) for step in decision.trace)
        for step in decision.trace:
            detail = f"  {step.detail}" if step.detail else ""
            lines.append(
                f"  {step.stage:<9} {step.restriction:<{width}}  {step.result:<15} "
                f"[{step.origin}]{detail}"
            )
    for item in decision.outside:
        other = item.if_yes
        lines.append(
            f"depends on an outside answer: {item.restriction} [{item.origin}]: if "
            f"{item.question}: {other.command.upper()} -> {other.code} {other.text} "
            f"({other.decision})"
        )
    for warning in decision.warnings:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)


def render_relay_json(report: RelayReport) -> str:
    return json.dumps(report.as_dict(), indent=2)


def _cell_mark(code: int, decision: str, relays: bool, outside: bool) -> str:
    mark = {"accept": "accept", "reject": "reject", "defer": "defer"}.get(decision, decision)
    text = f"{mark} {code}"
    if relays:
        text += " RELAY"
    if outside:
        text += " ?"
    return text


def _service_text(service: ServiceRelay) -> list[str]:
    lines = [f"{service.service} ({service.listen}, {service.origin}): {service.summary}"]
    if service.matrix:
        columns = [d.id for d in service.destinations]
        rows: dict[str, dict[str, str]] = {}
        for cell in service.matrix:
            rows.setdefault(cell.client, {})[cell.destination] = _cell_mark(
                cell.decision.code, cell.decision.decision, cell.relays, bool(cell.decision.outside)
            )
        labels = {c.id: f"{c.label} [{c.address}]" for c in service.clients}
        width = max(len(label) for label in labels.values())
        col_width = max(16, *(len(c) for c in columns))
        lines.append("  " + " " * width + "  " + "".join(f"{c:<{col_width}}" for c in columns))
        for client in service.clients:
            cells = rows.get(client.id, {})
            lines.append(
                f"  {labels[client.id]:<{width}}  "
                + "".join(f"{cells.get(c, '-'):<{col_width}}" for c in columns)
            )
    for risk in service.risks:
        lines.append(f"  risk {risk.id} [{risk.origin}]: {risk.message}")
    return lines


def render_relay_text(report: RelayReport) -> str:
    lines = [f"Relay analysis of {report.config_dir} (Postfix {report.postfix_version})"]
    if not report.services:
        lines.append("no smtpd services in master.cf")
    for service in report.services:
        lines.append("")
        lines.extend(_service_text(service))
    lines.append("")
    lines.append("(a ? marks an answer that depends on DNS, a policy server or a certificate)")
    return "\n".join(lines)
