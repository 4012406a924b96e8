"""The examples in docs/commands/show.md and lint.md work exactly as shown."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ("show.md", "lint.md")


def examples(name: str) -> list[tuple[str, str]]:
    """(command line, expected output) of every `    $ postharden ...` block."""
    found: list[tuple[str, str]] = []
    lines = (ROOT / "docs" / "commands" / name).read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith("    $ postharden "):
            continue
        output: list[str] = []
        while index < len(lines) and lines[index].startswith("    "):
            if lines[index].startswith("    $ "):
                break
            output.append(lines[index][4:])
            index += 1
        found.append((line[6:], "\n".join(output)))
    return found


CASES = [(name, command, output) for name in DOCS for command, output in examples(name)]


def test_every_page_has_examples() -> None:
    for name in DOCS:
        assert len(examples(name)) >= 2, name


@pytest.mark.parametrize(("page", "command", "expected"), CASES, ids=[c[1][:70] for c in CASES])
def test_documented_example(page: str, command: str, expected: str) -> None:
    words = shlex.split(command)
    assert words[0] == "postharden"
    result = subprocess.run(
        [sys.executable, "-m", "postharden", *words[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr
    shown = (result.stdout + result.stderr).rstrip("\n")
    assert shown == expected, f"{page}: {command}"
