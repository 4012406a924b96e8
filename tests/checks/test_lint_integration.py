"""Every finding of `postharden lint` appears in the audit (PH-SYN-001), one for one."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from postharden.checks import Status, gather_facts, run_audit
from postharden.config import load_config

from .helpers import NOW, Case, build

BROKEN = Case(
    "PH-SYN-001",
    "lint-integration",
    "failed",
    "smtpd_tls_cipherlist_typo = high\nreject_sender_login_mismatch = yes\n"
    "message_size_limit = 25600000  # 25MB\nsmtpd_banner = $myhostnmae ESMTP\n"
    "smtpd_recipient_restrictions = reject_invalid_hostname, reject_unauth_destination\n",
)


def test_every_lint_finding_is_an_audit_finding(tmp_path: Path) -> None:
    try:
        module = importlib.import_module("postharden.config.lint")
    except ImportError:
        pytest.skip("postharden.config.lint (postharden lint) is not in this checkout yet")
    config = load_config(build(BROKEN, tmp_path / "cf"), "bundled")
    findings = list(module.lint(config))
    assert findings, "the configuration has lint problems"
    report = run_audit(config, facts=gather_facts(config, now=NOW), only=frozenset({"PH-SYN-001"}))
    (outcome,) = report.outcomes
    assert outcome.status is Status.FAILED
    assert len(outcome.findings) == len(findings)
    for item, finding in zip(findings, outcome.findings, strict=True):
        message = getattr(item, "message", None) or str(item)
        assert str(message) in finding.message
