"""Engine facts on small configurations (no Postfix needed; the differential tests prove
the same facts against the real binary on random configurations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from postharden.access import AccessError, ClientContext, Engine, analyze_relay
from postharden.access.tables import Table
from postharden.config import load_config

BASE = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, example.com
alias_maps =
mynetworks = 127.0.0.0/8, 10.0.0.0/8
"""


def engine_for(tmp_path: Path, extra: str, master: str | None = None, **files: str) -> Engine:
    (tmp_path / "main.cf").write_text(BASE + extra)
    (tmp_path / "master.cf").write_text(master or "smtp inet n - n - - smtpd\n")
    for name, text in files.items():
        (tmp_path / name.replace("_", ".")).write_text(text)
    return Engine(load_config(tmp_path, defaults="bundled"))


def ctx(
    address: str = "203.0.113.9", recipient: str = "x@foreign.example", **kw: str | None
) -> ClientContext:
    values: dict[str, str | None] = {"helo": "mail.example.net", "sender": "a@example.org"}
    values.update(kw)
    return ClientContext(
        address,
        values.get("name"),
        values["helo"],
        values.get("sasl"),
        values["sender"] or "",
        recipient,
    )


def test_first_match_and_relay_default(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "")
    outside = engine.decide("smtp", ctx())
    assert (outside.command, outside.code, outside.decision) == ("rcpt", 454, "defer")
    assert "Relay access denied" in outside.text  # default ends in defer_unauth_destination
    inside = engine.decide("smtp", ctx("10.1.2.3"))
    assert inside.code == 250
    assert inside.trace[0].restriction == "permit_mynetworks"
    assert inside.trace[0].origin == "default"


def test_permit_before_reject_is_unavailable_with_line(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "smtpd_relay_restrictions = permit, reject_unauth_destination\n")
    decision = engine.decide("smtp", ctx())
    assert decision.decision == "unavailable" and decision.code == 0
    assert "main.cf:7" in decision.trace[0].origin
    assert "after `permit' is ignored" in decision.text


def test_warn_if_reject_and_defer_if_permit(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        "smtpd_client_restrictions = warn_if_reject, reject, defer_if_permit\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n",
    )
    decision = engine.decide("smtp", ctx("10.1.2.3"))
    assert [s.result for s in decision.trace][:3] == ["dunno", "warn", "defer_if_permit"]
    assert (decision.code, decision.decision) == (450, "defer")


def test_delay_reject_no_rejects_at_connect_and_helo(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        "smtpd_delay_reject = no\nsmtpd_client_restrictions = check_client_access "
        "cidr:$config_directory/c.cidr\nsmtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n",
        c_cidr="192.0.2.0/24 REJECT no\n",
    )
    assert engine.decide("smtp", ctx("192.0.2.1")).command == "connect"
    helo = engine.decide("smtp", ctx(helo="nodots"))
    assert (helo.command, helo.code) == ("helo", 504)


def test_access_tables_of_each_type(tmp_path: Path) -> None:
    (tmp_path / "a.regexp").write_text(
        "/^spam(\\d+)@/ REJECT number $1\nif /example/\n/x/ OK\nendif\n"
    )
    regexp = Table(f"regexp:{tmp_path}/a.regexp", tmp_path)
    hit = regexp.get("SPAM42@x.org")
    assert hit is not None and hit.value == "REJECT number 42"
    assert regexp.get("x@example.org") is not None and regexp.get("x@other.org") is None
    assert regexp.get("spam1@x.org", partial=True) is None  # pattern tables: full key only
    (tmp_path / "a.cidr").write_text("!10.0.0.0/8 DUNNO\n192.0.2.0/24 OK\n")
    cidr = Table(f"cidr:{tmp_path}/a.cidr", tmp_path)
    found = cidr.get("192.0.2.9")
    assert found is not None and found.value == "DUNNO"  # the negation matches first
    inline = Table("inline:{ a.example=OK, { b.example = REJECT go away } }", tmp_path)
    b = inline.get("B.EXAMPLE")
    assert b is not None and b.value == "REJECT go away"
    (tmp_path / "h").write_text("Key   value one\n  continued\n# c\n")
    missing = Table(f"hash:{tmp_path}/h", tmp_path)
    assert missing.error and ".db" in missing.error  # Postfix opens h.db, not h
    (tmp_path / "h.db").write_text("")
    hashed = Table(f"hash:{tmp_path}/h", tmp_path)
    value = hashed.get("key")
    assert value is not None and value.value == "value one continued" and value.where.endswith(":1")


def test_dns_restrictions_report_both_outcomes(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        "smtpd_recipient_restrictions = reject_rbl_client zen.example, "
        "permit_mynetworks, reject_unauth_destination\n",
    )
    decision = engine.decide("smtp", ctx("10.1.2.3"))
    assert decision.decision == "accept"
    assert len(decision.outside) == 1
    other = decision.outside[0].if_yes
    assert (other.decision, other.code) == ("reject", 554)
    assert "zen.example" in decision.outside[0].question


def test_unknown_local_recipient_is_550(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, "local_recipient_maps = inline:{ root=x }\n")
    decision = engine.decide("smtp", ctx(recipient="nobody@example.com"))
    assert (decision.code, decision.decision) == (550, "reject")
    assert "User unknown in local recipient table" in decision.text
    assert engine.decide("smtp", ctx(recipient="root@example.com")).code == 250


def test_submission_override_origin(tmp_path: Path) -> None:
    master = (
        "smtp inet n - n - - smtpd\n"
        "submission inet n - n - - smtpd\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
    )
    engine = engine_for(tmp_path, "", master)
    decision = engine.decide("submission", ctx(sasl="alice"))
    assert decision.code == 250 and decision.trace[0].origin == "master.cf:4"
    with pytest.raises(AccessError):
        engine.decide("nosuch", ctx())


def test_relay_open_path_and_risks(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        "mynetworks = 0.0.0.0/0\nmynetworks_style = subnet\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n",
    )
    report = analyze_relay(engine.config, engine)
    smtp = report.services[0]
    assert smtp.verdict == "open"
    assert smtp.path is not None and "permit_mynetworks" in smtp.path.rule
    assert {r.id for r in smtp.risks} >= {"mynetworks-everything"}
