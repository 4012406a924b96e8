"""Baselines: a previous JSON report; only findings whose fingerprint is new are kept.

Fingerprints hash the check ID, the service, the parameter and a check-specific key
(a path, a restriction name), never a line number, so moving lines keeps them.
"""

from __future__ import annotations

import json
from pathlib import Path

from postharden.checks.model import AuditReport, CheckOutcome
from postharden.errors import InputError


class BaselineError(InputError):
    """A baseline file that cannot be read or is not an audit JSON report."""


def load_baseline(path: Path) -> frozenset[str]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaselineError("no such file", location=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise BaselineError(f"cannot read: {error}", location=str(path)) from None
    except json.JSONDecodeError as error:
        raise BaselineError(
            f"not JSON: {error.msg} (line {error.lineno})", location=str(path)
        ) from None
    if (
        not isinstance(document, dict)
        or document.get("schema_version") != 1
        or not isinstance(document.get("findings"), list)
    ):
        raise BaselineError(
            "not a postharden audit JSON report (schema_version 1)", location=str(path)
        )
    prints: set[str] = set()
    for finding in document["findings"]:
        if isinstance(finding, dict) and isinstance(finding.get("fingerprint"), str):
            prints.add(finding["fingerprint"])
    return frozenset(prints)


def apply_baseline(report: AuditReport, known: frozenset[str]) -> AuditReport:
    """The report without findings already in the baseline (check statuses are kept)."""
    outcomes: list[CheckOutcome] = []
    suppressed = 0
    for outcome in report.outcomes:
        kept = tuple(f for f in outcome.findings if f.fingerprint not in known)
        suppressed += len(outcome.findings) - len(kept)
        outcomes.append(outcome._replace(findings=kept))
    # Statuses stay as evaluated: a known failure is still a failure.
    return report._replace(outcomes=tuple(outcomes), suppressed=suppressed)
