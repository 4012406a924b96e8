"""Each check's fix, applied with the real `postconf -c DIR -e/-P/-X/-M/-F` (and the
file commands it names) on a copy, makes the check pass, and the real `postfix check`
stays clean."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from postharden.checks import Fix, Status

from .cases import CASES
from .helpers import Case, age, audit, build

POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
FIXABLE = [c for c in CASES if c.expect == "failed" and c.fixable and c.check != "PH-SYN-001"]
# postfix-script's remarks about our throw-away queue and data directories (not the
# configuration): the temporary tree is not laid out by postfix-install.
_LAYOUT_NOISE = ("not owned by root", "not owned by postfix", "group or other writable")

pytestmark = [pytest.mark.postfix, pytest.mark.root]


def _require_postfix() -> None:
    if not os.access(POSTCONF, os.X_OK) or not os.access(POSTFIX, os.X_OK):
        pytest.skip("Postfix (postconf, postfix) is not installed")
    if os.geteuid() != 0:
        pytest.skip("postfix check needs root")


def run_with_tty(argv: list[str]) -> tuple[int, str]:
    """Postfix commands print their warnings only to a terminal: give them one."""
    master, slave = os.openpty()
    try:
        completed = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, timeout=60, check=False
        )
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    try:
        while chunk := os.read(master, 65536):
            chunks.append(chunk)
    except OSError:
        pass
    os.close(master)
    return completed.returncode, b"".join(chunks).decode("utf-8", "replace")


def postfix_check(directory: Path) -> list[str]:
    """Problems the real `postfix -c DIR check` reports (empty when clean)."""
    log = directory / "maillog"
    log.write_text("")
    code, output = run_with_tty([POSTFIX, "-c", str(directory), "check"])
    lines = [line for line in output.splitlines() + log.read_text().splitlines() if line.strip()]
    problems = [line for line in lines if not any(noise in line for noise in _LAYOUT_NOISE)]
    if code != 0:
        problems.append(f"exit status {code}")
    return problems


def apply_fix(directory: Path, fix: Fix) -> None:
    for args in fix.postconf_args():
        code, output = run_with_tty([POSTCONF, "-c", str(directory), *args])
        assert code == 0, (args, output)
        age(directory / "main.cf")
        age(directory / "master.cf")
    for command in fix.commands:
        completed = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=60, check=False
        )
        assert completed.returncode == 0, (command, completed.stderr)


def prepare_for_postfix(directory: Path) -> None:
    """What `postfix check` needs besides the configuration: a log it may write."""
    with (directory / "main.cf").open("a") as main:
        main.write(f"maillog_file = {directory}/maillog\nmaillog_file_prefixes = {directory}\n")
    with (directory / "master.cf").open("a") as master:
        master.write("postlog   unix-dgram n  -       n       -       1       postlogd\n")
    age(directory / "main.cf")
    age(directory / "master.cf")
    shutil.chown(directory / "data", "postfix")


@pytest.mark.parametrize("case", FIXABLE, ids=[c.id for c in FIXABLE])
def test_fix_makes_check_pass_and_postfix_check_clean(case: Case, tmp_path: Path) -> None:
    _require_postfix()
    directory = build(case, tmp_path / "cf")
    prepare_for_postfix(directory)
    before = audit(directory, case.check, case.role)
    (outcome,) = before.outcomes
    assert outcome.status is Status.FAILED
    fixes = [f.fix for f in outcome.findings if f.fix is not None]
    assert fixes and all(not fix.is_manual for fix in fixes), [f.summary for f in fixes if f]
    for line in fixes[0].command_lines(str(directory)):
        assert line.startswith(("postconf -c ", "chown ", "chmod ", "postmap -c ")), line
    for fix in dict.fromkeys(fixes):  # the same fix for several services is applied once
        apply_fix(directory, fix)
    after = audit(directory, case.check, case.role)
    (outcome,) = after.outcomes
    assert outcome.status is Status.PASSED, [f.message for f in after.findings]
    assert postfix_check(directory) == []
