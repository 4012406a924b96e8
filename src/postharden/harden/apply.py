"""Write a configuration safely: lock, backup, atomic replace, `postfix check`, restore, reload.

The worst case of every function here is "nothing changed":

1. an exclusive lock on `DIR/.postharden.lock` (a second apply or rollback is refused);
2. a journal left by an apply that was killed is finished first: the files it was
   replacing are restored from the copies it names;
3. the files must still be the bytes the plan was made from;
4. `postfix -c DIR check` must pass before anything is written;
5. backups `main.cf.postharden-YYYYmmddTHHMMSS` (and master.cf), plus `main.cf.old` as the
   runbook names it, each written atomically;
6. the journal, then each file: a temporary file in the same directory, the old owner,
   group and mode, fsync, rename over the old file, fsync of the directory;
7. `postfix -c DIR check` again; if it fails, or anything else fails after the first
   rename, every file is restored from its backup byte for byte (by hard link, which
   needs no free space) and the error says so;
8. `postfix -c DIR reload` when Postfix is running, unless told not to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from postharden.config.defaults import find_postfix_tool
from postharden.harden.errors import ApplyError, HardenError, LockedError

LOCK_NAME = ".postharden.lock"
JOURNAL_NAME = ".postharden-journal"
BACKUP_SUFFIX = ".postharden-"
BACKUP_PATTERN = re.compile(r"^(main\.cf|master\.cf)\.postharden-(\d{8}T\d{6}(?:-\d+)?)$")
FILES = ("main.cf", "master.cf")
CHECK_TIMEOUT = 180.0

# Test hook: a file whose existence makes the writer pause there (kill tests). Not a
# switch of behaviour: the steps are the same with or without it.
_PAUSE_ENV = "POSTHARDEN_APPLY_STEP_DELAY"


@dataclass(frozen=True)
class CommandResult:
    command: str
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def as_dict(self) -> dict[str, object]:
        return {"command": self.command, "returncode": self.returncode, "output": self.output}


@dataclass
class WriteResult:
    """What a write did: backup set, files changed, check and reload results, notes."""

    config_dir: Path
    changed: list[str] = field(default_factory=list)
    backup: str | None = None  # the backup stamp
    check: CommandResult | None = None
    reload: CommandResult | None = None
    notes: list[str] = field(default_factory=list)
    recovered: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "config_dir": str(self.config_dir),
            "changed": list(self.changed),
            "backup": self.backup,
            "check": self.check.as_dict() if self.check else None,
            "reload": self.reload.as_dict() if self.reload else None,
            "notes": list(self.notes),
            "recovered": self.recovered,
        }


def _pause(step: str) -> None:
    delay = os.environ.get(_PAUSE_ENV)
    if delay:
        time.sleep(float(delay))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(error: OSError) -> str:
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    if error.errno == errno.EROFS:
        return "read-only file system"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return error.strerror or str(error)


def atomic_write(path: Path, data: bytes, like: os.stat_result | None) -> None:
    """Replace path with data: temp file in the same directory, owner/mode kept, fsync, rename."""
    temporary = path.with_name(f".{path.name}.postharden-tmp-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if like is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, like.st_uid, like.st_gid)
                os.fchmod(fd, like.st_mode & 0o7777)
            else:
                os.fchmod(fd, 0o644)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_dir(path.parent)


def restore_from(path: Path, source: Path) -> None:
    """Put source's bytes at path atomically, as a copy of its own.

    A hard link would need no free blocks, but main.cf and the backup would then be one
    file: the next in-place edit of main.cf (an editor, `cat >`) would silently change the
    backup too. The link is only the last resort when the disk is too full for a copy.
    """
    try:
        atomic_write(path, source.read_bytes(), source.stat())
        return
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
    temporary = path.with_name(f".{path.name}.postharden-restore-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    os.link(source, temporary)
    try:
        os.rename(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_dir(path.parent)


# -- lock and journal ---------------------------------------------------------------------


@contextlib.contextmanager
def locked(config_dir: Path) -> Iterator[None]:
    """Exclusive lock of a configuration directory; LockedError when another holds it."""
    path = config_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise HardenError(
            f"cannot create the lock file: {_describe(error)}; nothing changed", location=str(path)
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise LockedError(
                f"another postharden apply or rollback (pid {holder}) is working on this "
                "directory; nothing changed",
                location=str(config_dir),
            ) from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _write_journal(config_dir: Path, sources: Mapping[str, str]) -> None:
    document = {"pid": os.getpid(), "restore": dict(sources)}
    atomic_write(config_dir / JOURNAL_NAME, json.dumps(document).encode(), None)


def _remove_journal(config_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(config_dir / JOURNAL_NAME)
    _fsync_dir(config_dir)


def recover(config_dir: Path) -> str | None:
    """Finish an apply that was killed: restore the files it was replacing.

    Returns a sentence when something was recovered. Call with the lock held.
    """
    path = config_dir / JOURNAL_NAME
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        _remove_journal(config_dir)
        return "removed an unreadable journal of an interrupted apply"
    restored = []
    for name, source in dict(document.get("restore", {})).items():
        if name not in FILES:
            continue
        source_path = config_dir / str(source)
        target = config_dir / name
        if not source_path.is_file():
            continue
        if target.exists() and target.read_bytes() == source_path.read_bytes():
            continue
        restore_from(target, source_path)
        restored.append(f"{name} from {source}")
    _remove_journal(config_dir)
    if restored:
        return "an earlier apply was interrupted; restored " + ", ".join(restored)
    return "an earlier apply was interrupted before it changed anything"


# -- postfix commands -----------------------------------------------------------------------


def _run_on_pty(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run a command with a terminal as stdout/stderr: `postfix` prints its errors only to a
    terminal (otherwise only to syslog)."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "LC_ALL": "C"},
            start_new_session=True,
        )
    except OSError as error:
        os.close(master)
        os.close(slave)
        return 127, f"{argv[0]}: {error.strerror}"
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                process.wait()
                return 124, b"".join(chunks).decode(errors="replace") + "\n(timed out)"
            ready, _, _ = select.select([master], [], [], min(remaining, 0.5))
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                # Drain what is left without blocking.
                while select.select([master], [], [], 0)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    chunks.append(data)
                break
    finally:
        os.close(master)
    returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    text = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n").strip()
    return returncode, text


def postfix_command(
    config_dir: Path, action: str, timeout: float = CHECK_TIMEOUT
) -> CommandResult | None:
    """`postfix -c DIR ACTION`, or None when Postfix is not installed."""
    postfix = find_postfix_tool("postfix")
    if postfix is None:
        return None
    argv = [postfix, "-c", str(config_dir), action]
    code, output = _run_on_pty(argv, timeout)
    return CommandResult(" ".join(argv), code, output)


def postfix_running(config_dir: Path) -> bool:
    result = postfix_command(config_dir, "status", timeout=30)
    return result is not None and result.ok


# -- the write --------------------------------------------------------------------------------


def _stamp(config_dir: Path) -> str:
    base = time.strftime("%Y%m%dT%H%M%S")
    stamp, counter = base, 1
    while any((config_dir / f"{name}{BACKUP_SUFFIX}{stamp}").exists() for name in FILES):
        counter += 1
        stamp = f"{base}-{counter}"
    return stamp


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def write_configuration(
    config_dir: Path,
    new: Mapping[str, bytes],
    expected: Mapping[str, bytes | None],
    *,
    check: bool = True,
    reload: bool = True,
    backup: bool = True,
) -> WriteResult:
    """Replace main.cf/master.cf with `new` if they still hold `expected`.

    `backup=False` (rollback) keeps only `*.old` copies of the replaced files.
    Raises HardenError/ApplyError with what happened; files are then as before.
    """
    result = WriteResult(config_dir)
    with locked(config_dir):
        result.recovered = recover(config_dir)
        if result.recovered:
            result.notes.append(result.recovered)
        current: dict[str, bytes | None] = {}
        for name in FILES:
            try:
                current[name] = (config_dir / name).read_bytes()
            except FileNotFoundError:
                current[name] = None
            except OSError as error:
                raise HardenError(
                    f"cannot read {name}: {_describe(error)}", location=str(config_dir)
                ) from None
        for name, data in expected.items():
            if current.get(name) != data:
                raise HardenError(
                    f"{name} changed since the plan was made; run the command again (nothing changed)",
                    location=str(config_dir),
                )
        changed = [name for name, data in new.items() if current.get(name) != data]
        if not changed:
            return result
        if check:
            before = postfix_command(config_dir, "check")
            if before is None:
                result.notes.append("Postfix is not installed here: `postfix check` was not run")
            elif not before.ok:
                raise ApplyError(
                    "postfix check fails before any change (fix this first; nothing changed): "
                    + _last_lines(before.output)
                )
        stats = {name: _stat(config_dir / name) for name in FILES}
        sources: dict[str, str] = {}
        written_backups: list[Path] = []
        try:
            if backup:
                stamp = _stamp(config_dir)
                result.backup = stamp
                for name in FILES:
                    data = current[name]
                    if data is None:
                        continue
                    target = config_dir / f"{name}{BACKUP_SUFFIX}{stamp}"
                    atomic_write(target, data, stats[name])
                    written_backups.append(target)
                    sources[name] = target.name
                    _pause("backup")
            for name in changed:
                data = current[name]
                if data is None:
                    continue
                old_copy = config_dir / f"{name}.old"
                atomic_write(old_copy, data, stats[name])
                sources.setdefault(name, old_copy.name)
            _write_journal(config_dir, sources)
        except OSError as error:
            raise ApplyError(
                f"cannot write the backup: {_describe(error)}; nothing changed "
                "(main.cf and master.cf are untouched)"
            ) from None
        _pause("journal")
        replaced: list[str] = []
        try:
            for name in changed:
                atomic_write(config_dir / name, new[name], stats[name] or stats["main.cf"])
                replaced.append(name)
                _pause(f"write {name}")
            if check:
                after = postfix_command(config_dir, "check")
                result.check = after
                if after is not None and not after.ok:
                    raise _CheckFailed(after)
        except (OSError, _CheckFailed) as error:
            _restore(config_dir, replaced, sources, current)
            _remove_journal(config_dir)
            if isinstance(error, _CheckFailed):
                reason = "postfix check failed after the write: " + _last_lines(error.result.output)
            else:
                reason = f"writing failed: {_describe(error)}"
            raise ApplyError(
                f"{reason}; restored {', '.join(replaced) or 'nothing (nothing was replaced)'} byte for byte"
            ) from None
        _remove_journal(config_dir)
        result.changed = changed
        if reload:
            result.reload = _reload(config_dir, result)
            if result.reload is not None and not result.reload.ok:
                _restore(config_dir, changed, sources, current)
                again = postfix_command(config_dir, "reload", timeout=60)
                raise ApplyError(
                    "postfix reload failed: "
                    + _last_lines(result.reload.output)
                    + f"; restored {', '.join(changed)} byte for byte"
                    + (
                        ""
                        if again is None or again.ok
                        else " (the reload of the old files failed too)"
                    )
                )
    return result


class _CheckFailed(Exception):
    def __init__(self, result: CommandResult) -> None:
        super().__init__(result.output)
        self.result = result


def _restore(
    config_dir: Path,
    names: list[str],
    sources: Mapping[str, str],
    current: Mapping[str, bytes | None],
) -> None:
    for name in names:
        source = sources.get(name)
        target = config_dir / name
        if source is not None and (config_dir / source).read_bytes() == current[name]:
            restore_from(target, config_dir / source)
        else:
            data = current[name]
            if data is not None:
                atomic_write(target, data, _stat(target))


def _reload(config_dir: Path, result: WriteResult) -> CommandResult | None:
    if find_postfix_tool("postfix") is None:
        result.notes.append("Postfix is not installed here: not reloaded")
        return None
    if not postfix_running(config_dir):
        result.notes.append(
            "Postfix is not running: the new configuration takes effect when it starts"
        )
        return None
    return postfix_command(config_dir, "reload", timeout=60)


def _last_lines(output: str, count: int = 3) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return " | ".join(lines[-count:]) if lines else "(no output)"
