"""Backups and rollback: the whole files from a backup, or only named parameters.

A backup set is the `main.cf.postharden-STAMP` (and `master.cf.postharden-STAMP`) files
that one apply wrote before it changed anything. Rolling back the whole set writes those
bytes back exactly. Rolling back named parameters (the runbook's "edit out one bad line")
gives each parameter the value it had in the backup - in main.cf at its winning
definition, and in every master.cf `-o` override of it - and leaves the rest of the
hardening in place. Either way the write goes through `apply.write_configuration`
(lock, atomic write, `postfix check`, restore on failure, reload); the replaced files are
kept as `*.old`, and the backup set stays, so running rollback again changes nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from postharden.config import load_defaults
from postharden.config.errors import ConfigError
from postharden.harden import edit
from postharden.harden.apply import BACKUP_PATTERN, BACKUP_SUFFIX, WriteResult, write_configuration
from postharden.harden.errors import HardenError
from postharden.harden.plan import MAIN_CF, MASTER_CF, config_from_text, read_files


@dataclass(frozen=True)
class Backup:
    stamp: str
    files: dict[str, Path]
    mtime: float

    @property
    def created(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.mtime))

    def as_dict(self) -> dict[str, object]:
        return {
            "stamp": self.stamp,
            "created": self.created,
            "files": {
                name: {"path": str(path), "size": path.stat().st_size}
                for name, path in self.files.items()
            },
        }


def list_backups(config_dir: Path) -> list[Backup]:
    """Backup sets in the directory, oldest first."""
    try:
        names = os.listdir(config_dir)
    except OSError as error:
        raise HardenError(
            f"cannot list the directory: {error.strerror}", location=str(config_dir)
        ) from None
    sets: dict[str, dict[str, Path]] = {}
    for name in names:
        match = BACKUP_PATTERN.match(name)
        if match:
            sets.setdefault(match.group(2), {})[match.group(1)] = config_dir / name
    backups = [
        Backup(stamp, files, max(path.stat().st_mtime for path in files.values()))
        for stamp, files in sets.items()
    ]
    return sorted(backups, key=_order)


def _order(backup: Backup) -> tuple[str, int]:
    base, _, counter = backup.stamp.partition("-")
    return base, int(counter or 1)


def find_backup(config_dir: Path, to: str | None) -> Backup:
    backups = list_backups(config_dir)
    if not backups:
        raise HardenError(
            "no postharden backups here (main.cf.postharden-*)", location=str(config_dir)
        )
    if to is None:
        return backups[-1]
    wanted = Path(to).name
    for backup in backups:
        if wanted == backup.stamp or wanted in {path.name for path in backup.files.values()}:
            return backup
    known = ", ".join(b.stamp for b in backups)
    raise HardenError(f"no backup {to!r} (have: {known})", location=str(config_dir))


@dataclass
class RollbackResult:
    backup: Backup
    parameters: list[str]
    write: WriteResult
    details: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            **self.write.as_dict(),
            "backup": self.backup.as_dict(),
            "parameters": list(self.parameters),
            "details": list(self.details),
        }


def restore_parameters(
    current_main: str,
    current_master: str | None,
    backup_main: str,
    backup_master: str | None,
    parameters: Sequence[str],
    config_dir: Path,
) -> tuple[str, str | None, list[str]]:
    """Texts where each named parameter has its backup value again (pure)."""
    defaults = load_defaults("auto")
    details: list[str] = []
    old = config_from_text(config_dir, backup_main, backup_master, defaults)
    main_text, master_text = current_main, current_master
    for name in parameters:
        config = config_from_text(config_dir, main_text, master_text, defaults)
        wanted = old.definition(name)
        have = config.definition(name)
        if wanted is not None:
            written = edit.definition_lines(backup_main, wanted)
            if have is None or edit.definition_lines(main_text, have) != written:
                main_text = edit.restore_definition(main_text, have, backup_main, wanted)
                details.append(f"main.cf: {name} = {' '.join(wanted.value.split())}")
        else:
            while have is not None:
                main_text = edit.delete_main(main_text, have)
                details.append(f"main.cf: removed {name} (the backup does not set it)")
                config = config_from_text(config_dir, main_text, master_text, defaults)
                have = config.definition(name)
        if master_text is None:
            continue
        config = config_from_text(config_dir, main_text, master_text, defaults)
        for service in config.services:
            current = service.override(name)
            try:
                before = old.service(service.key).override(name)
            except ConfigError:
                before = None
            if current is None and before is None:
                continue
            if before is None:
                assert current is not None
                while current is not None:
                    master_text = edit.remove_override(master_text, service, current)
                    service = config_from_text(
                        config_dir, main_text, master_text, defaults
                    ).service(service.key)
                    current = service.override(name)
                details.append(f"master.cf [{service.key}]: removed -o {name}")
            elif current is None:
                master_text = edit.add_override(master_text, service, name, before.value)
                details.append(f"master.cf [{service.key}]: -o {name}={before.value}")
            elif current.value != before.value:
                master_text = edit.set_override(master_text, service, current, before.value)
                details.append(f"master.cf [{service.key}]: -o {name}={before.value}")
    return main_text, master_text, details


def rollback(
    config_dir: Path,
    *,
    to: str | None = None,
    parameters: Sequence[str] = (),
    check: bool = True,
    reload: bool = True,
) -> RollbackResult:
    backup = find_backup(config_dir, to)
    current_main, current_master = read_files(config_dir)
    saved = {name: path.read_bytes() for name, path in backup.files.items()}
    details: list[str] = []
    if not parameters:
        new = dict(saved)
        for name in (MAIN_CF, MASTER_CF):
            if name in new:
                current = current_main if name == MAIN_CF else current_master
                if current != new[name]:
                    details.append(f"{name}: the whole file from {backup.files[name].name}")
    else:
        main_text, master_text, details = restore_parameters(
            edit.decode(current_main),
            edit.decode(current_master) if current_master is not None else None,
            edit.decode(saved[MAIN_CF]),
            edit.decode(saved[MASTER_CF]) if MASTER_CF in saved else None,
            parameters,
            config_dir,
        )
        new = {MAIN_CF: edit.encode(main_text)}
        if master_text is not None:
            new[MASTER_CF] = edit.encode(master_text)
    write = write_configuration(
        config_dir,
        new,
        {MAIN_CF: current_main, MASTER_CF: current_master},
        check=check,
        reload=reload,
        backup=False,
    )
    return RollbackResult(backup, list(parameters), write, details)


__all__ = ["BACKUP_SUFFIX", "Backup", "RollbackResult", "find_backup", "list_backups", "rollback"]
