"""Drive a real Postfix (and Dovecot SASL) through known scenarios; the report must count
exactly what was driven."""

from __future__ import annotations

import base64
import json
import shutil
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import logs_realpostfix as realpostfix
import pytest

pytestmark = [pytest.mark.postfix, pytest.mark.root]

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "src/postharden/schemas/logs.schema.json").read_text()
)

BRUTE = {"203.0.113.10": 12, "203.0.113.11": 11, "203.0.113.12": 10}
RELAY = {"198.51.100.20": 6, "198.51.100.21": 2}
UNKNOWN_USERS = 4
CLIENT_ACCESS = 3
SENDER_ACCESS = 2
POLICY = 2
CAROL_NETWORKS = ["10.1.0.5", "10.2.0.5", "10.3.0.5", "10.4.0.5", "10.5.0.5"]
TLS_SESSIONS = 2


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _drive(inst: realpostfix.Instance) -> None:
    for addr, n in BRUTE.items():
        s = inst.session(addr, "bot.example")
        for i in range(n):
            code, _ = s.docmd("AUTH", "PLAIN " + _plain("alice" if i % 2 else "admin", f"guess{i}"))
            assert code == 535, code
        s.quit()
    for addr, n in RELAY.items():
        s = inst.session(addr, "relay.example")
        s.docmd("MAIL", "FROM:<x@spam.test>")
        for i in range(n):
            code, _ = s.docmd("RCPT", f"TO:<victim{i}@elsewhere.test>")
            assert code == 554, code
        s.quit()
    s = inst.session("198.51.100.30", "harvest.example")
    s.docmd("MAIL", "FROM:<x@spam.test>")
    for i in range(UNKNOWN_USERS):
        code, _ = s.docmd("RCPT", f"TO:<nosuch{i}@example.test>")
        assert code == 550, code
    s.quit()
    s = inst.session("198.51.100.66", "blocked.example")
    s.docmd("MAIL", "FROM:<x@spam.test>")
    for _ in range(CLIENT_ACCESS):
        code, _ = s.docmd("RCPT", "TO:<alice@example.test>")
        assert code == 554, code
    s.quit()
    for _ in range(SENDER_ACCESS):
        s = inst.session("198.51.100.31", "sender.example")
        s.docmd("MAIL", "FROM:<spammer@bad.test>")
        code, _ = s.docmd("RCPT", "TO:<alice@example.test>")
        assert code == 554, code
        s.quit()
    s = inst.session("198.51.100.40", "pol.example", port=inst.policy_port)
    s.docmd("MAIL", "FROM:<a@b.test>")
    for _ in range(POLICY):
        code, _ = s.docmd("RCPT", "TO:<alice@example.test>")
        assert code == 451, code
    s.quit()
    if inst.dovecot:
        # A compromised account: carol logs in from five networks and sends out.
        # (The bounce and defer tests use the null sender: no notification loops back.)
        for addr in CAROL_NETWORKS:
            s = inst.session(addr, "carol.example")
            code, _ = s.docmd("AUTH", "PLAIN " + _plain("carol", "carol-pw"))
            assert code == 235, code
            s.sendmail("carol@example.test", ["friend@remote.test"], "Subject: x\n\nbuy\n")
            s.quit()
        s = inst.session("192.0.2.50", "alice.example")
        assert s.docmd("AUTH", "PLAIN " + _plain("alice", "alice-pw"))[0] == 235
        s.sendmail("", ["a@bounce.test"], "Subject: b\n\nb\n")
        s.sendmail("", ["a@defer.test"], "Subject: d\n\nd\n")
        s.quit()
    for i in range(TLS_SESSIONS):
        s = inst.session(f"198.51.100.{50 + i}", "tls.example")
        s.starttls()
        s.ehlo("tls.example")
        s.quit()


@pytest.fixture(scope="module")
def maillog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    why = realpostfix.missing()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("maillog") / "maillog"
    with realpostfix.running_instance() as inst:
        _drive(inst)
        inst.wait_for_log("Anonymous TLS connection established", TLS_SESSIONS)
        inst.wait_for_log("disconnect from tls.example", TLS_SESSIONS)
        if inst.dovecot:
            inst.wait_for_log("status=sent", len(CAROL_NETWORKS))
            inst.wait_for_log("status=bounced", 1)
            inst.wait_for_log("status=deferred", 1)
        dovecot = inst.dovecot
        shutil.copy(inst.maillog, out)
    yield out, dovecot


