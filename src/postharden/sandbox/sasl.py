"""A stand-in for Dovecot's auth socket, so smtpd with `smtpd_sasl_type = dovecot` runs.

smtpd with SASL enabled connects to its SASL backend when it starts serving and dies
("fatal: no SASL authentication mechanisms") when nothing answers. In production the
socket (`smtpd_sasl_path = private/auth`) lives in the production queue directory, which
the sandbox replaces; this stub answers the handshake of the Dovecot auth protocol
(VERSION, MECH PLAIN, DONE) on the sandbox's socket. The sandbox asks SASL clients through
XCLIENT LOGIN, which never authenticates anybody, so the stub never has to.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import threading
from pathlib import Path

from postharden.config import ConfigError, ExpansionError, load_config

HANDSHAKE = (
    b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t1\nCUID\t1\n"
    b"COOKIE\t0123456789abcdef0123456789abcdef\nDONE\n"
)


class DovecotAuthStub:
    """Answers the Dovecot auth handshake on a unix socket until closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)
        with contextlib.suppress(KeyError, PermissionError):
            postfix = pwd.getpwnam("postfix")
            os.chown(path, postfix.pw_uid, postfix.pw_gid)
        self.sock.listen(64)
        self.sock.settimeout(0.5)
        self.closed = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(HANDSHAKE)
                conn.settimeout(600)
                while not self.closed and conn.recv(4096):
                    pass
            except OSError:
                return

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def dovecot_sockets(config_directory: Path) -> set[str]:
    """Queue-relative Dovecot auth socket paths that some smtpd service of the sandbox's
    configuration uses with SASL enabled (main.cf plus the service's -o overrides)."""
    try:
        config = load_config(config_directory)
    except ConfigError:
        return set()
    paths: set[str] = set()
    for service in config.smtpd_services():
        context = config.effective(service)
        try:
            enabled = context.expanded("smtpd_sasl_auth_enable").strip().lower() == "yes"
            kind = context.expanded("smtpd_sasl_type").strip().lower()
            path = context.expanded("smtpd_sasl_path").strip()
        except ExpansionError:
            continue
        if enabled and kind == "dovecot" and path and not path.startswith("/") and ":" not in path:
            paths.add(path)
    return paths
