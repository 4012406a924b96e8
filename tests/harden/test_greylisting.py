"""--with-greylisting: the policy service is asked first (real postgrey on loopback)."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from postharden.harden import PolicyServiceError, probe_policy_service
from postharden.sandbox import Case, Sandbox

from .helpers import make_top, needs_postfix_root, run_cli, snapshot, write_config

POSTGREY = shutil.which("postgrey", path="/usr/sbin:/usr/bin:/sbin:/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def postgrey() -> Iterator[str]:
    if POSTGREY is None:
        pytest.skip("postgrey is not installed")
    top = make_top()
    shutil.chown(top, "postgrey", "postgrey")
    port = _free_port()
    process = subprocess.Popen(
        [
            POSTGREY,
            f"--inet=127.0.0.1:{port}",
            f"--dbdir={top}",
            "--delay=300",
            "--whitelist-clients=/dev/null",
            "--whitelist-recipients=/dev/null",
            f"--pidfile={top}/postgrey.pid",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), timeout=1),
            ):
                break
            time.sleep(0.1)
        yield f"inet:127.0.0.1:{port}"
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
        shutil.rmtree(top, ignore_errors=True)


def test_probe_speaks_the_policy_protocol_to_postgrey(postgrey: str) -> None:
    answer = probe_policy_service(postgrey)
    assert answer.action.split()[0] in ("DEFER_IF_PERMIT", "DUNNO", "PREPEND")


def test_dead_or_foreign_services_are_refused() -> None:
    with pytest.raises(PolicyServiceError, match="not reachable"):
        probe_policy_service(f"inet:127.0.0.1:{_free_port()}")
    # something that answers, but not the policy protocol (an SMTP-like greeting)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def greet() -> None:
        connection, _ = server.accept()
        received = b""
        while b"\n\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
        connection.sendall(b"500 not a policy service\r\n\n")
        connection.close()

    thread = threading.Thread(target=greet)
    thread.start()
    try:
        with pytest.raises(
            PolicyServiceError, match="does not speak the policy delegation protocol"
        ):
            probe_policy_service(f"inet:127.0.0.1:{server.getsockname()[1]}", timeout=3)
    finally:
        thread.join(5)
        server.close()
    with pytest.raises(PolicyServiceError, match="not a policy service address"):
        probe_policy_service("unix:private/policy")


def test_plan_refuses_greylisting_when_the_service_is_dead(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n")
    (tmp_path / "master.cf").write_text("smtp inet n - n - - smtpd\n")
    result = run_cli(
        "plan",
        "--config-dir",
        str(tmp_path),
        "--with-greylisting",
        f"inet:127.0.0.1:{_free_port()}",
    )
    assert result.returncode == 2
    assert "451 4.3.5" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.postfix
@pytest.mark.root
@needs_postfix_root()
def test_greylisting_goes_after_reject_unauth_destination_and_postfix_greylists(
    postgrey: str,
) -> None:
    top = make_top()
    try:
        config = write_config(top, "mynetworks = 127.0.0.0/8 10.20.0.0/16\n")
        plan = json.loads(
            run_cli(
                "plan",
                "--config-dir",
                str(config),
                "--with-greylisting",
                postgrey,
                "--format",
                "json",
            ).stdout
        )
        change = next(c for c in plan["changes"] if c["rule"] == "greylisting")
        items = change["new_value"].replace(",", " ").split()
        assert items.index("check_policy_service") == items.index("reject_unauth_destination") + 1
        assert items.index("permit_mynetworks") < items.index("check_policy_service")
        result = run_cli(
            "apply",
            "--config-dir",
            str(config),
            "--with-greylisting",
            postgrey,
            "--yes",
            "--no-reload",
        )
        assert result.returncode == 0, result.stderr
        main = snapshot(config)["main.cf"].decode()
        with Sandbox(main) as sandbox:
            stranger = sandbox.run(
                [
                    Case(
                        "smtp",
                        "203.0.113.7",
                        "client.example.net",
                        "client.example.net",
                        None,
                        "a@example.net",
                        "postmaster@example.test",
                    )
                ]
            )[0]
            relay = sandbox.run(
                [
                    Case(
                        "smtp",
                        "203.0.113.7",
                        "client.example.net",
                        "client.example.net",
                        None,
                        "a@example.net",
                        "user@relay-test.example",
                    )
                ]
            )[0]
            inside = sandbox.run(
                [
                    Case(
                        "smtp",
                        "10.20.0.5",
                        "host.example.test",
                        "host.example.test",
                        None,
                        "u@example.test",
                        "user@relay-test.example",
                    )
                ]
            )[0]
        assert stranger.code == 450 and "Greylisted" in stranger.text, stranger
        assert relay.code == 554, relay  # relay attempts never reach the policy service
        assert inside.accepted, inside  # own users are not greylisted
    finally:
        shutil.rmtree(top, ignore_errors=True)