def _report(path: Path, *extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "postharden", "logs", "--format", "json", *extra, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    return report


def test_report_counts_what_was_driven(maillog: tuple[Path, bool]) -> None:
    path, dovecot = maillog
    r = _report(path)
    assert r["lines"]["unparsed"] == 0, r["lines"]["unparsed_samples"]
    if dovecot:
        sf = r["sasl_failures"]
        assert sf["total"] == sum(BRUTE.values())
        assert {row["client"]: row["count"] for row in sf["by_client"]} == BRUTE
        # Postfix >= 3.9 (and Debian's 3.7.11 backport) logs sasl_username= on failures.
        users = {row["user"]: row["count"] for row in sf["by_user"]}
        assert sum(users.values()) == sum(BRUTE.values())
        assert {row["mechanism"] for row in sf["by_mechanism"]} == {"PLAIN"}
        brute = {a["subject"]: a["count"] for a in r["alerts"] if a["kind"] == "brute_force"}
        assert brute == BRUTE  # all three are at or above the default threshold of 10
    assert r["relay_denied"]["total"] == sum(RELAY.values())
    assert {row["client"]: row["count"] for row in r["relay_denied"]["by_client"]} == RELAY
    reasons = r["rejects"]["by_reason"]
    assert reasons == {
        "relay_denied": sum(RELAY.values()),
        "unknown_user": UNKNOWN_USERS,
        "client_access": CLIENT_ACCESS,
        "sender_access": SENDER_ACCESS,
        "policy_service": POLICY,
    }
    assert r["rejects"]["total"] == sum(reasons.values())
    assert r["policy_failures"]["total"] >= POLICY + 1  # problem-talking warnings + 4.3.5s
    assert any(a["kind"] == "policy_outage" for a in r["alerts"])
    assert r["tls_errors"]["established"] == {"inbound:TLSv1.3": TLS_SESSIONS}
    if dovecot:
        assert r["deliveries"]["sent"] == len(CAROL_NETWORKS)
        assert r["deliveries"]["bounced"] == 1
        assert r["deliveries"]["deferred"] >= 1
        assert r["deliveries"]["bounced_by_domain"] == [{"domain": "bounce.test", "count": 1}]
        logins = {row["user"]: row for row in r["sasl_logins"]["by_user"]}
        assert logins["carol"]["count"] == len(CAROL_NETWORKS)
        assert sorted(logins["carol"]["clients"]) == sorted(CAROL_NETWORKS)
        assert len(logins["carol"]["networks"]) == len(CAROL_NETWORKS)
        assert "many_networks" in logins["carol"]["flags"]
        # Postfix logs sasl_username= on the client= line of each message, so the count
        # is authenticated messages: alice sent two in one session.
        assert logins["alice"]["count"] == 2 and logins["alice"]["clients"] == ["192.0.2.50"]
        assert logins["alice"]["flags"] == []
        compromised = [a["subject"] for a in r["alerts"] if a["kind"] == "compromised_account"]
        assert compromised == ["carol"]
        senders = {row["sender"]: row["messages"] for row in r["outbound"]["by_sender"]}
        assert senders["carol@example.test"] == len(CAROL_NETWORKS)


def test_fast_path_equals_exact_path(maillog: tuple[Path, bool]) -> None:
    from postharden.logs.analyze import build_report
    from postharden.logs.scan import analyze_paths
    from postharden.logs.thresholds import Thresholds

    path, _ = maillog
    fast, _s = analyze_paths([str(path)], block=2048, jobs=1)
    exact, _s = analyze_paths([str(path)], block=2048, jobs=1, exact=True)
    assert build_report(fast, Thresholds()) == build_report(exact, Thresholds())


def test_unparsed_lines_are_listed(maillog: tuple[Path, bool], tmp_path: Path) -> None:
    path, _ = maillog
    log = tmp_path / "maillog"
    text = path.read_text()
    odd = "Nov 22 03:42:05 mx postfix/smtpd[1]: something Postfix 3.11 might say\n"
    log.write_text(text + odd)
    r = _report(log)
    assert r["lines"]["unparsed"] == 1
    proc = subprocess.run(
        [sys.executable, "-m", "postharden", "logs", "--unparsed", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert proc.stdout == odd


def test_smtplib_is_real() -> None:
    # Guard against a fixture that silently stops talking SMTP: smtplib must be the stdlib.
    assert smtplib.SMTP.__module__ == "smtplib"
