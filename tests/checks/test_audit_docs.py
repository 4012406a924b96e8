"""docs/commands/audit.md documents every check, and its example works as shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from postharden.checks import load_catalog

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/commands/audit.md").read_text(encoding="utf-8")


def test_every_check_is_documented() -> None:
    for spec in load_catalog():
        assert f"### {spec.id}\n" in DOC, spec.id
        assert spec.title in DOC, spec.id
        assert spec.doc.split("\n", 1)[0] in DOC, f"{spec.id}: regenerate the Checks section"


def test_example_output_as_shown() -> None:
    block = DOC.split("    $ postharden audit --config-dir examples/runbook\n", 1)[1]
    block = block.split("    $ echo $?", 1)[0]
    expected = [line[4:] for line in block.splitlines() if line.strip() and "…" not in line]
    directory = ROOT / "examples" / "runbook"
    result = subprocess.run(
        [sys.executable, "-m", "postharden", "audit", "--config-dir", "examples/runbook"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    shown = result.stdout.splitlines()
    for line in expected:
        assert line.replace("/…/examples/runbook", str(directory)) in shown, line
    assert "    1\n" in DOC.split("$ echo $?", 1)[1][:10]
