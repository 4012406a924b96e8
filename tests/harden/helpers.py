"""Shared helpers of the harden tests: configuration directories Postfix can check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from postharden.sandbox import MINIMAL_MASTER_CF

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin")
REPO = Path(__file__).resolve().parents[2]


def needs_postfix_root() -> pytest.MarkDecorator:
    reason = None
    if POSTFIX is None:
        reason = "the postfix binary is not installed"
    elif os.geteuid() != 0:
        reason = "postfix check / start need root"
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def make_top() -> Path:
    """A directory the postfix user can enter (mkdtemp gives 0700)."""
    top = Path(tempfile.mkdtemp(prefix="postharden-harden-"))
    top.chmod(0o755)
    return top


def base_main_cf(top: Path) -> str:
    """What any test configuration needs to pass `postfix check` beside production."""
    spool = top / "spool"
    data = top / "data"
    spool.mkdir(exist_ok=True, mode=0o755)
    data.mkdir(exist_ok=True, mode=0o755)
    if os.geteuid() == 0:
        shutil.chown(data, "postfix", "postfix")
    return (
        "# test instance\n"
        "compatibility_level = 3.6\n"
        f"queue_directory = {spool}\n"
        f"data_directory = {data}\n"
        "inet_interfaces = 127.0.0.1\n"
        "inet_protocols = ipv4\n"
        "myhostname = mx.example.test\n"
        "mydomain = example.test\n"
        "mydestination = example.test, localhost\n"
        "alias_maps =\n"
        "alias_database =\n"
        "local_recipient_maps =\n"
        "smtpd_peername_lookup = no\n"
    )


def write_config(top: Path, main_extra: str, master: str | None = None) -> Path:
    config = top / "etc"
    config.mkdir(exist_ok=True, mode=0o755)
    (config / "main.cf").write_text(base_main_cf(top) + main_extra)
    (config / "master.cf").write_text(master if master is not None else MINIMAL_MASTER_CF)
    return config


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{REPO}/.venv/bin:" + os.environ.get("PATH", "") + ":/usr/sbin:/sbin",
    }
    return subprocess.run(
        [sys.executable, "-m", "postharden", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def snapshot(config: Path) -> dict[str, bytes]:
    return {name: (config / name).read_bytes() for name in ("main.cf", "master.cf")}
