"""Bad input through the CLI: one clear error line (file:line where it applies), exit 2,
no traceback, and quickly (no hang) - for `postharden show` and `postharden lint`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

COMMANDS = ("show", "lint")
GOOD_MASTER = "smtp inet n - n - - smtpd\n"


SOURCE = Path(__file__).resolve().parents[2] / "src"


def run(
    *args: str, user: str | None = None, source: Path = SOURCE
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "postharden", *args]
    if user is not None:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None
        command = [setpriv, "--reuid", user, "--regid", "65534", "--clear-groups", *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(source)},
    )


def assert_one_error(result: subprocess.CompletedProcess[str], command: str, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"postharden {command}: error: "), line
    for needle in needles:
        assert needle in line, line
    return line


def make(tmp_path: Path, main: str | bytes, master: str = GOOD_MASTER) -> Path:
    directory = tmp_path / "conf"
    directory.mkdir()
    main_path = directory / "main.cf"
    if isinstance(main, bytes):
        main_path.write_bytes(main)
    else:
        main_path.write_text(main)
    (directory / "master.cf").write_text(master)
    return directory


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_directory(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run(command, "--config-dir", str(missing))
    assert_one_error(result, command, str(missing), "no such directory")


@pytest.mark.parametrize("command", COMMANDS)
def test_main_cf_is_a_directory(command: str, tmp_path: Path) -> None:
    directory = tmp_path / "conf"
    (directory / "main.cf").mkdir(parents=True)
    (directory / "master.cf").write_text(GOOD_MASTER)
    result = run(command, "--config-dir", str(directory))
    assert_one_error(result, command, str(directory / "main.cf"), "directory")


@pytest.mark.parametrize("command", COMMANDS)
def test_unreadable_file_for_an_unprivileged_user(command: str, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the CLI as user nobody")
    # pytest's tmp_path lies under 0700 directories: nobody could not even reach it.
    base = Path(tempfile.mkdtemp(prefix="postharden-unreadable-"))
    try:
        base.chmod(0o755)
        # The checkout itself may lie under a 0700 directory (a fresh clone in mktemp -d):
        # give nobody a copy of the package it can import.
        source = base / "src"
        shutil.copytree(SOURCE / "postharden", source / "postharden")
        directory = make(base, "myhostname = a.example\n")
        directory.chmod(0o755)
        (directory / "main.cf").chmod(0o600)
        result = run(command, "--config-dir", str(directory), user="nobody", source=source)
        assert_one_error(result, command, str(directory / "main.cf"), "permission denied")
        # A directory that nobody may not enter at all.
        directory.chmod(0o700)
        result = run(command, "--config-dir", str(directory / "sub"), user="nobody", source=source)
        assert_one_error(result, command, "permission denied")
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize("command", COMMANDS)
def test_binary_garbage(command: str, tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 8
    directory = make(tmp_path, b"myhostname = a.example\n" + garbage)
    result = run(command, "--config-dir", str(directory))
    assert_one_error(result, command, f"{directory / 'main.cf'}:2", "binary")


@pytest.mark.parametrize("command", COMMANDS)
def test_garbage_without_nul_bytes(command: str, tmp_path: Path) -> None:
    directory = make(tmp_path, b"myhostname = a.example\n\xff\xfe\x80 garbage\n")
    result = run(command, "--config-dir", str(directory))
    assert_one_error(result, command, f"{directory / 'main.cf'}:2", "missing '='")


@pytest.mark.parametrize("command", COMMANDS)
def test_fifty_megabyte_file(command: str, tmp_path: Path) -> None:
    directory = make(tmp_path, "")
    with (directory / "main.cf").open("w") as handle:
        line = "# " + "x" * 1021 + "\n"
        for _ in range(50 * 1024):
            handle.write(line)
    assert (directory / "main.cf").stat().st_size >= 50 * 1024 * 1024
    started = time.monotonic()
    result = run(command, "--config-dir", str(directory))
    assert time.monotonic() - started < 20
    assert_one_error(result, command, str(directory / "main.cf"), "MiB")


def test_expansion_loop(tmp_path: Path) -> None:
    """show refuses a loop (Postfix dies on it); lint reports it as a finding (exit 1)."""
    directory = make(tmp_path, "myhostname = a.example\na = $b\nb = $a\nsmtpd_banner = $a\n")
    started = time.monotonic()
    result = run("show", "--config-dir", str(directory))
    assert time.monotonic() - started < 20
    assert_one_error(result, "show", f"{directory / 'main.cf'}:", "nesting")
    result = run("lint", "--config-dir", str(directory))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{directory / 'main.cf'}:2: error:" in result.stdout
    assert "[expansion-loop]" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_master_cf_row_with_three_fields(command: str, tmp_path: Path) -> None:
    master = GOOD_MASTER + "# a comment\nsubmission inet n\n"
    directory = make(tmp_path, "myhostname = a.example\n", master)
    result = run(command, "--config-dir", str(directory))
    assert_one_error(result, command, f"{directory / 'master.cf'}:3", "bad field count")


@pytest.mark.parametrize("command", COMMANDS)
def test_main_cf_line_without_equals(command: str, tmp_path: Path) -> None:
    directory = make(tmp_path, "myhostname = a.example\n\nthis is not a setting\n")
    result = run(command, "--config-dir", str(directory))
    assert_one_error(result, command, f"{directory / 'main.cf'}:3", "missing '='")


def test_bad_master_field_values(tmp_path: Path) -> None:
    directory = make(tmp_path, "", "smtp inet maybe - n - - smtpd\n")
    result = run("show", "--config-dir", str(directory))
    assert_one_error(result, "show", f"{directory / 'master.cf'}:1", "private")
