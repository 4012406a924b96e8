"""The bundled examples, and the runbook's and checklist's own example configurations:
the audit finds what the documents warn about, including their own mistakes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from postharden.checks import Status

from .helpers import audit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLES / name, target)
    for key in (target / "tls").glob("*.pem") if (target / "tls").is_dir() else []:
        os.chmod(key, 0o600)  # git does not keep modes
    return target


def ids(report: object) -> dict[str, list[str]]:
    from postharden.checks import AuditReport

    assert isinstance(report, AuditReport)
    found: dict[str, list[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.id, []).append(finding.message)
    return found


def statuses(report: object) -> dict[str, Status]:
    from postharden.checks import AuditReport

    assert isinstance(report, AuditReport)
    return {o.id: o.status for o in report.outcomes}


def criteria(report: object) -> dict[str, str]:
    from postharden.checks import AuditReport

    assert isinstance(report, AuditReport)
    return {c.id: c.status for c in report.criteria}


def test_runbook_example(tmp_path: Path) -> None:
    report = audit(copy("runbook", tmp_path))
    found = ids(report)
    # The runbook's own mistake: the comment is part of the value, Postfix dies.
    assert "PH-LIM-001" in found
    (lim,) = [f for f in report.findings if f.id == "PH-LIM-001"]
    assert lim.severity.value == "critical" and lim.fix is not None
    assert lim.fix.main_cf == (("message_size_limit", "25600000"),)
    # What the runbook itself is about holds in its final example.
    status = statuses(report)
    for check in ("PH-DIS-001", "PH-ACC-001", "PH-ACC-009", "PH-DIS-003", "PH-DIS-004"):
        assert status[check] is Status.PASSED, check
    judged = criteria(report)
    assert judged["runbook:vrfy"] == "pass"
    assert judged["runbook:helo"] == "pass"
    assert judged["runbook:postfix-check"] == "fail"
    if status["PH-REL-001"] is not Status.UNKNOWN:
        assert judged["runbook:relay-order"] == "pass"
        assert judged["runbook:no-relay"] == "pass"
        assert judged["runbook:mynetworks"] == "pass"


def test_checklist_example(tmp_path: Path) -> None:
    report = audit(copy("checklist", tmp_path))
    found = ids(report)
    # Its own mistakes: a restriction written as a parameter, obsolete DH/TLS settings,
    # exclusions that leave TLS 1.0/1.1 on, an HTML-rejecting header check.
    assert "PH-SYN-002" in found
    assert any("written as a parameter" in m for m in found["PH-AUT-004"])
    assert any("smtpd_tls_dh512_param_file" in m for m in found["PH-TLS-012"])
    assert any("smtpd_use_tls" in m for m in found["PH-TLS-012"])
    assert any("TLSv1, TLSv1.1" in m for m in found["PH-TLS-004"])
    assert any("text/html" in m for m in found["PH-CNT-003"])
    # And what it gets right passes.
    status = statuses(report)
    for check in ("PH-DIS-001", "PH-DIS-003", "PH-AUT-002", "PH-AUT-003", "PH-LIM-004"):
        assert status[check] is Status.PASSED, check


def test_weak_example_fails_what_matters(tmp_path: Path) -> None:
    report = audit(copy("weak", tmp_path))
    found = ids(report)
    for check in (
        "PH-DIS-001",
        "PH-DIS-003",
        "PH-DIS-005",
        "PH-AUT-002",
        "PH-AUT-003",
        "PH-SVC-002",
        "PH-SVC-003",
        "PH-TLS-001",
        "PH-LIM-002",
        "PH-LIM-004",
        "PH-ACC-008",
    ):
        assert check in found, check
    if statuses(report)["PH-REL-001"] is not Status.UNKNOWN:
        assert "PH-REL-001" in found and "PH-REL-004" in found


def test_hardened_example_is_clean(tmp_path: Path) -> None:
    report = audit(copy("hardened", tmp_path))
    assert [f"{f.id}: {f.message}" for f in report.findings] == []
    open_ = {o.id: o.reason for o in report.outcomes if o.status in (Status.UNKNOWN, Status.ERROR)}
    assert set(open_) <= {"PH-SYN-001"}, open_


@pytest.mark.parametrize("name", ["weak", "hardened", "runbook", "checklist"])
def test_examples_have_no_check_errors(name: str, tmp_path: Path) -> None:
    report = audit(copy(name, tmp_path))
    errors = {o.id: o.reason for o in report.outcomes if o.status is Status.ERROR}
    assert errors == {}
