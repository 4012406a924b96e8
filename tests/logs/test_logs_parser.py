"""The pure line -> event parser, on real lines from public test suites and on lines
written from the Postfix documentation for 2.x .. 3.10."""

from __future__ import annotations

import calendar
import json
from pathlib import Path

import pytest

from postharden.logs.events import Kind
from postharden.logs.parser import classify_reason, parse_line, parse_message

# CI and every session have the shared folder beside the repository (../shared).
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "postfix-logs"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"the shared log corpus is not present at {DATA}"
)


@pytest.mark.parametrize(
    ("line", "ts"),
    [
        (
            "Nov  2 03:04:05 mx postfix/smtpd[1]: connect from a[192.0.2.1]",
            (2024, 11, 2, 3, 4, 5, 0),
        ),
        (
            "Nov 02 03:04:05 mx postfix/smtpd[1]: connect from a[192.0.2.1]",
            (2024, 11, 2, 3, 4, 5, 0),
        ),
        (
            "2024-11-02T03:04:05+01:00 mx postfix/smtpd[1]: connect from a[192.0.2.1]",
            (2024, 11, 2, 2, 4, 5, 0),
        ),
        (
            "2024-11-02T03:04:05.123456+0100 mx postfix/smtpd[1]: connect from a[192.0.2.1]",
            (2024, 11, 2, 2, 4, 5, 0.123456),
        ),
        (
            "2024-11-02T03:04:05Z mx postfix/smtpd[1]: connect from a[192.0.2.1]",
            (2024, 11, 2, 3, 4, 5, 0),
        ),
        (
            "2024-11-02T03:04:05.5-05:00 mx postfix/smtpd[1]: connect from a[192.0.2.1]",
            (2024, 11, 2, 8, 4, 5, 0.5),
        ),
    ],
)
def test_timestamp_formats(line: str, ts: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    e = parse_line(line, year=2024)
    assert e.kind is Kind.CONNECT and e.client_ip == "192.0.2.1"
    expected = calendar.timegm((*ts[:6], 0, 0, 0)) + ts[6]
    assert e.ts == pytest.approx(expected)


def test_multi_instance_and_submission_names() -> None:
    for prog in ("postfix-out/smtpd", "postfix/submission/smtpd", "postfix/policytest/smtpd"):
        e = parse_line(
            f"Nov 02 03:04:05 mx {prog}[7]: warning: x[192.0.2.9]: SASL LOGIN "
            "authentication failed: UGFzc3dvcmQ6",
            year=2024,
        )
        assert e.kind is Kind.SASL_FAILURE, prog
        assert e.service == "smtpd" and e.client_ip == "192.0.2.9" and e.user is None


def test_other_programs_are_not_postfix() -> None:
    assert (
        parse_line("Nov 02 03:04:05 mx sshd[7]: Accepted publickey for root").kind
        is Kind.OTHER_PROGRAM
    )
    assert parse_line("garbage \x01\x02").kind is Kind.OTHER_PROGRAM


@pytest.mark.parametrize(
    ("message", "kind", "fields"),
    [
        # Postfix 3.0+: per-command counts on disconnect; auth=0/1 is a guessing bot.
        (
            "disconnect from unknown[192.0.2.1] ehlo=1 auth=0/1 quit=1 commands=2/3",
            Kind.DISCONNECT,
            {"counts": (("ehlo", 1, 1), ("auth", 0, 1), ("quit", 1, 1), ("commands", 2, 3))},
        ),
        # Postfix 2.x: no counts.
        ("disconnect from unknown[192.0.2.1]", Kind.DISCONNECT, {"counts": ()}),
        # Postfix 3.9+ appends sasl_username= to SASL failures.
        (
            "warning: unknown[192.0.2.1]: SASL PLAIN authentication failed: (reason unavailable), "
            "sasl_username=alice",
            Kind.SASL_FAILURE,
            {"user": "alice", "mechanism": "PLAIN"},
        ),
        (
            "warning: unknown[2001:db8::1]: SASL SCRAM-SHA-256 authentication failed: bad proof",
            Kind.SASL_FAILURE,
            {"client_ip": "2001:db8::1", "mechanism": "SCRAM-SHA-256"},
        ),
        ("warning: unknown[192.0.2.1]: SASL LOGIN authentication aborted", Kind.SASL_ABORTED, {}),
        # Postfix 3.10 prefixes NOQUEUE: to lost-connection lines.
        (
            "NOQUEUE: lost connection after AUTH from unknown[192.0.2.1]",
            Kind.LOST_CONNECTION,
            {"stage": "AUTH", "client_ip": "192.0.2.1"},
        ),
        (
            "lost connection after AUTH from unknown[192.0.2.1]",
            Kind.LOST_CONNECTION,
            {"stage": "AUTH"},
        ),
        ("timeout after DATA (0 bytes) from unknown[192.0.2.1]", Kind.TIMEOUT, {"stage": "DATA"}),
        (
            "too many errors after RCPT from unknown[192.0.2.1]",
            Kind.TOO_MANY_ERRORS,
            {"stage": "RCPT"},
        ),
        (
            "ABC123DEF: client=x[192.0.2.1], sasl_method=PLAIN, sasl_username=bob",
            Kind.SASL_LOGIN,
            {"user": "bob", "queue_id": "ABC123DEF", "mechanism": "PLAIN"},
        ),
        (
            "NOQUEUE: reject: RCPT from x[192.0.2.1]: 553 5.7.1 <a@b>: Sender address rejected: not "
            "owned by user bob; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
            Kind.REJECT,
            {"code": 553, "reason": "sender_login_mismatch", "sender": "a@b", "recipient": "c@d"},
        ),
        (
            "NOQUEUE: reject: RCPT from x[192.0.2.1]: 450 4.2.0 <c@d>: Recipient address rejected: "
            "Greylisted, see http://postgrey.schweikert.ch/help/d.html; from=<a@b> to=<c@d> "
            "proto=ESMTP helo=<h>",
            Kind.REJECT,
            {"code": 450, "reason": "greylisting"},
        ),
        (
            "NOQUEUE: reject: RCPT from x[192.0.2.1]: 451 4.3.5 <c@d>: Recipient address rejected: "
            "Server configuration problem; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
            Kind.REJECT,
            {"code": 451, "dsn": "4.3.5", "reason": "policy_service"},
        ),
        (
            "NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 Service unavailable; Client host "
            "[192.0.2.1] blocked using zen.spamhaus.org; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
            Kind.REJECT,
            {"reason": "rbl", "detail": "zen.spamhaus.org"},
        ),
        (
            "NOQUEUE: reject: CONNECT from x[192.0.2.1]: 554 5.7.1 <x[192.0.2.1]>: Client host "
            "rejected: Access denied; proto=SMTP",
            Kind.REJECT,
            {"stage": "CONNECT", "reason": "client_access", "sender": None},
        ),
        (
            "ABC123: reject: END-OF-MESSAGE from x[192.0.2.1]: 552 5.3.4 Message size exceeds fixed "
            "limit; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
            Kind.REJECT,
            {"reason": "size"},
        ),
        (
            "improper command pipelining after EHLO from x[192.0.2.1]: MAIL FROM:<>",
            Kind.PIPELINING,
            {"stage": "EHLO"},
        ),
        (
            "warning: problem talking to server 127.0.0.1:10023: Connection refused",
            Kind.POLICY_FAILURE,
            {"detail": "127.0.0.1:10023"},
        ),
        (
            "warning: problem talking to service private/scache: Connection timed out",
            Kind.WARNING,
            {},
        ),
        (
            "ABC123: to=<a@b.test>, relay=mx.b.test[192.0.2.2]:25, delay=1, delays=0.1/0/0.5/0.4, "
            "dsn=5.1.1, status=bounced (host said: 550 no such user)",
            Kind.DELIVERY,
            {"status": "bounced", "recipient": "a@b.test", "dsn": "5.1.1"},
        ),
        (
            "ABC123: from=<a@b.test>, size=1234, nrcpt=3 (queue active)",
            Kind.QUEUED,
            {"sender": "a@b.test", "size": 1234, "nrcpt": 3},
        ),
        (
            "statistics: max connection rate 41/60s for (smtp:192.0.2.7) at Oct 26 18:13:50",
            Kind.ANVIL,
            {"size": 41, "client_ip": "192.0.2.7"},
        ),
        ("fatal: no SASL authentication mechanisms", Kind.FATAL, {}),
        ("panic: myfree: corrupt or unallocated memory block", Kind.PANIC, {}),
        ("something no Postfix version says", Kind.UNPARSED, {}),
    ],
)
def test_messages(message: str, kind: Kind, fields: dict[str, object]) -> None:
    program = "postfix/anvil" if message.startswith("statistics") else "postfix/smtpd"
    e = parse_message(program, message)
    assert e.kind is kind
    for name, value in fields.items():
        assert getattr(e, name) == value, name


def test_postscreen_verdicts() -> None:
    for msg, verdict in (
        ("PREGREET 11 after 0.1 from [192.0.2.1]:1234: EHLO x", "PREGREET"),
        ("DNSBL rank 3 for [192.0.2.1]:1234", "DNSBL"),
        ("HANGUP after 0.5 from [192.0.2.1]:1234 in tests after SMTP handshake", "HANGUP"),
        ("PASS NEW [192.0.2.1]:1234", "PASS NEW"),
        ("PASS OLD [192.0.2.1]:1234", "PASS OLD"),
        ("COMMAND PIPELINING from [192.0.2.1]:1234 after EHLO: x", "COMMAND PIPELINING"),
    ):
        e = parse_message("postfix/postscreen", msg)
        assert (e.kind, e.detail, e.client_ip) == (Kind.POSTSCREEN, verdict, "192.0.2.1")


def test_reason_classes() -> None:
    assert classify_reason("<a@b>: Relay access denied")[0] == "relay_denied"
    assert (
        classify_reason("Recipient address rejected: User unknown in virtual mailbox table")[0]
        == "unknown_user"
    )
    assert classify_reason("Helo command rejected: need fully-qualified hostname")[0] == "helo"
    assert classify_reason("anything else")[0] == "other"


@needs_data
def test_fail2ban_corpus_sasl_and_blamed_hosts() -> None:
    """fail2ban annotates each line with the host its filter blames: we must agree on the
    SASL failures (where fail2ban's filter matches) and find the same client address."""
    checked = 0
    for name in ("fail2ban_postfix-sasl",):
        expected = None
        for line in (DATA / name).read_text(errors="replace").splitlines():
            if line.startswith("# failJSON:"):
                expected = json.loads(line.split(":", 1)[1])
                continue
            if not line.strip() or line.startswith("#"):
                continue
            e = parse_line(line, year=2024)
            if expected and expected.get("match") and "authentication failed" in line:
                assert e.kind is Kind.SASL_FAILURE, line
                assert e.client_ip == expected["host"], line
                checked += 1
            expected = None
    assert checked >= 8


@needs_data
def test_corpus_lines_are_all_understood() -> None:
    """Every Postfix line of the public corpora parses to a known event, except lines that
    are cut short in the corpus itself."""
    unparsed = []
    files = [*DATA.glob("*.log"), *DATA.glob("fail2ban_postfix*")]
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            e = parse_line(line, year=2024)
            if e.kind is Kind.UNPARSED:
                unparsed.append(line)
    assert all(line.endswith("to=<56597@con") for line in unparsed), unparsed


@needs_data
def test_grok_corpus_messages() -> None:
    programs = {
        "anvil",
        "bounce",
        "cleanup",
        "dnsblog",
        "error",
        "lmtp",
        "local",
        "master",
        "pickup",
        "pipe",
        "postscreen",
        "qmgr",
        "smtp",
        "smtpd",
        "postsuper",
        "scache",
        "tlsproxy",
        "discard",
    }
    kinds: dict[str, Kind] = {}
    for raw in (
        (DATA / "whyscream-postfix-grok-patterns_ALL_test_data.jsonl").read_text().splitlines()
    ):
        case = json.loads(raw)
        program = case["file"][5:].rsplit("_", 1)[0]
        if program not in programs:
            continue
        e = parse_message(f"postfix/{program}", case["data"].rstrip("\n"))
        assert e.kind is not Kind.UNPARSED, case
        kinds[case["file"]] = e.kind
        results = case.get("results", {})
        if "postfix_client_ip" in results and e.client_ip is not None:
            assert e.client_ip == results["postfix_client_ip"], case
        if "postfix_status" in results:
            assert e.status == results["postfix_status"], case
    assert kinds["test_smtpd_0029.yaml"] is Kind.SASL_FAILURE
    assert kinds["test_smtpd_0036.yaml"] is Kind.REJECT  # bare <LF>: smuggling
