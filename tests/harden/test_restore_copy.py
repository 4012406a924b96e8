"""A restored main.cf is a file of its own, not a second name of the backup."""

from __future__ import annotations

from pathlib import Path

from postharden.harden.apply import restore_from


def test_restore_copies_so_editing_main_cf_leaves_the_backup_alone(tmp_path: Path) -> None:
    backup = tmp_path / "main.cf.postharden-20261122T000000"
    backup.write_bytes(b"myhostname = old.example.com\n")
    backup.chmod(0o640)
    main_cf = tmp_path / "main.cf"
    main_cf.write_bytes(b"myhostname = new.example.com\n")
    restore_from(main_cf, backup)
    assert main_cf.read_bytes() == backup.read_bytes()
    assert main_cf.stat().st_ino != backup.stat().st_ino
    assert main_cf.stat().st_mode & 0o777 == 0o640
    with main_cf.open("ab") as edit:  # an in-place edit, as an editor or `cat >>` does
        edit.write(b"disable_vrfy_command = yes\n")
    assert backup.read_bytes() == b"myhostname = old.example.com\n"
