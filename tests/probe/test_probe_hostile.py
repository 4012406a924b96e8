"""Hostile loopback servers: every probe ends within its timeout with error/inconclusive and a
reason, never a hang or a traceback."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

import pytest

from postharden.probe import ProbeOptions, exit_code, probe
from postharden.probe.render import NAGIOS_UNKNOWN, nagios_status, render_text

Start = Callable[[Callable[[socket.socket], None]], int]
TIMEOUT = 1.0
DEADLINE = 3.0


def garbage(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    time.sleep(5)


def endless_greeting(conn: socket.socket) -> None:
    while True:
        conn.sendall(b"220-still greeting you\r\n")
        time.sleep(0.01)


def megabyte_line(conn: socket.socket) -> None:
    conn.sendall(b"220 " + b"A" * 1_000_000 + b"\r\n")
    time.sleep(5)


def close_mid_reply(conn: socket.socket) -> None:
    conn.sendall(b"220-mx.example.com first line\r\n220-second")
    conn.shutdown(socket.SHUT_RDWR)


def tarpit(conn: socket.socket) -> None:
    for byte in b"220 mx.example.com ESMTP\r\n":
        conn.sendall(bytes([byte]))
        time.sleep(1)


def silent(conn: socket.socket) -> None:
    time.sleep(10)


def starttls_then_garbage(conn: socket.socket) -> None:
    """A server that offers STARTTLS and then answers the TLS handshake with junk."""
    conn.sendall(b"220 mx.example.com ESMTP\r\n")
    reader = conn.makefile("rb")
    while True:
        line = reader.readline()
        if not line:
            return
        verb = line.split()[0].upper() if line.split() else b""
        if verb == b"EHLO":
            conn.sendall(b"250-mx.example.com\r\n250 STARTTLS\r\n")
        elif verb == b"STARTTLS":
            conn.sendall(b"220 go ahead\r\n")
            conn.recv(4096)
            conn.sendall(b"\x15\x03\x01\x00\x02\x02\x28" + b"junk" * 10)
            return
        elif verb == b"QUIT":
            conn.sendall(b"221 bye\r\n")
            return
        else:
            conn.sendall(b"502 no\r\n")


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (garbage, "protocol"),
        (endless_greeting, "protocol"),
        (megabyte_line, "protocol"),
        (close_mid_reply, "closed"),
        (tarpit, "timeout"),
        (silent, "timeout"),
    ],
)
def test_hostile_greetings_end_in_error_within_the_deadline(
    loopback_server: Start, behaviour: Callable[[socket.socket], None], reason: str
) -> None:
    port = loopback_server(behaviour)
    started = time.monotonic()
    report = probe(f"127.0.0.1:{port}", ProbeOptions(timeout=TIMEOUT, session_deadline=DEADLINE))
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + 1.5, f"{behaviour.__name__} took {elapsed:.1f} s"
    tests = report.services[0].tests
    assert [t.id for t in tests] == ["connect"]
    assert tests[0].status == "error"
    assert tests[0].detail.startswith(reason), tests[0].detail
    assert exit_code(report) == 3
    assert nagios_status(report) == NAGIOS_UNKNOWN
    assert "ERROR" in render_text(report)


def test_tls_handshake_failure_is_an_error_with_a_reason(loopback_server: Start) -> None:
    port = loopback_server(starttls_then_garbage)
    started = time.monotonic()
    report = probe(
        f"127.0.0.1:{port}", ProbeOptions(timeout=TIMEOUT, session_deadline=DEADLINE, tls=True)
    )
    assert time.monotonic() - started < 60
    service = report.services[0]
    assert service.starttls is True
    starttls = service.test("starttls")
    assert starttls.status == "error" and starttls.detail.startswith("tls"), starttls.detail
    scan = service.test("tls.scan")
    assert scan.status == "error" and scan.detail


def test_implicit_tls_port_that_speaks_cleartext(loopback_server: Start) -> None:
    port = loopback_server(lambda conn: (conn.sendall(b"220 plain\r\n"), time.sleep(3)))
    report = probe(
        f"127.0.0.1:{port}",
        ProbeOptions(timeout=TIMEOUT, session_deadline=DEADLINE, implicit_tls_ports=(port,)),
    )
    connect = report.services[0].test("connect")
    assert connect.status == "error" and connect.detail.startswith("tls"), connect.detail


def test_refused_port_is_an_error(loopback_server: Start) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    report = probe(f"127.0.0.1:{port}", ProbeOptions(timeout=TIMEOUT))
    connect = report.services[0].test("connect")
    assert connect.status == "error" and connect.detail.startswith("connect")


def test_unverified_context_is_used_for_reports_not_trust() -> None:
    from postharden.smtp import unverified_context

    assert unverified_context().verify_mode == ssl.CERT_NONE
