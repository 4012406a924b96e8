"""The SMTP client's reply reader against scripted loopback servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from postharden.smtp import (
    Reply,
    SmtpClient,
    SmtpClosed,
    SmtpProtocolError,
    SmtpTimeout,
    parse_ehlo_keywords,
    xtext,
)

Start = Callable[[Callable[[socket.socket], None]], int]


def scripted(*replies: bytes) -> Callable[[socket.socket], None]:
    """Send the greeting, then one scripted reply per received line."""

    def behaviour(conn: socket.socket) -> None:
        conn.sendall(replies[0])
        reader = conn.makefile("rb")
        for reply in replies[1:]:
            if not reader.readline():
                return
            conn.sendall(reply)
        reader.readline()

    return behaviour


def test_multiline_greeting_and_ehlo_keywords(loopback_server: Start) -> None:
    port = loopback_server(
        scripted(
            b"220-mx.example.com ESMTP\r\n220-second line\r\n220 last\r\n",
            b"250-mx.example.com\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250-size 1000\r\n250 8BITMIME\r\n",
        )
    )
    with SmtpClient("127.0.0.1", port, read_timeout=2) as client:
        greeting = client.connect()
        assert greeting == Reply(220, ("mx.example.com ESMTP", "second line", "last"))
        client.ehlo("me.example")
        assert client.esmtp == {
            "PIPELINING": "",
            "AUTH": "PLAIN LOGIN",
            "SIZE": "1000",
            "8BITMIME": "",
        }
        assert client.supports("auth")
        assert [str(line) for line in client.transcript.lines][1:4] == [
            "S: 220-mx.example.com ESMTP",
            "S: 220-second line",
            "S: 220 last",
        ]
        assert "C: EHLO me.example" in client.transcript.as_strings()


def test_reply_split_across_packets_is_reassembled(loopback_server: Start) -> None:
    def slow(conn: socket.socket) -> None:
        for chunk in (b"22", b"0-a\r", b"\n220", b" b\r\n"):
            conn.sendall(chunk)
            time.sleep(0.05)
        time.sleep(1)

    with SmtpClient("127.0.0.1", loopback_server(slow), read_timeout=2) as client:
        assert client.connect() == Reply(220, ("a", "b"))


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"220-a\r\n250 b\r\n", SmtpProtocolError),  # code changes inside a reply
        (b"hello\r\n", SmtpProtocolError),
        (b"220-" + b"x" * 10_000 + b"\r\n", SmtpProtocolError),
        (b"220-a\r\n", SmtpTimeout),
    ],
)
def test_bad_replies_raise_one_line_errors(
    loopback_server: Start, payload: bytes, error: type[Exception]
) -> None:
    def behaviour(conn: socket.socket) -> None:
        conn.sendall(payload)
        time.sleep(3)

    with SmtpClient("127.0.0.1", loopback_server(behaviour), read_timeout=0.5) as client:
        with pytest.raises(error) as raised:
            client.connect()
        assert "\n" not in str(raised.value)
        assert not client.connected


def test_too_many_lines_and_closed_connection(loopback_server: Start) -> None:
    def many(conn: socket.socket) -> None:
        conn.sendall(b"220-x\r\n" * 500)
        time.sleep(2)

    with (
        SmtpClient("127.0.0.1", loopback_server(many), max_lines=50) as client,
        pytest.raises(SmtpProtocolError, match="50 lines"),
    ):
        client.connect()

    def closes(conn: socket.socket) -> None:
        conn.sendall(b"220-x\r\n")

    with (
        SmtpClient("127.0.0.1", loopback_server(closes), read_timeout=2) as client,
        pytest.raises(SmtpClosed),
    ):
        client.connect()


def test_session_deadline_stops_a_byte_per_second_tarpit(loopback_server: Start) -> None:
    def tarpit(conn: socket.socket) -> None:
        for byte in b"220 slow greeting that takes a long time\r\n":
            conn.sendall(bytes([byte]))
            time.sleep(0.5)

    started = time.monotonic()
    with (
        SmtpClient("127.0.0.1", loopback_server(tarpit), read_timeout=2, deadline=1.5) as client,
        pytest.raises(SmtpTimeout, match="deadline"),
    ):
        client.connect()
    assert time.monotonic() - started < 2.5


def test_pipeline_xclient_xtext_and_data_dot_stuffing(loopback_server: Start) -> None:
    received: list[bytes] = []

    def behaviour(conn: socket.socket) -> None:
        conn.sendall(b"220 ok\r\n")
        reader = conn.makefile("rb")
        in_data = False
        while line := reader.readline():
            received.append(line)
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    conn.sendall(b"250 queued\r\n")
                continue
            if line.startswith(b"DATA"):
                in_data = True
                conn.sendall(b"354 go\r\n")
            else:
                conn.sendall(b"250 ok\r\n")

    with SmtpClient("127.0.0.1", loopback_server(behaviour), read_timeout=2) as client:
        client.connect()
        replies = client.pipeline(["MAIL FROM:<>", "RCPT TO:<a@b.example>"])
        assert [r.code for r in replies] == [250, 250]
        client.xclient([("NAME", "a=b+c"), ("ADDR", "192.0.2.1")])
        assert client.data(b"Subject: x\n\n.leading dot\nend\n").code == 250
    assert b"XCLIENT NAME=a+3Db+2Bc ADDR=192.0.2.1\r\n" in received
    assert b"..leading dot\r\n" in received
    assert xtext("ü") == "+C3+BC"


def test_parse_ehlo_keywords_ignores_the_greeting_line() -> None:
    reply = Reply(250, ("mx.example.com hello", "STARTTLS", "XCLIENT NAME ADDR"))
    assert parse_ehlo_keywords(reply) == {"STARTTLS": "", "XCLIENT": "NAME ADDR"}
