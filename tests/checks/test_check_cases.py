"""Each check on configurations that trigger it and that do not, -o overrides included."""

from __future__ import annotations

from pathlib import Path

import pytest

from postharden.checks import Status
from postharden.checks.facts import _lint_answer
from postharden.config import load_config

from .cases import CASES
from .helpers import Case, audit, build, failing_services


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, tmp_path: Path) -> None:
    directory = build(case, tmp_path / "cf")
    if case.check == "PH-SYN-001" and not _lint_answer(load_config(directory, "bundled")).available:
        # Without the lint capability the check must say it has no answer, never pass.
        report = audit(directory, case.check, case.role)
        (outcome,) = report.outcomes
        assert outcome.status is Status.UNKNOWN
        assert outcome.reason
        return
    report = audit(directory, case.check, case.role)
    (outcome,) = report.outcomes
    assert outcome.status.value == case.expect, (
        outcome.reason,
        [f.message for f in report.findings],
    )
    if case.expect == "failed":
        assert outcome.findings
        for finding in outcome.findings:
            assert finding.evidence, finding
            assert finding.fix is not None, finding
            assert len(finding.fingerprint) == 24
        if case.services is not None:
            assert failing_services(report, case.check) == set(case.services)
    else:
        assert not outcome.findings
    if case.expect == "not_applicable":
        assert outcome.reason
