"""Renderers for `postharden audit`: text, json, sarif, markdown, html.

Every renderer has the same interface, `render(report) -> str`, and works from the same
document (`audit_document`, the JSON shape): the formats cannot disagree about what was
found. None of them prints, and none decides anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from postharden import __version__
from postharden.checks.model import AuditReport, Evidence, Finding, Severity, Status

SEVERITY_ORDER = [s.value for s in Severity]
STATUS_WORDS = {
    Status.PASSED.value: "pass",
    Status.FAILED.value: "fail",
    Status.ERROR.value: "error",
    Status.NOT_APPLICABLE.value: "not applicable",
    Status.UNKNOWN.value: "unknown",
}
INFORMATION_URI = "https://github.com/postharden/postharden/blob/main/docs/commands/audit.md"


def _evidence(items: tuple[Evidence, ...]) -> dict[str, Any]:
    first = items[0] if items else Evidence()
    document = first.as_dict()
    document["items"] = [e.as_dict() for e in items]
    return document


def _finding(finding: Finding, config_dir: str) -> dict[str, Any]:
    location = None
    if finding.location is not None:
        location = {"file": finding.location[0], "line": finding.location[1]}
    return {
        "id": finding.id,
        "title": finding.title,
        "category": finding.category.value,
        "severity": finding.severity.value,
        "message": finding.message,
        "service": finding.service,
        "parameter": finding.parameter,
        "evidence": _evidence(finding.evidence),
        "fix": finding.fix.as_dict(config_dir) if finding.fix is not None else None,
        "references": [{"title": r.title, "url": r.url} for r in finding.references],
        "fingerprint": finding.fingerprint,
        "location": location,
    }


def audit_document(
    report: AuditReport, *, fail_on: str | None = None, exit_code: int | None = None
) -> dict[str, Any]:
    """The report as the JSON document of schemas/audit.schema.json."""
    counts = report.counts()
    findings = report.findings
    checks = []
    for outcome in report.outcomes:
        spec = report.spec(outcome.id)
        checks.append(
            {
                "id": outcome.id,
                "title": spec.title,
                "category": spec.category.value,
                "severity": spec.severity.value,
                "status": outcome.status.value,
                "reason": outcome.reason,
                "findings": len(outcome.findings),
                "implements": list(spec.implements),
            }
        )
    return {
        "schema_version": 1,
        "tool": {"name": "postharden", "version": __version__},
        "config_dir": report.config_dir,
        "postfix_version": report.postfix_version,
        "role": {
            "name": report.role,
            "version": report.role_version,
            "inferred": report.role_inferred,
            "reason": report.role_reason,
        },
        "services": [
            {
                "service": s.key,
                "program": s.program,
                "listen": s.listen,
                "kind": s.kind,
                "public": s.public,
                "chroot": s.chroot,
                "line": s.line,
            }
            for s in report.services
        ],
        "findings": [_finding(f, report.config_dir) for f in findings],
        "checks": checks,
        "criteria": [
            {
                "id": c.id,
                "title": c.title,
                "document": c.document,
                "status": c.status,
                "reason": c.reason,
                "checks": list(c.checks),
            }
            for c in report.criteria
        ],
        "summary": {
            "findings": len(findings),
            "by_severity": counts["findings_by_severity"],
            "checks": counts["checks_by_status"],
            "suppressed_by_baseline": report.suppressed,
            "fail_on": fail_on,
            "exit_code": exit_code,
        },
    }


Renderer = Callable[[dict[str, Any]], str]


def _json(document: dict[str, Any]) -> str:
    # Compact: the C encoder (indent= falls back to the pure-Python one, 10x slower).
    return json.dumps(document, separators=(",", ":")) + "\n"


def _fix_lines(fix: dict[str, Any] | None) -> list[str]:
    if fix is None:
        return []
    lines = list(fix["shell"]) or [f"(manual) {fix['summary']}"]
    if fix.get("caveat"):
        lines.append(f"caveat: {fix['caveat']}")
    return lines


def _evidence_line(item: dict[str, Any]) -> str:
    head = f"{item['origin']}: " if item.get("origin") else ""
    text = item.get("text") or ""
    effective = item.get("effective")
    value_part = text.partition("=")[2].strip() if "=" in text else None
    if effective is not None and effective != value_part:
        text = f"{text} (effective: {effective or '(empty)'})"
    if item.get("note"):
        text += f"  [{item['note']}]"
    return (head + text).strip()


def _grouped(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: list[tuple[str, list[dict[str, Any]]]] = []
    for severity in SEVERITY_ORDER:
        items = [f for f in document["findings"] if f["severity"] == severity]
        if items:
            groups.append((severity, items))
    return groups


def _criteria_rows(document: dict[str, Any], which: str) -> list[dict[str, Any]]:
    return [c for c in document["criteria"] if c["document"] == which]


def _text(document: dict[str, Any]) -> str:
    role = document["role"]
    out = [
        f"postharden audit of {document['config_dir']} (Postfix {document['postfix_version']})",
        f"role: {role['name']} {role['version']}"
        + (f" (inferred: {role['reason']})" if role["inferred"] else ""),
        "",
        "services:",
    ]
    for s in document["services"]:
        out.append(
            f"  {s['service']:<22} {s['listen'] or '-':<22} {s['kind']:<12} "
            f"{'public' if s['public'] else 'loopback'}  chroot={s['chroot']}  "
            f"master.cf:{s['line']}"
        )
    if not document["services"]:
        out.append("  (no smtpd service)")
    for severity, items in _grouped(document):
        out += ["", f"{severity.upper()} ({len(items)})"]
        for f in items:
            where = f" [{f['service']}]" if f["service"] else ""
            out.append(f"  {f['id']} {f['title']}{where}")
            out.append(f"    {f['message']}")
            for item in f["evidence"]["items"]:
                out.append(f"    evidence: {_evidence_line(item)}")
            for line in _fix_lines(f["fix"]):
                out.append(f"    fix: {line}")
    if not document["findings"]:
        out += ["", "no findings"]
    unanswered = [c for c in document["checks"] if c["status"] in ("unknown", "error")]
    if unanswered:
        out += ["", "not evaluated:"]
        out += [f"  {c['id']} {c['status']}: {c['reason']}" for c in unanswered]
    for which, title in (("runbook", "runbook Done criteria"), ("checklist", "checklist items")):
        out += ["", f"{title}:"]
        for c in _criteria_rows(document, which):
            reason = f"  ({c['reason']})" if c["reason"] and c["status"] != "pass" else ""
            out.append(f"  {c['status']:<15} {c['title']}{reason}")
    summary = document["summary"]
    counts = ", ".join(f"{n} {s}" for s, n in summary["by_severity"].items() if n)
    states = ", ".join(f"{n} {STATUS_WORDS[s]}" for s, n in summary["checks"].items() if n)
    out += ["", f"{summary['findings']} findings ({counts or 'none'}); checks: {states}"]
    if summary["suppressed_by_baseline"]:
        out.append(f"{summary['suppressed_by_baseline']} known findings hidden by --baseline")
    return "\n".join(out) + "\n"


def _md(text: Any) -> str:
    return str(text if text is not None else "").replace("|", "\\|").replace("\n", " ")


def _markdown(document: dict[str, Any]) -> str:
    role = document["role"]
    out = [
        f"# postharden audit: `{document['config_dir']}`",
        "",
        f"Postfix {document['postfix_version']}; role **{role['name']}** {role['version']}"
        + (f" (inferred: {role['reason']})" if role["inferred"] else ""),
        "",
        "| service | listen | kind | public | chroot |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {_md(s['service'])} | {_md(s['listen'])} | {s['kind']} | "
        f"{'yes' if s['public'] else 'no'} | {s['chroot']} |"
        for s in document["services"]
    ]
    for severity, items in _grouped(document):
        out += ["", f"## {severity.capitalize()} ({len(items)})"]
        for f in items:
            out += [
                "",
                f"### {f['id']}: {_md(f['title'])}"
                + (f" ({f['service']})" if f["service"] else ""),
                "",
                _md(f["message"]),
                "",
            ]
            out += [f"- evidence: `{_evidence_line(item)}`" for item in f["evidence"]["items"]]
            lines = _fix_lines(f["fix"])
            if lines:
                out += ["", "```sh", *lines, "```"]
    for which, title in (("runbook", "Runbook Done criteria"), ("checklist", "Checklist")):
        out += ["", f"## {title}", "", "| status | item | why |", "|---|---|---|"]
        out += [
            f"| {c['status']} | {_md(c['title'])} | {_md(c['reason'] if c['status'] != 'pass' else '')} |"
            for c in _criteria_rows(document, which)
        ]
    out += ["", "## Checks", "", "| id | status | reason |", "|---|---|---|"]
    out += [
        f"| {c['id']} | {STATUS_WORDS[c['status']]} | {_md(c['reason'])} |"
        for c in document["checks"]
    ]
    return "\n".join(out) + "\n"


def _html(document: dict[str, Any]) -> str:
    import html  # only for this format

    e = html.escape
    role = document["role"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>postharden audit: {e(document['config_dir'])}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em}"
        ".critical,.high{color:#b00}.medium{color:#a60}pre{background:#f4f4f4;padding:.5em}"
        "</style></head><body>",
        f"<h1>postharden audit: <code>{e(document['config_dir'])}</code></h1>",
        f"<p>Postfix {e(document['postfix_version'])}; role <b>{e(role['name'])}</b> "
        f"{e(role['version'])}"
        + (f" (inferred: {e(role['reason'])})" if role["inferred"] else "")
        + "</p>",
    ]
    for severity, items in _grouped(document):
        parts.append(f'<h2 class="{severity}">{severity.capitalize()} ({len(items)})</h2>')
        for f in items:
            parts.append(
                f'<h3 id="{e(f["fingerprint"])}">{e(f["id"])}: {e(f["title"])}'
                + (f" <small>{e(f['service'])}</small>" if f["service"] else "")
                + "</h3>"
            )
            parts.append(f"<p>{e(f['message'])}</p><ul>")
            parts += [
                f"<li><code>{e(_evidence_line(item))}</code></li>"
                for item in f["evidence"]["items"]
            ]
            parts.append("</ul>")
            lines = _fix_lines(f["fix"])
            if lines:
                parts.append("<pre>" + e("\n".join(lines)) + "</pre>")
    for which, title in (("runbook", "Runbook Done criteria"), ("checklist", "Checklist")):
        parts.append(f"<h2>{title}</h2><table><tr><th>status</th><th>item</th><th>why</th></tr>")
        parts += [
            f"<tr><td>{e(c['status'])}</td><td>{e(c['title'])}</td>"
            f"<td>{e(c['reason'] or '') if c['status'] != 'pass' else ''}</td></tr>"
            for c in _criteria_rows(document, which)
        ]
        parts.append("</table>")
    parts.append("<h2>Checks</h2><table><tr><th>id</th><th>status</th><th>reason</th></tr>")
    parts += [
        f"<tr><td>{e(c['id'])}</td><td>{e(STATUS_WORDS[c['status']])}</td>"
        f"<td>{e(c['reason'] or '')}</td></tr>"
        for c in document["checks"]
    ]
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


_SARIF_LEVEL = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}
_SECURITY_SEVERITY = {
    "critical": "9.5",
    "high": "8.0",
    "medium": "5.5",
    "low": "3.0",
    "info": "1.0",
}


def _sarif_location(location: dict[str, Any] | None, config_dir: str) -> dict[str, Any] | None:
    if location is None:
        return None
    path = Path(location["file"])
    try:
        relative = path.relative_to(config_dir)
        artifact: dict[str, Any] = {"uri": relative.as_posix(), "uriBaseId": "CONFIG_DIR"}
    except ValueError:
        artifact = {"uri": path.as_uri() if path.is_absolute() else path.as_posix()}
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if location.get("line"):
        physical["region"] = {"startLine": int(location["line"])}
    return {"physicalLocation": physical}


def _sarif(document: dict[str, Any]) -> str:
    """SARIF 2.1.0: one rule per check, one result per finding, file/line locations."""
    config_dir = document["config_dir"]
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for check in document["checks"]:
        index[check["id"]] = len(rules)
        rules.append(
            {
                "id": check["id"],
                "name": check["id"].replace("-", ""),
                "shortDescription": {"text": check["title"]},
                "fullDescription": {"text": check["title"]},
                "helpUri": f"{INFORMATION_URI}#{check['id'].lower()}",
                "defaultConfiguration": {"level": _SARIF_LEVEL[check["severity"]]},
                "properties": {
                    "category": check["category"],
                    "tags": ["security", "postfix", check["category"]],
                    "security-severity": _SECURITY_SEVERITY[check["severity"]],
                },
            }
        )
    results: list[dict[str, Any]] = []
    for f in document["findings"]:
        result: dict[str, Any] = {
            "ruleId": f["id"],
            "ruleIndex": index[f["id"]],
            "level": _SARIF_LEVEL[f["severity"]],
            "message": {
                "text": f["message"]
                + (
                    "; fix: " + " && ".join(f["fix"]["shell"])
                    if f["fix"] and f["fix"]["shell"]
                    else ""
                )
            },
            "partialFingerprints": {"postharden/v1": f["fingerprint"]},
            "properties": {
                "severity": f["severity"],
                "service": f["service"],
                "parameter": f["parameter"],
            },
        }
        location = _sarif_location(f["location"], config_dir)
        if location is not None:
            result["locations"] = [location]
        results.append(result)
    notifications = [
        {
            "descriptor": {"id": c["id"]},
            "level": "warning" if c["status"] == "unknown" else "error",
            "message": {"text": f"{c['id']} {c['status']}: {c['reason']}"},
        }
        for c in document["checks"]
        if c["status"] in ("unknown", "error")
    ]
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "postharden",
                        "version": document["tool"]["version"],
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {
                    "CONFIG_DIR": {"uri": Path(config_dir).resolve().as_uri() + "/"},
                },
                "invocations": [
                    {
                        "executionSuccessful": not notifications,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2) + "\n"


_DOCUMENT_RENDERERS: dict[str, Renderer] = {
    "text": _text,
    "json": _json,
    "sarif": _sarif,
    "markdown": _markdown,
    "html": _html,
}
FORMATS = tuple(_DOCUMENT_RENDERERS)


def render(
    report: AuditReport,
    fmt: str = "text",
    *,
    fail_on: str | None = None,
    exit_code: int | None = None,
) -> str:
    """Render a report in one of FORMATS (all from the same document)."""
    return _DOCUMENT_RENDERERS[fmt](audit_document(report, fail_on=fail_on, exit_code=exit_code))


def render_text(report: AuditReport) -> str:
    return render(report, "text")


def render_json(report: AuditReport) -> str:
    return render(report, "json")


def render_sarif(report: AuditReport) -> str:
    return render(report, "sarif")


def render_markdown(report: AuditReport) -> str:
    return render(report, "markdown")


def render_html(report: AuditReport) -> str:
    return render(report, "html")


# One interface for every format: render(report) -> str.
RENDERERS: dict[str, Callable[[AuditReport], str]] = {
    "text": render_text,
    "json": render_json,
    "sarif": render_sarif,
    "markdown": render_markdown,
    "html": render_html,
}
