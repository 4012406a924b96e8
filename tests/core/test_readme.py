"""The README stays true: every `$ postharden ...` line of its tour runs as shown."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from postharden.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
TOUR = [
    line.strip()[2:] for line in README.splitlines() if line.strip().startswith("$ postharden ")
]


def test_readme_names_every_command_and_both_scripts() -> None:
    for command in COMMANDS:
        assert f"`{command}`" in README, f"README does not describe {command}"
        assert f"docs/commands/{command}.md" in README
    assert "bash scripts/demo.sh" in README
    assert "bash scripts/test.sh" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci


@pytest.mark.postfix
@pytest.mark.parametrize("line", TOUR)
def test_tour_command_runs_as_shown(line: str) -> None:
    argv = shlex.split(line)
    assert argv[0] == "postharden"
    environment = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, "-m", "postharden", *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=environment,
    )
    # 1 means "findings" (the weak examples have them); anything else is a failure.
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip(), "no output"
