"""Renderers of the log report: text, json, html (self-contained), prometheus textfile.

Every renderer takes the same report dict (see analyze.build_report) and returns a string.
"""

from __future__ import annotations

import html
import json
from typing import Any


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def _rows(rows: list[dict[str, Any]], label: str) -> list[str]:
    return [f"    {row['count']:>8}  {row[label]}" for row in rows]


def render_text(report: dict[str, Any]) -> str:
    p, lines = report["period"], report["lines"]
    out = [
        f"Postfix log report: {p['start'] or '-'} .. {p['end'] or '-'}",
        f"lines: {lines['total']} total, {lines['postfix']} Postfix, {lines['unparsed']} "
        f"unparsed, {lines['other']} other programs, {lines['invalid']} invalid",
    ]
    for source in report["inputs"]:
        if source.get("error"):
            out.append(f"input {source['name']}: {source['error']}")
    alerts = report["alerts"]
    out.append("")
    out.append(f"ALERTS ({len(alerts)})" if alerts else "ALERTS: none")
    for a in alerts:
        out.append(f"  [{a['kind']}] {a['detail']} (threshold {a['threshold']})")
    sf = report["sasl_failures"]
    out += ["", f"SASL authentication failures: {sf['total']} (aborted: {sf['aborted']})"]
    if sf["by_client"]:
        out += ["  by client:", *_rows(sf["by_client"], "client")]
        out += ["  by user:", *_rows(sf["by_user"], "user")]
        out += ["  by mechanism:", *_rows(sf["by_mechanism"], "mechanism")]
    rd = report["relay_denied"]
    out += ["", f"Relay access denied: {rd['total']}", *_rows(rd["by_client"], "client")]
    rj = report["rejects"]
    out += ["", f"Rejects: {rj['total']}"]
    if rj["by_reason"]:
        out.append("  by reason:")
        out += [
            f"    {v:>8}  {k}" for k, v in sorted(rj["by_reason"].items(), key=lambda kv: -kv[1])
        ]
        out += ["  top rejected clients:", *_rows(rj["by_client"], "client")]
    if rj["by_rbl"]:
        out += ["  by DNS blocklist:", *_rows(rj["by_rbl"], "list")]
    tls = report["tls_errors"]
    out += ["", f"TLS errors: {tls['total']}", *_rows(tls["by_client"], "client")]
    if tls["established"]:
        out.append(
            "  TLS established: " + ", ".join(f"{k} {v}" for k, v in tls["established"].items())
        )
    pf = report["policy_failures"]
    out += ["", f"Policy service failures: {pf['total']}", *_rows(pf["by_server"], "server")]
    d = report["deliveries"]
    out += [
        "",
        f"Deliveries: {d['sent']} sent, {d['deferred']} deferred, {d['bounced']} bounced, "
        f"{d['expired']} expired",
    ]
    if d["deferred_by_domain"]:
        out += ["  deferred by domain:", *_rows(d["deferred_by_domain"], "domain")]
    if d["bounced_by_domain"]:
        out += ["  bounced by domain:", *_rows(d["bounced_by_domain"], "domain")]
    ob = report["outbound"]["by_sender"]
    if ob:
        out += ["", "Outbound volume by sender (messages, recipients, bytes):"]
        out += [
            f"    {r['messages']:>8} {r['recipients']:>8} {r['bytes']:>12}  {r['sender']}"
            for r in ob
        ]
    logins = report["sasl_logins"]
    out += ["", f"SASL logins: {logins['total']}"]
    for row in logins["by_user"]:
        flags = f"  [{', '.join(row['flags'])}]" if row["flags"] else ""
        out.append(
            f"    {row['count']:>8}  {row['user']} from {len(row['clients'])} clients in "
            f"{len(row['networks'])} networks{flags}"
        )
    w = report["warnings"]
    out += ["", f"Warnings: {w['total']}, fatal: {w['fatal']}, panic: {w['panic']}"]
    out += _rows(w["top"], "warning")
    if lines["unparsed_samples"]:
        out += ["", "Unparsed Postfix lines (examples; --unparsed lists them all):"]
        out += [f"    {s}" for s in lines["unparsed_samples"]]
    return "\n".join(out) + "\n"


