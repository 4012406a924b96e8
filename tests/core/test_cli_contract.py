"""Every subcommand keeps the CLI contract: help, --format json, docs, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from postharden.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postharden", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_version_and_help() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("postharden ")
    result = run_cli("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_json_and_docs(command: str) -> None:
    result = run_cli(command, "--help")
    assert result.returncode == 0, result.stderr
    assert "--format" in result.stdout, f"{command} has no --format"
    parser = build_parser()
    sub = next(
        action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"
    )
    format_action = next(
        a
        for a in sub.choices[command]._actions  # type: ignore[attr-defined]
        if "--format" in a.option_strings
    )
    assert "json" in format_action.choices, f"{command} cannot print JSON"
    doc = ROOT / "docs" / "commands" / f"{command}.md"
    assert doc.is_file(), f"{command} has no documentation in {doc}"
    assert f"postharden {command}" in doc.read_text(encoding="utf-8")


def test_unknown_command_and_bad_flag_are_usage_errors() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    result = run_cli("show", "--format", "yaml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_show_json_missing_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run_cli("show", "--config-dir", str(tmp_path / "absent"), "--format", "json")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no such directory" in lines[0]
    assert result.stdout == ""


def test_show_json_is_valid_json(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("myhostname = mx.example.com\nmydomain = example.com\n")
    (tmp_path / "master.cf").write_text(
        "smtp inet n - n - - smtpd\n  -o smtpd_tls_security_level=may\n"
    )
    result = run_cli("show", "--config-dir", str(tmp_path), "--non-default", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    assert document["parameters"]["myhostname"]["origin"] == "main.cf:1"
    assert document["services"][0]["overrides"] == {"smtpd_tls_security_level": "may"}


def test_bare_smtp_means_the_smtpd_service(tmp_path: Path) -> None:
    from postharden.config import load_config

    (tmp_path / "main.cf").write_text("myhostname = mx.example.com\n")
    (tmp_path / "master.cf").write_text(
        "smtp inet n - n - - smtpd\nsmtp unix - - n - - smtp\nrelay unix - - n - - smtp\n"
        "relay inet n - n - - smtpd\nrelay fifo n - n - - smtpd\n"
    )
    config = load_config(tmp_path)
    assert config.service("smtp").key == "smtp/inet"
    assert config.service("smtp/unix").key == "smtp/unix"
    with pytest.raises(Exception, match="ambiguous"):
        config.service("relay")
