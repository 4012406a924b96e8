"""Renderers of a probe report: text, json and a Nagios/Icinga plugin line. They return
strings; they never print and never decide a status (the tests did)."""

from __future__ import annotations

import json

from postharden.probe import ProbeReport

NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3
_NAGIOS_NAMES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
# A failed test with one of these ids is critical (mail abuse or credential leak today).
CRITICAL_PREFIXES = ("relay.", "auth.cleartext_plain", "xclient", "xforward", "smtp.smuggling")


def render_json(report: ProbeReport) -> str:
    return json.dumps(report.as_dict(), indent=2)


def render_text(report: ProbeReport, *, verbose: bool = False) -> str:
    lines = [f"probe of {report.target} from {report.source_address or 'unknown address'}"]
    lines.extend(f"warning: {w}" for w in report.warnings)
    for service in report.services:
        lines.append("")
        lines.append(f"port {service.port}: {service.banner or '(no banner)'}")
        facts = [
            f"open relay: {_tri(service.open_relay)}",
            f"VRFY: {_tri(service.vrfy_enabled)}",
            f"AUTH before TLS: {_tri(service.auth_before_tls)}",
            f"STARTTLS: {_tri(service.starttls)}",
        ]
        lines.append("  " + "; ".join(facts))
        for test in service.tests:
            lines.append(f"  {test.status.upper():<12} {test.id:<22} {test.detail}")
            if verbose or test.status in ("fail", "error"):
                lines.extend(f"      {line}" for line in test.transcript[-12:])
    counts = _counts(report)
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def _tri(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[value]


def _counts(report: ProbeReport) -> dict[str, int]:
    counts = {"pass": 0, "fail": 0, "inconclusive": 0, "error": 0}
    for test in report.all_tests():
        counts[test.status] += 1
    return counts


def nagios_status(report: ProbeReport) -> int:
    tests = report.all_tests()
    failed = [t for t in tests if t.status == "fail"]
    if any(t.id.startswith(CRITICAL_PREFIXES) for t in failed):
        return NAGIOS_CRITICAL
    if failed:
        return NAGIOS_WARNING
    if (
        not tests
        or all(t.status == "error" for t in tests)
        or any(t.id == "connect" and t.status != "pass" for t in tests)
    ):
        return NAGIOS_UNKNOWN
    return NAGIOS_OK


def render_nagios(report: ProbeReport, elapsed: float) -> str:
    """One status line and perfdata (Nagios plugin API), then one line per failed test."""
    status = nagios_status(report)
    counts = _counts(report)
    failed = [f"{s.port}:{t.id}" for s in report.services for t in s.tests if t.status == "fail"]
    broken = [f"{s.port}:{t.id}" for s in report.services for t in s.tests if t.status == "error"]
    if failed:
        summary = "failed " + ", ".join(failed[:6]) + (" ..." if len(failed) > 6 else "")
    elif broken:
        summary = "could not test " + ", ".join(broken[:6])
    else:
        summary = f"{counts['pass']} tests passed"
    perf = " ".join(f"{name}={n};;;0" for name, n in counts.items())
    head = f"SMTP {_NAGIOS_NAMES[status]} - {report.target}: {summary} | {perf} time={elapsed:.2f}s;;;0"
    detail = [
        f"{s.port} {t.id}: {t.detail}"
        for s in report.services
        for t in s.tests
        if t.status == "fail"
    ]
    return "\n".join([head, *detail])
