"""plan's output formats: every format works; JSON follows its schema; the postconf
commands, run by the real postconf on a copy, give the same configuration as the plan."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from .helpers import REPO, run_cli

MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.test
mydestination = example.test
mynetworks = 127.0.0.0/8, 0.0.0.0/0
smtpd_relay_restrictions = permit_mynetworks,
    check_sender_access inline:{ partner@example.net=OK },
    reject_unauth_destination
"""
MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o smtpd_relay_restrictions=permit
  -o disable_vrfy_command=no
  -o mynetworks=0.0.0.0/0
"""
POSTCONF = shutil.which("postconf", path="/usr/sbin:/usr/bin:/sbin:/bin")


def _config(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "main.cf").write_text(MAIN)
    (directory / "master.cf").write_text(MASTER)
    return directory


@pytest.mark.parametrize("fmt", ["text", "diff", "postconf", "json"])
def test_every_format(tmp_path: Path, fmt: str) -> None:
    config = _config(tmp_path, "c")
    result = run_cli("plan", "--config-dir", str(config), "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    if fmt == "json":
        document = json.loads(result.stdout)
        schema = json.loads((REPO / "src/postharden/schemas/plan.schema.json").read_text())
        jsonschema.validate(document, schema)
        assert document["safety"]["ok"] is True
        assert {c["finding"] for c in document["changes"]} >= {"PH-REL-003", "PH-REL-004"}
    if fmt == "diff":
        assert result.stdout.startswith("--- a/main.cf\n+++ b/main.cf\n")
    # plan writes nothing
    assert (config / "main.cf").read_text() == MAIN


@pytest.mark.skipif(POSTCONF is None, reason="postconf is not installed")
def test_postconf_commands_give_the_planned_configuration(tmp_path: Path) -> None:
    assert POSTCONF is not None
    planned = _config(tmp_path, "planned")
    typed = _config(tmp_path, "typed")
    commands = run_cli(
        "plan", "--config-dir", str(typed), "--format", "postconf"
    ).stdout.splitlines()
    assert commands
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "postconf"
        subprocess.run([POSTCONF, *argv[1:]], check=True, capture_output=True, timeout=30)
    diff = run_cli("plan", "--config-dir", str(planned), "--format", "diff").stdout
    patched = subprocess.run(
        ["patch", "-p1", "-d", str(planned)], input=diff, text=True, capture_output=True, timeout=30
    )
    assert patched.returncode == 0, patched.stdout + patched.stderr

    def effective(directory: Path) -> tuple[str, str]:
        main = subprocess.run(
            [POSTCONF, "-c", str(directory), "-n"], capture_output=True, text=True, check=True
        ).stdout.replace(str(directory), "DIR")
        master = subprocess.run(
            [POSTCONF, "-c", str(directory), "-P"], capture_output=True, text=True, check=True
        ).stdout
        return " ".join(main.split()), " ".join(master.split())

    assert effective(typed) == effective(planned)
    # and the typed configuration meets the profile too
    assert "Nothing to change" in run_cli("plan", "--config-dir", str(typed)).stdout
