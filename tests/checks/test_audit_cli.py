"""`postharden audit`: exit codes 0/1/2/3, --fail-on, --baseline with fingerprints that
ignore line numbers, --role, every --format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .cases import CASES
from .helpers import build


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postharden", "audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def config(tmp_path: Path, check: str, name: str) -> Path:
    (case,) = [c for c in CASES if c.check == check and c.name == name]
    return build(case, tmp_path / "cf")


def test_exit_1_on_findings_at_threshold(tmp_path: Path) -> None:
    directory = config(tmp_path, "PH-LIM-001", "runbook-comment")
    result = cli("--config-dir", str(directory), "--format", "json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["summary"]["exit_code"] == 1
    assert any(f["id"] == "PH-LIM-001" for f in document["findings"])


def test_fail_on_none_and_critical(tmp_path: Path) -> None:
    directory = config(tmp_path, "PH-DIS-001", "default-vrfy")  # medium and below only
    result = cli("--config-dir", str(directory), "--fail-on", "critical", "--format", "json")
    document = json.loads(result.stdout)
    assert not any(f["severity"] == "critical" for f in document["findings"])
    unanswered = [c for c in document["checks"] if c["status"] in ("unknown", "error")]
    assert result.returncode == (3 if unanswered else 0)
    result = cli("--config-dir", str(directory), "--fail-on", "medium")
    assert result.returncode == 1


def test_exit_3_when_a_check_has_no_answer(tmp_path: Path) -> None:
    # A content table postmap cannot be asked about (a relative path) has no answer.
    directory = config(tmp_path, "PH-DIS-001", "disabled")
    with (directory / "main.cf").open("a") as main:
        main.write("header_checks = regexp:relative/header_checks\n")
    result = cli("--config-dir", str(directory), "--fail-on", "none", "--format", "json")
    assert result.returncode == 3, result.stdout[-2000:]
    document = json.loads(result.stdout)
    assert {c["id"] for c in document["checks"] if c["status"] == "unknown"} >= {"PH-CNT-002"}


def test_exit_0_when_nothing_at_threshold_and_all_answered(tmp_path: Path) -> None:
    directory = config(tmp_path, "PH-DIS-001", "disabled")
    result = cli("--config-dir", str(directory), "--fail-on", "none", "--format", "json")
    document = json.loads(result.stdout)
    unanswered = [c for c in document["checks"] if c["status"] in ("unknown", "error")]
    if unanswered:
        assert result.returncode == 3
        assert all(c["reason"] for c in unanswered)
    else:
        assert result.returncode == 0


@pytest.mark.parametrize(
    "args",
    [
        ("--role", "backup-mx"),
        ("--format", "yaml"),
        ("--fail-on", "urgent"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], tmp_path: Path) -> None:
    result = cli("--config-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_input_errors_exit_2_one_line(tmp_path: Path) -> None:
    result = cli("--config-dir", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    directory = config(tmp_path, "PH-DIS-001", "disabled")
    bad = tmp_path / "baseline.json"
    bad.write_text("{not json")
    result = cli("--config-dir", str(directory), "--baseline", str(bad))
    assert result.returncode == 2
    assert result.stderr.startswith("postharden audit: error: ")
    assert "Traceback" not in result.stderr


def test_baseline_hides_known_findings_across_line_moves(tmp_path: Path) -> None:
    directory = config(tmp_path, "PH-LIM-001", "runbook-comment")
    first = cli("--config-dir", str(directory), "--format", "json")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(first.stdout)
    before = json.loads(first.stdout)
    assert before["findings"]
    # Move every line down: comments and blank lines at the top, order reversed.
    main = directory / "main.cf"
    lines = main.read_text().splitlines()
    main.write_text("# moved\n\n# around\n" + "\n".join(reversed(lines)) + "\n")
    moved = json.loads(cli("--config-dir", str(directory), "--format", "json").stdout)
    old_lines = {f["fingerprint"]: f["location"] for f in before["findings"]}
    new_lines = {f["fingerprint"]: f["location"] for f in moved["findings"]}
    assert set(old_lines) == set(new_lines)
    assert any(old_lines[k] != new_lines[k] for k in old_lines if old_lines[k])
    result = cli("--config-dir", str(directory), "--baseline", str(baseline), "--format", "json")
    document = json.loads(result.stdout)
    assert document["findings"] == []
    assert document["summary"]["suppressed_by_baseline"] == len(before["findings"])
    assert result.returncode in (0, 3)
    # A new problem is reported.
    with main.open("a") as handle:
        handle.write("smtpd_authorized_xclient_hosts = 0.0.0.0/0\n")
    result = cli("--config-dir", str(directory), "--baseline", str(baseline), "--format", "json")
    document = json.loads(result.stdout)
    assert {f["id"] for f in document["findings"]} == {"PH-DIS-005"}
    assert result.returncode == 1


def test_role_flag_and_inference(tmp_path: Path) -> None:
    directory = config(tmp_path, "PH-SVC-005", "all-interfaces")
    inferred = json.loads(cli("--config-dir", str(directory), "--format", "json").stdout)
    assert inferred["role"] == {
        "name": "mx",
        "version": "1.0.0",
        "inferred": True,
        "reason": "port 25 (smtp) listens publicly",
    }
    chosen = json.loads(
        cli("--config-dir", str(directory), "--role", "local-only", "--format", "json").stdout
    )
    assert chosen["role"]["name"] == "local-only" and not chosen["role"]["inferred"]
    assert any(f["id"] == "PH-SVC-005" for f in chosen["findings"])
    assert not any(f["id"] == "PH-SVC-005" for f in inferred["findings"])
    with (directory / "main.cf").open("a") as main:
        main.write("inet_interfaces = loopback-only\n")
    local = json.loads(cli("--config-dir", str(directory), "--format", "json").stdout)
    assert local["role"]["name"] == "local-only" and local["role"]["inferred"]


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "markdown", "html"])
def test_every_format_from_the_cli(fmt: str, tmp_path: Path) -> None:
    directory = config(tmp_path, "PH-LIM-001", "runbook-comment")
    result = cli("--config-dir", str(directory), "--format", fmt)
    assert result.returncode == 1, result.stderr
    assert "PH-LIM-001" in result.stdout or "PH-LIM-001" in json.dumps(result.stdout)
    out = tmp_path / f"report.{fmt}"
    result = cli("--config-dir", str(directory), "--format", fmt, "--output", str(out))
    assert result.returncode == 1 and result.stdout == ""
    assert "PH-LIM-001" in out.read_text()
