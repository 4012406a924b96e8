"""Continuous monitoring: follow a log across rotation, sliding windows, alerts once per
window with persisted state, and blocklists of brute-force sources."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from postharden.logs.analyze import network_of
from postharden.logs.errors import LogError
from postharden.logs.events import Event, Kind
from postharden.logs.reader import LineParser
from postharden.logs.thresholds import Thresholds

STATE_VERSION = 1


@dataclass
class FollowState:
    path: str
    inode: int | None = None
    offset: int = 0
    check: str = ""  # hex of the bytes just before offset: detects copytruncate + regrowth


class Follower:
    """`tail -F` by polling: survives rename (reads the old file to its end first, also
    after a restart, by finding the saved inode next to the log) and truncation."""

    def __init__(self, state: FollowState) -> None:
        self.state = state
        self.path = Path(state.path)
        self.partial = b""

    def _sibling_with_inode(self, inode: int) -> Path | None:
        try:
            for p in self.path.parent.iterdir():
                if (
                    p != self.path
                    and p.name.startswith(self.path.name)
                    and p.stat().st_ino == inode
                ):
                    return p
        except OSError:
            return None
        return None

    def _read_from(self, path: Path, offset: int) -> tuple[bytes, int]:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
        return data, offset + len(data)

    def _tail_bytes(self, offset: int) -> bytes:
        start = max(0, offset - 64)
        try:
            with self.path.open("rb") as fh:
                fh.seek(start)
                return fh.read(offset - start)
        except OSError:
            return b""

    def _same_prefix(self) -> bool:
        s = self.state
        return not s.check or s.offset == 0 or self._tail_bytes(s.offset).hex() == s.check

    def poll(self) -> Iterator[bytes]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        except OSError as error:
            raise LogError(f"cannot read: {error.strerror}", location=str(self.path)) from None
        s = self.state
        chunks: list[bytes] = []
        if s.inode is not None and st.st_ino != s.inode:
            old = self._sibling_with_inode(s.inode)
            if old is not None:  # rotated by rename: finish the old file first
                data, _ = self._read_from(old, s.offset)
                chunks.append(self.partial + data)
                self.partial = b""
                if not chunks[-1].endswith(b"\n") and chunks[-1]:
                    chunks[-1] += b"\n"
            s.inode, s.offset = st.st_ino, 0
        if s.inode is None:
            s.inode = st.st_ino
        if st.st_size < s.offset or not self._same_prefix():  # truncated in place
            s.offset = 0
            self.partial = b""
        data, s.offset = self._read_from(self.path, s.offset)
        chunks.append(data)
        buf = self.partial + b"".join(chunks)
        cut = buf.rfind(b"\n")
        self.partial = buf[cut + 1 :]
        # The saved offset never covers a partial line: a restart re-reads it whole.
        s.offset -= len(self.partial)
        self.partial = b""
        s.check = self._tail_bytes(s.offset).hex()
        yield from buf[: cut + 1].splitlines(keepends=True)


@dataclass
class Alert:
    kind: str
    subject: str
    count: int
    threshold: int
    detail: str
    at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "count": self.count,
            "threshold": self.threshold,
            "detail": self.detail,
            "time": self.at,
        }


@dataclass
class Windows:
    """Event timestamps per (kind, subject) within the window, and when each last alerted."""

    thresholds: Thresholds
    recent: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    alerted: dict[str, float] = field(default_factory=dict)

    def _limit(self, kind: str) -> int:
        th = self.thresholds
        return {
            "brute_force": th.brute_force,
            "relay_attempts": th.relay_denied,
            "policy_outage": th.policy_outage,
            "fatal": th.fatal,
            "compromised_account": th.compromised_networks,
            "tls_errors": th.tls_errors,
        }[kind]

    def observe(self, kind: str, subject: str, ts: float, value: str = "") -> Alert | None:
        key = f"{kind}\0{subject}"
        q = self.recent.setdefault(key, deque())
        q.append((ts, value))
        window = self.thresholds.window
        while q and q[0][0] <= ts - window:
            q.popleft()
        count = len({v for _, v in q}) if kind == "compromised_account" else len(q)
        limit = self._limit(kind)
        if count < limit or limit <= 0:
            return None
        last = self.alerted.get(key)
        if last is not None and ts - last < window:
            return None  # once per window
        self.alerted[key] = ts
        what = {
            "brute_force": f"{count} SASL authentication failures from {subject}",
            "relay_attempts": f"{count} relay-access-denied rejects for {subject}",
            "policy_outage": f"policy service {subject} failing ({count}x): mail outage",
            "fatal": f"{count} fatal/panic lines: {value[:200]}",
            "compromised_account": f"SASL user {subject} logged in from {count} networks",
            "tls_errors": f"{count} TLS errors",
        }[kind]
        return Alert(kind, subject, count, limit, f"{what} within {window}s", ts)

    def over(self, kind: str, now: float) -> list[str]:
        """Subjects of KIND at or over the threshold in the window ending at NOW."""
        out = []
        for key, q in self.recent.items():
            k, _, subject = key.partition("\0")
            if k == kind and sum(
                1 for t, _ in q if t > now - self.thresholds.window
            ) >= self._limit(k):
                out.append(subject)
        return sorted(out)

    def dump(self) -> dict[str, Any]:
        return {
            "recent": {k: list(v) for k, v in self.recent.items() if v},
            "alerted": self.alerted,
        }

    def load(self, data: dict[str, Any]) -> None:
        self.recent = {
            k: deque((float(t), str(v)) for t, v in q) for k, q in data.get("recent", {}).items()
        }
        self.alerted = {k: float(v) for k, v in data.get("alerted", {}).items()}


def classify(e: Event) -> list[tuple[str, str, str]]:
    """(alert kind, subject, distinct value) observations of one event."""
    if e.kind is Kind.SASL_FAILURE:
        return [("brute_force", e.client_ip or "unknown", "")]
    if e.kind is Kind.REJECT and e.reason == "relay_denied":
        return [("relay_attempts", e.client_ip or "unknown", "")]
    if e.kind is Kind.POLICY_FAILURE:
        return [("policy_outage", e.detail or "unknown", "")]
    if e.kind is Kind.REJECT and e.reason == "policy_service":
        return [("policy_outage", "(451 4.3.5 reply)", "")]
    if e.kind in (Kind.FATAL, Kind.PANIC):
        return [("fatal", "postfix", e.detail or "")]
    if e.kind is Kind.SASL_LOGIN and e.user and e.client_ip:
        return [("compromised_account", e.user, network_of(e.client_ip))]
    if e.kind is Kind.TLS_ERROR:
        return [("tls_errors", "TLS", "")]
    return []


def render_blocklist(addresses: list[str], fmt: str) -> str:
    if fmt == "nft":
        elements = ", ".join(addresses)
        return (
            "# nft -f this file; set postharden_bruteforce in table inet filter\n"
            "flush set inet filter postharden_bruteforce\n"
            + (
                f"add element inet filter postharden_bruteforce {{ {elements} }}\n"
                if addresses
                else ""
            )
        )
    if fmt == "access":  # check_client_access cidr:/... or hash:
        return "".join(f"{a} REJECT brute-force source (postharden)\n" for a in addresses)
    return "".join(f"{a}\n" for a in addresses)


def atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Notifier:
    mail_to: str | None = None
    sendmail: str = "/usr/sbin/sendmail"
    webhook: str | None = None
    command: str | None = None
    timeout: float = 30.0
    warn: Callable[[str], None] = print

    def send(self, alert: Alert) -> None:
        body = alert.as_json()
        if self.mail_to:
            msg = (
                f"To: {self.mail_to}\nSubject: [postharden] {alert.kind}: {alert.subject}\n"
                f"Auto-Submitted: auto-generated\n\n{alert.detail}\n\n{json.dumps(body, indent=2)}\n"
            )
            self._run([*shlex.split(self.sendmail), "-t", "-oi"], msg.encode(), "sendmail")
        if self.webhook:
            req = urllib.request.Request(
                self.webhook,
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    resp.read()
            except OSError as error:
                self.warn(f"webhook {self.webhook}: {error}")
        if self.command:
            env = {
                **os.environ,
                "POSTHARDEN_ALERT_KIND": alert.kind,
                "POSTHARDEN_ALERT_SUBJECT": alert.subject,
            }
            self._run(
                ["/bin/sh", "-c", self.command], json.dumps(body).encode() + b"\n", "command", env
            )

    def _run(
        self, argv: list[str], data: bytes, what: str, env: dict[str, str] | None = None
    ) -> None:
        try:
            proc = subprocess.run(
                argv, input=data, capture_output=True, timeout=self.timeout, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            self.warn(f"{what}: {error}")
            return
        if proc.returncode != 0:
            self.warn(
                f"{what} exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[:200]}"
            )


class Watcher:
    def __init__(
        self,
        path: Path,
        thresholds: Thresholds,
        state_path: Path | None,
        notifier: Notifier,
        emit: Callable[[Alert], None],
    ) -> None:
        self.windows = Windows(thresholds)
        self.state_path = state_path
        follow = FollowState(str(path))
        if state_path is not None and state_path.exists():
            try:
                data = json.loads(state_path.read_text())
                if data.get("version") != STATE_VERSION or data.get("path") != str(path):
                    raise ValueError("state of another log or version")
                follow = FollowState(
                    str(path),
                    data.get("inode"),
                    int(data.get("offset", 0)),
                    str(data.get("check", "")),
                )
                self.windows.load(data)
            except (ValueError, OSError, TypeError, AttributeError) as error:
                raise LogError(f"unusable state file: {error}", location=str(state_path)) from None
        self.follower = Follower(follow)
        self.parser = LineParser(None, time.time())
        self.notifier = notifier
        self.emit = emit
        self.last_ts = 0.0

    def step(self) -> list[Alert]:
        alerts = []
        for raw in self.follower.poll():
            result = self.parser.parse(raw)
            e = result.event
            if e is None or e.ts is None:
                continue
            self.last_ts = max(self.last_ts, e.ts)
            for kind, subject, value in classify(e):
                alert = self.windows.observe(kind, subject, e.ts, value)
                if alert is not None:
                    alerts.append(alert)
        for alert in alerts:
            self.emit(alert)
            self.notifier.send(alert)
        self.save()
        return alerts

    def save(self) -> None:
        if self.state_path is None:
            return
        s = self.follower.state
        data = {
            "version": STATE_VERSION,
            "path": s.path,
            "inode": s.inode,
            "offset": s.offset,
            "check": s.check,
            **self.windows.dump(),
        }
        atomic_write(self.state_path, json.dumps(data))

    def blocklist(self) -> list[str]:
        return self.windows.over("brute_force", self.last_ts or time.time())
