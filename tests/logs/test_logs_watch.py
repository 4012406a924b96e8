"""`postharden watch`: rotation, windows, once-per-window alerts across restarts,
command / webhook / sendmail alerts, blocklists."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

SASL = (
    "2024-05-01T10:{m:02d}:{s:02d}Z mx postfix/smtpd[9]: warning: x[{ip}]: SASL LOGIN "
    "authentication failed: UGFzc3dvcmQ6\n"
)


def fails(ip: str, n: int, minute: int = 0) -> str:
    return "".join(SASL.format(m=minute + i // 60, s=i % 60, ip=ip) for i in range(n))


def watch(log: Path, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "postharden",
            "watch",
            "--once",
            "--format",
            "json",
            "--state",
            str(state),
            *extra,
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def alerts(proc: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_alert_once_per_window_across_restart_and_rotation(tmp_path: Path) -> None:
    log, state, out = tmp_path / "mail.log", tmp_path / "state.json", tmp_path / "alerts.jsonl"
    cmd = f"cat >> {out}"
    log.write_text(fails("192.0.2.1", 9))
    first = watch(log, state, "--alert-command", cmd)
    assert first.returncode == 0 and alerts(first) == []  # 9 < 10
    with log.open("a") as fh:
        fh.write(fails("192.0.2.1", 1, minute=5))
    second = watch(log, state, "--alert-command", cmd)  # a restart: the 10th failure
    assert second.returncode == 1
    [a] = alerts(second)
    assert (a["kind"], a["subject"], a["count"]) == ("brute_force", "192.0.2.1", 10)
    assert [json.loads(x)["subject"] for x in out.read_text().splitlines()] == ["192.0.2.1"]
    # Rotation by rename, more failures in the same window: no second alert.
    os.rename(log, tmp_path / "mail.log.1")
    log.write_text(fails("192.0.2.1", 5, minute=10))
    third = watch(log, state, "--alert-command", cmd)
    assert alerts(third) == [] and third.returncode == 0
    # Truncation in place, a new source and the same one after the window (1 h) passed.
    log.write_text(fails("192.0.2.2", 12, minute=20))
    with log.open("a") as fh:
        fh.write(
            "".join(
                SASL.format(m=30 + i, s=0, ip="192.0.2.1").replace("T10:", "T12:")
                for i in range(10)
            )
        )
    fourth = watch(log, state, "--alert-command", cmd)
    assert sorted(a["subject"] for a in alerts(fourth)) == ["192.0.2.1", "192.0.2.2"]
    assert len(out.read_text().splitlines()) == 3


def test_rotation_while_down_reads_rest_of_old_file(tmp_path: Path) -> None:
    log, state = tmp_path / "mail.log", tmp_path / "state.json"
    log.write_text(fails("192.0.2.5", 4))
    assert alerts(watch(log, state)) == []
    with log.open("a") as fh:  # written after our last read, then rotated while we were down
        fh.write(fails("192.0.2.5", 3, minute=1))
    os.rename(log, tmp_path / "mail.log.1")
    log.write_text(fails("192.0.2.5", 3, minute=2))
    [a] = alerts(watch(log, state))
    assert a["count"] == 10  # 4 + 3 (old file's tail) + 3: nothing lost


def test_webhook_and_blocklist(tmp_path: Path) -> None:
    received: list[dict[str, object]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        log, state, block = tmp_path / "mail.log", tmp_path / "s.json", tmp_path / "block.nft"
        log.write_text(fails("192.0.2.7", 11) + fails("192.0.2.8", 2))
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        proc = watch(
            log, state, "--alert-webhook", url, "--blocklist", "nft", "--blocklist-file", str(block)
        )
        assert proc.returncode == 1, proc.stderr
        assert [r["subject"] for r in received] == ["192.0.2.7"]
        assert "add element inet filter postharden_bruteforce { 192.0.2.7 }" in block.read_text()
        plain = watch(log, tmp_path / "s2.json", "--blocklist", "access")
        assert "192.0.2.7 REJECT" in plain.stdout and "192.0.2.8" not in plain.stdout
    finally:
        server.shutdown()


def test_sendmail_alert(tmp_path: Path) -> None:
    # A sendmail stand-in that records its arguments and message: the real Postfix
    # sendmail would need a running instance; what matters is the -t -oi contract.
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/msg\n')
    fake.chmod(0o755)
    log = tmp_path / "mail.log"
    log.write_text(fails("192.0.2.9", 10))
    watch(log, tmp_path / "s.json", "--alert-mail", "root@example.test", "--sendmail", str(fake))
    assert (tmp_path / "args").read_text().split() == ["-t", "-oi"]
    msg = (tmp_path / "msg").read_text()
    assert "To: root@example.test" in msg and "brute_force: 192.0.2.9" in msg


def test_bad_state_file_is_one_line_error(tmp_path: Path) -> None:
    log, state = tmp_path / "mail.log", tmp_path / "state.json"
    log.write_text("")
    state.write_text("{not json")
    proc = watch(log, state)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "state" in proc.stderr
