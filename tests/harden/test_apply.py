"""apply and rollback on real directories with the real `postfix check`, and their faults.

Invariant of every fault: main.cf and master.cf are the old bytes or the complete new
ones, and when anything changed the backup exists.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from postharden.harden import (
    ApplyError,
    HardenError,
    LockedError,
    PlanOptions,
    apply_plan,
    list_backups,
    load_profile,
    make_plan,
    rollback,
)
from postharden.harden.apply import JOURNAL_NAME, locked, recover

from .helpers import REPO, make_top, needs_postfix_root, run_cli, snapshot, write_config

pytestmark = [pytest.mark.postfix, pytest.mark.root, needs_postfix_root()]

SCHEMAS = REPO / "src" / "postharden" / "schemas"
WEAK_MAIN = """\
# the admin's relay policy, kept as written
mynetworks = 127.0.0.0/8 10.20.0.0/16 0.0.0.0/0
smtpd_relay_restrictions = permit_mynetworks,
    check_sender_access inline:{ partner@example.net=OK },
    reject_unauth_destination
disable_vrfy_command = no
# end of the admin's part
"""


@pytest.fixture
def top() -> Iterator[Path]:
    directory = make_top()
    yield directory
    with contextlib.suppress(subprocess.CalledProcessError):
        subprocess.run(["umount", str(directory / "etc")], capture_output=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)


def _plan(config: Path, **options: object):  # type: ignore[no-untyped-def]
    return make_plan(config, load_profile("baseline"), PlanOptions(**options))  # type: ignore[arg-type]


def _validate(document: dict[str, object], command: str) -> None:
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    jsonschema.validate(document, schema)


def test_apply_keeps_owner_mode_and_unrelated_lines_then_rollback_is_byte_identical(
    top: Path,
) -> None:
    config = write_config(top, WEAK_MAIN)
    main = config / "main.cf"
    os.chown(main, 65534, 65534)
    main.chmod(0o640)
    original = snapshot(config)

    result = run_cli(
        "apply", "--config-dir", str(config), "--yes", "--no-reload", "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    _validate(document, "apply")
    assert document["changed"] == ["main.cf"]
    stat = main.stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o7777) == (65534, 65534, 0o640)
    backups = list_backups(config)
    assert len(backups) == 1
    assert backups[0].files["main.cf"].read_bytes() == original["main.cf"]
    assert (config / "main.cf.old").read_bytes() == original["main.cf"]
    assert (backups[0].files["main.cf"].stat().st_mode & 0o7777) == 0o640
    assert not (config / JOURNAL_NAME).exists()

    # Unrelated lines are byte-identical: every difference is inside a changed definition.
    hardened = main.read_bytes()
    old_lines = original["main.cf"].split(b"\n")
    new_lines = hardened.split(b"\n")
    changed_old = set()
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(
        a=old_lines, b=new_lines, autojunk=False
    ).get_opcodes():
        if tag != "equal":
            changed_old.update(range(i1, i2))
    touched = {old_lines[i].split(b"=")[0].strip() for i in changed_old if old_lines[i].strip()}
    assert touched <= {
        b"mynetworks",
        b"check_sender_access inline:{ partner@example.net",
        b"reject_unauth_destination",
        b"disable_vrfy_command",
        b"smtpd_relay_restrictions",
    }, touched
    assert b"# the admin's relay policy, kept as written\n" in hardened
    assert b"# end of the admin's part\n" in hardened
    assert b"10.20.0.0/16" in hardened and b"0.0.0.0/0" not in hardened

    # Apply after apply is a no-op; plan after apply is empty.
    again = run_cli("apply", "--config-dir", str(config), "--yes", "--no-reload")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert main.read_bytes() == hardened and len(list_backups(config)) == 1
    assert _plan(config).empty

    # Rollback of the whole file: byte-identical; twice changes nothing more.
    result = run_cli("rollback", "--config-dir", str(config), "--no-reload", "--format", "json")
    assert result.returncode == 0, result.stderr
    _validate(json.loads(result.stdout), "rollback")
    assert snapshot(config) == original
    assert run_cli("rollback", "--config-dir", str(config), "--no-reload").returncode == 0
    assert snapshot(config) == original
    listing = run_cli("backups", "--config-dir", str(config), "--format", "json")
    _validate(json.loads(listing.stdout), "backups")


def test_rollback_of_one_parameter_keeps_the_rest_of_the_hardening(top: Path) -> None:
    master = (
        "smtp inet n - n - - smtpd\n"
        "submission inet n - n - - smtpd\n  -o disable_vrfy_command=no\n  -o smtpd_relay_restrictions=permit\n"
        + "\n".join(
            line
            for line in write_config(top, "").joinpath("master.cf").read_text().splitlines()
            if not line.startswith("smtp ")
        )
        + "\n"
    )
    config = write_config(top, WEAK_MAIN, master)
    original = snapshot(config)
    apply_plan(_plan(config), reload=False)
    hardened = snapshot(config)
    result = rollback(config, parameters=["disable_vrfy_command"], reload=False)
    assert result.write.changed == ["main.cf", "master.cf"]
    now = snapshot(config)
    # only the named parameter is back, in main.cf and in the -o override
    assert b"disable_vrfy_command = no" in now["main.cf"]
    assert b"-o disable_vrfy_command=no" in now["master.cf"]
    assert b"0.0.0.0/0" not in now["main.cf"]
    assert b"permit_sasl_authenticated,reject_unauth_destination,permit" in now["master.cf"]
    # and rolling back the rest of what changed gives the original bytes again
    rollback(
        config,
        parameters=[
            "mynetworks",
            "smtpd_relay_restrictions",
            "smtpd_helo_required",
            "smtp_tls_security_level",
        ],
        reload=False,
    )
    assert snapshot(config) == original, difflib.unified_diff(
        hardened["main.cf"].decode().splitlines(), snapshot(config)["main.cf"].decode().splitlines()
    )


def test_postfix_check_failing_after_the_write_restores_the_old_bytes(
    top: Path, tmp_path: Path
) -> None:
    config = write_config(top, WEAK_MAIN)
    original = snapshot(config)
    profile = tmp_path / "broken.toml"
    # A valid profile whose value only the real Postfix can judge: there is no such group.
    profile.write_text(
        'format = 1\nname = "broken"\nversion = 1\nextends = "baseline"\n[[rule]]\nid = "bad-group"\nkind = "set"\n'
        'parameter = "setgid_group"\nvalue = "postharden-no-such-group"\nfinding = "test"\nwhy = "test"\n'
    )
    result = run_cli(
        "apply", "--config-dir", str(config), "--profile", str(profile), "--yes", "--no-reload"
    )
    assert result.returncode == 1
    assert "postfix check failed after the write" in result.stderr
    assert "postharden-no-such-group" in result.stderr
    assert "restored main.cf byte for byte" in result.stderr
    assert snapshot(config) == original
    assert len(list_backups(config)) == 1
    assert not (config / JOURNAL_NAME).exists()


def test_postfix_check_failing_before_any_change_writes_nothing(top: Path) -> None:
    config = write_config(top, WEAK_MAIN + "setgid_group = postharden-no-such-group\n")
    original = snapshot(config)
    with pytest.raises(ApplyError, match="fails before any change"):
        apply_plan(_plan(config), reload=False)
    assert snapshot(config) == original and not list_backups(config)


def test_a_held_lock_refuses_a_second_apply(top: Path) -> None:
    config = write_config(top, WEAK_MAIN)
    original = snapshot(config)
    with locked(config):
        result = run_cli("apply", "--config-dir", str(config), "--yes", "--no-reload")
        assert result.returncode == 2
        assert "another postharden apply or rollback" in result.stderr
        with pytest.raises(LockedError):
            rollback(config, reload=False) if list_backups(config) else apply_plan(
                _plan(config), reload=False
            )
    assert snapshot(config) == original and not list_backups(config)
    # the lock is per directory and released: now it works
    assert run_cli("apply", "--config-dir", str(config), "--yes", "--no-reload").returncode == 0


def _mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir(exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")


def test_read_only_directory_changes_nothing(top: Path) -> None:
    source = write_config(top / "src", WEAK_MAIN) if (top / "src").mkdir() is None else None
    assert source is not None
    config = top / "etc"
    _mount_tmpfs(config, "1m")
    for name in ("main.cf", "master.cf"):
        shutil.copy2(source / name, config / name)
    # the lock file must not be the reason: create it, then make the mount read-only
    (config / ".postharden.lock").touch()
    subprocess.run(["mount", "-o", "remount,ro", str(config)], check=True)
    original = snapshot(config)
    result = run_cli("apply", "--config-dir", str(config), "--yes", "--no-reload")
    assert result.returncode in (1, 2)
    assert "read-only file system" in result.stderr and "nothing changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(config) == original and not list_backups(config)


def test_full_disk_at_every_step_leaves_old_or_new_bytes(top: Path) -> None:
    source_top = top / "src"
    source_top.mkdir()
    source = write_config(source_top, WEAK_MAIN)
    config = top / "etc"
    _mount_tmpfs(config, "64k")
    for name in ("main.cf", "master.cf"):
        shutil.copy2(source / name, config / name)
    original = snapshot(config)
    new_main = _plan(config).new_main
    outcomes = set()
    for free_pages in range(0, 9):
        # Fill the file system so that only `free_pages` pages are left.
        filler = config / "filler"
        with contextlib.suppress(FileNotFoundError):
            filler.unlink()
        for leftover in config.iterdir():
            if leftover.name.startswith(("main.cf.", "master.cf.", ".")) and leftover.is_file():
                leftover.unlink()
        for name, data in original.items():
            (config / name).write_bytes(data)
        (config / ".postharden.lock").touch()
        stat = os.statvfs(config)
        free = stat.f_bavail * stat.f_frsize
        with open(filler, "wb") as handle, contextlib.suppress(OSError):
            handle.write(b"\0" * max(0, free - free_pages * 4096))
        result = run_cli("apply", "--config-dir", str(config), "--yes", "--no-reload")
        assert "Traceback" not in result.stderr, result.stderr
        now = snapshot(config)
        assert now["master.cf"] == original["master.cf"]
        assert now["main.cf"] in (original["main.cf"], new_main), free_pages
        if now["main.cf"] == new_main:
            assert result.returncode == 0
            backups = list_backups(config)
            assert backups and backups[-1].files["main.cf"].read_bytes() == original["main.cf"]
            outcomes.add("applied")
        else:
            assert result.returncode == 1, result.stderr
            assert "no space left on the device" in result.stderr
            outcomes.add("refused")
        assert not list(config.glob(".*postharden-tmp-*"))
    assert outcomes == {"applied", "refused"}, outcomes


def _wait_for_group_gone(pgid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of the killed apply (group {pgid}) are still running")


def _kill_runs(top: Path, runs: int, seed: int) -> None:
    config = write_config(top, WEAK_MAIN, None)
    original = snapshot(config)
    plan = _plan(config)
    new = {"main.cf": plan.new_main, "master.cf": plan.new_master}
    rng = random.Random(seed)
    env = {**os.environ, "POSTHARDEN_APPLY_STEP_DELAY": "0.15"}
    # measure one full apply to spread the kill points over its whole length
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "postharden",
            "apply",
            "--config-dir",
            str(config),
            "--yes",
            "--no-reload",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    length = time.monotonic() - started
    seen = {"old": 0, "new": 0}
    for _ in range(runs):
        for name, data in original.items():
            # Atomically: `postfix check` (run by apply) runs Postfix's post-install, which
            # may rewrite main.cf with `postconf -e`; an in-place write here could be read
            # half-done by such a Postfix process.
            temporary = config / f".{name}.test-tmp"
            temporary.write_bytes(data)
            temporary.rename(config / name)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "postharden",
                "apply",
                "--config-dir",
                str(config),
                "--yes",
                "--no-reload",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.0, length))
        # kill -9 of the apply job: apply and whatever it started (postfix check), as a shell
        # kills a job; an orphaned check would otherwise go on changing main.cf.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _wait_for_group_gone(process.pid)
        now = snapshot(config)
        for name in ("main.cf", "master.cf"):
            assert now[name] in (original[name], new[name]), name
        if now != original:
            backups = list_backups(config)
            assert backups and backups[-1].files["main.cf"].read_bytes() == original["main.cf"]
        seen["old" if now["main.cf"] == original["main.cf"] else "new"] += 1
        # the next writer finishes an interrupted apply first: back to the old files
        with locked(config):
            recover(config)
        after = snapshot(config)
        assert after in (original, new), "recovery left a mixed state"
        assert not (config / JOURNAL_NAME).exists()
    assert seen["old"] and seen["new"], seen


def test_kill_minus_nine_at_random_points(top: Path) -> None:
    _kill_runs(top, runs=8, seed=1905)


@pytest.mark.slow
def test_kill_minus_nine_at_random_points_many_times(top: Path) -> None:
    _kill_runs(top, runs=30, seed=2024)


def test_rollback_without_backups_is_a_clear_error(top: Path) -> None:
    config = write_config(top, WEAK_MAIN)
    with pytest.raises(HardenError, match="no postharden backups"):
        rollback(config, reload=False)
    result = run_cli("rollback", "--config-dir", str(config), "--to", "20000101T000000")
    assert result.returncode == 2 and "no postharden backups" in result.stderr