def _metric_name(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s)


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(report: dict[str, Any]) -> str:
    """node_exporter textfile-collector format."""
    out: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        out.append(f"# HELP postharden_{name} {help_text}")
        out.append(f"# TYPE postharden_{name} gauge")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            out.append(
                f"postharden_{name}{{{lab}}} {value:g}" if lab else f"postharden_{name} {value:g}"
            )

    lines = report["lines"]
    gauge(
        "log_lines",
        "Log lines read, by class.",
        [({"class": k}, lines[k]) for k in ("total", "postfix", "unparsed", "other", "invalid")],
    )
    gauge(
        "sasl_failures", "SASL authentication failures.", [({}, report["sasl_failures"]["total"])]
    )
    gauge(
        "sasl_failures_by_client",
        "SASL failures of the top clients.",
        [({"client": r["client"]}, r["count"]) for r in report["sasl_failures"]["by_client"]],
    )
    gauge("relay_denied", "Relay access denied rejects.", [({}, report["relay_denied"]["total"])])
    gauge(
        "rejects",
        "Rejects by reason class.",
        [({"reason": k}, v) for k, v in report["rejects"]["by_reason"].items()],
    )
    gauge("tls_errors", "TLS errors.", [({}, report["tls_errors"]["total"])])
    gauge("policy_failures", "Policy service failures.", [({}, report["policy_failures"]["total"])])
    d = report["deliveries"]
    gauge(
        "deliveries",
        "Delivery attempts by status.",
        [({"status": k}, d[k]) for k in ("sent", "deferred", "bounced", "expired")],
    )
    gauge(
        "sasl_logins",
        "SASL logins by user.",
        [({"user": r["user"]}, r["count"]) for r in report["sasl_logins"]["by_user"]],
    )
    gauge(
        "alerts",
        "Alerts raised, by kind.",
        [
            ({"kind": k}, sum(1 for a in report["alerts"] if a["kind"] == k))
            for k in sorted({a["kind"] for a in report["alerts"]})
        ],
    )
    if report["period"]["end"]:
        import datetime

        end = datetime.datetime.fromisoformat(report["period"]["end"].replace("Z", "+00:00"))
        gauge("log_last_timestamp_seconds", "Time of the last log line.", [({}, end.timestamp())])
    return "\n".join(out) + "\n"


def _bar_chart(title: str, rows: list[tuple[str, int]], color: str) -> str:
    if not rows:
        return f"<h3>{html.escape(title)}</h3><p>none</p>"
    peak = max(v for _, v in rows) or 1
    height = 18 * len(rows) + 10
    bars = []
    for i, (label, value) in enumerate(rows):
        width = int(500 * value / peak)
        y = 5 + 18 * i
        bars.append(
            f'<text x="0" y="{y + 12}" font-size="11">{html.escape(label)[:40]}</text>'
            f'<rect x="260" y="{y}" width="{width}" height="14" fill="{color}"/>'
            f'<text x="{265 + width}" y="{y + 12}" font-size="11">{value}</text>'
        )
    return (
        f"<h3>{html.escape(title)}</h3><svg width='820' height='{height}' role='img'>"
        + "".join(bars)
        + "</svg>"
    )


def _series_chart(hourly: list[dict[str, Any]]) -> str:
    if not hourly:
        return "<p>no hourly data</p>"
    keys = [("rejects", "#d9534f"), ("sasl_failures", "#f0ad4e"), ("relay_denied", "#5bc0de")]
    peak = max(max(h[k] for k, _ in keys) for h in hourly) or 1
    w, hgt = 800, 200
    step = w / max(len(hourly) - 1, 1)
    lines = []
    for key, color in keys:
        pts = " ".join(
            f"{i * step:.1f},{hgt - hgt * h[key] / peak:.1f}" for i, h in enumerate(hourly)
        )
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
    legend = " ".join(f'<span style="color:{c}">&#9632; {k}</span>' for k, c in keys)
    return (
        f"<svg width='{w + 20}' height='{hgt + 20}' role='img'><g transform='translate(10,10)'>"
        f"{''.join(lines)}</g></svg><p>{legend} (peak {peak} per hour; "
        f"{html.escape(hourly[0]['hour'])} .. {html.escape(hourly[-1]['hour'])})</p>"
    )


def render_html(report: dict[str, Any]) -> str:
    """One self-contained page (inline SVG, no scripts, no external resources)."""
    esc = html.escape
    alerts = "".join(
        f"<li><b>{esc(a['kind'])}</b> {esc(a['detail'])}</li>" for a in report["alerts"]
    )
    top = report["rejects"]["by_client"]
    body = [
        f"<h1>Postfix log report</h1><p>{esc(str(report['period']['start']))} .. "
        f"{esc(str(report['period']['end']))}</p>",
        f"<h2>Alerts ({len(report['alerts'])})</h2><ul>{alerts or '<li>none</li>'}</ul>",
        "<h2>Rejects and failures per hour</h2>",
        _series_chart(report["hourly"]),
        _bar_chart("Top rejected clients", [(r["client"], r["count"]) for r in top], "#d9534f"),
        _bar_chart(
            "SASL failures by client",
            [(r["client"], r["count"]) for r in report["sasl_failures"]["by_client"]],
            "#f0ad4e",
        ),
        _bar_chart(
            "Rejects by reason",
            sorted(report["rejects"]["by_reason"].items(), key=lambda kv: -kv[1]),
            "#5bc0de",
        ),
        "<h2>Full report</h2><pre>" + esc(render_text(report)) + "</pre>",
    ]
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>postharden logs</title><style>body{font-family:sans-serif;margin:2em}"
        "pre{background:#f5f5f5;padding:1em}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


RENDERERS = {
    "text": render_text,
    "json": render_json,
    "html": render_html,
    "prometheus": render_prometheus,
}
