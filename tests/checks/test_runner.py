"""The runner: every check gets an outcome; missing capabilities give `unknown`, never a
pass; a crashing check is an `error` that does not sink the audit; checks do no I/O."""

from __future__ import annotations

import builtins
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from postharden.checks import Answer, Status, gather_facts, load_catalog, run_audit
from postharden.checks.catalog import _REGISTRY
from postharden.checks.model import CheckSpec
from postharden.config import load_config

from .cases import CASES
from .helpers import NOW, build


def weak(tmp_path: Path) -> Path:
    (case,) = [c for c in CASES if c.check == "PH-REL-001" and c.name == "mynetworks-everything"]
    return build(case, tmp_path / "cf")


def test_relay_checks_unknown_without_the_relay_analysis(tmp_path: Path) -> None:
    config = load_config(weak(tmp_path), "bundled")
    facts = gather_facts(config, now=NOW, relay=Answer(None, "relay analysis not installed"))
    report = run_audit(config, facts=facts)
    relay = {o.id: o for o in report.outcomes if o.id.startswith("PH-REL-")}
    for check_id, outcome in relay.items():
        if check_id == "PH-REL-007":  # a configuration fact, not a relay decision
            continue
        assert outcome.status is Status.UNKNOWN, check_id
        assert outcome.reason == "relay analysis not installed"
    judged = {c.id: c for c in report.criteria}
    assert judged["runbook:no-relay"].status == "unknown"
    assert "relay analysis not installed" in (judged["runbook:no-relay"].reason or "")


def test_every_check_gets_one_outcome(tmp_path: Path) -> None:
    config = load_config(weak(tmp_path), "bundled")
    report = run_audit(config, facts=gather_facts(config, now=NOW))
    assert [o.id for o in report.outcomes] == [s.id for s in load_catalog()]
    for outcome in report.outcomes:
        if outcome.status in (Status.UNKNOWN, Status.ERROR, Status.NOT_APPLICABLE):
            assert outcome.reason, outcome.id
        assert (outcome.status is Status.FAILED) == bool(outcome.findings), outcome.id


def test_a_crashing_check_is_an_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _REGISTRY["PH-DIS-001"]

    def broken(env: Any) -> Any:
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(
        _REGISTRY,
        "PH-DIS-001",
        CheckSpec(
            spec.id,
            spec.title,
            spec.category,
            spec.severity,
            spec.implements,
            spec.references,
            broken,
        ),
    )
    config = load_config(weak(tmp_path), "bundled")
    report = run_audit(config, facts=gather_facts(config, now=NOW))
    outcome = next(o for o in report.outcomes if o.id == "PH-DIS-001")
    assert outcome.status is Status.ERROR
    assert "ZeroDivisionError: boom" in (outcome.reason or "")
    assert any(o.status is Status.FAILED for o in report.outcomes)
    assert {c.id: c.status for c in report.criteria}["runbook:vrfy"] == "unknown"


def test_checks_do_no_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = weak(tmp_path)
    config = load_config(directory, "bundled")
    facts = gather_facts(config, now=NOW)
    calls: list[str] = []

    def forbid(name: str, original: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name}{args[:1]}")
            return original(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", forbid("open", builtins.open))
    monkeypatch.setattr(os, "stat", forbid("stat", os.stat))
    monkeypatch.setattr(subprocess, "run", forbid("run", subprocess.run))
    load_catalog()  # imports (which read .py files) are not the checks' I/O
    calls.clear()
    report = run_audit(config, role="mx", facts=facts)
    assert report.outcomes
    assert calls == []
