"""Postfix in a private mount namespace whose /etc/resolv.conf points at a stub DNS server.

``namespaced(argv, resolv_conf)`` is the command line that runs ``argv`` under
``unshare --mount --propagation private`` after bind-mounting ``resolv_conf`` over
``/etc/resolv.conf``; ``exec`` keeps the process (and everything it forks: ``postfix start``
runs postfix-script, which starts master, which daemonizes and forks every daemon) inside
that namespace. The bind mount exists only in the namespace: the host's resolv.conf is
untouched, and the mount disappears with the last process in the namespace (master and
its children), so stopping master is the whole clean-up.

``mount_namespace(pid)`` is the namespace of a process (``mnt:[4026532177]``),
``namespace_members(ns)`` the live processes in it, and ``resolv_conf_text(address)`` the
resolver configuration for a stub (one nameserver, 1 s timeout, one attempt, no search
list, so that an unanswered query is a quick temporary failure and no name is tried with a
suffix).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

UNSHARE = "unshare"


def namespace_unavailable() -> str | None:
    """None when `unshare` can be used here, else the one-line reason why not."""
    if os.geteuid() != 0:
        return "a private mount namespace needs root"
    if shutil.which(UNSHARE, path=os.environ.get("PATH", "") + ":/usr/bin:/bin") is None:
        return "unshare(1) is not installed (util-linux)"
    return None


def resolv_conf_text(address: str) -> str:
    return (
        "# postharden sandbox: every name Postfix looks up goes to the stub DNS server\n"
        f"nameserver {address}\n"
        "options timeout:1 attempts:1\n"
    )


def namespaced(argv: list[str], resolv_conf: Path) -> list[str]:
    """`argv` run inside a new private mount namespace with `resolv_conf` as
    /etc/resolv.conf."""
    unshare = shutil.which(UNSHARE, path=os.environ.get("PATH", "") + ":/usr/bin:/bin")
    if unshare is None:
        raise FileNotFoundError("unshare")
    script = 'mount --bind "$1" /etc/resolv.conf || exit 111; shift; exec "$@"'
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        script,
        "postharden-netns",
        str(resolv_conf),
        *argv,
    ]


def mount_namespace(pid: int | str = "self") -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The start time of a live (non-zombie) process in clock ticks since boot, which with
    its PID names it uniquely (a PID is reused, the pair is not); None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    if len(fields) < 20 or fields[0] == "Z":
        return None
    return int(fields[19])


def namespace_members(namespace: str) -> list[int]:
    """Live (non-zombie) processes whose mount namespace is `namespace`.

    The name is the namespace's inode number, which the kernel reuses once the namespace is
    gone: ask only while a known member (master) is alive, and identify what you find with
    `process_start` if you act on it later.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if mount_namespace(entry.name) != namespace:
            continue
        try:
            state = (entry / "stat").read_text().rpartition(")")[2].split()[:1]
        except OSError:
            continue
        if state != ["Z"]:
            members.append(int(entry.name))
    return members


__all__ = [
    "mount_namespace",
    "namespace_members",
    "namespace_unavailable",
    "namespaced",
    "process_start",
    "resolv_conf_text",
]
