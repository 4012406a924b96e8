"""The safety proof tells trust the plan removes apart from legitimate mail it would stop."""

from __future__ import annotations

from pathlib import Path

from postharden.config import load_config
from postharden.harden.safety import OUTSIDE, prove

MASTER = """\
smtp      inet  n       -       n       -       -       smtpd
10025     inet  n       -       n       -       -       smtpd
  -o content_filter=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
"""


def write(directory: Path, main_cf: str, master_cf: str = MASTER) -> Path:
    directory.mkdir()
    (directory / "main.cf").write_text(main_cf)
    (directory / "master.cf").write_text(master_cf)
    return directory


BEFORE = """\
compatibility_level = 2
myhostname = mail.example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8, 0.0.0.0/0
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
"""


def test_flows_that_only_worked_through_removed_trust_close_on_purpose(tmp_path: Path) -> None:
    before = load_config(write(tmp_path / "before", BEFORE))
    after = load_config(
        write(tmp_path / "after", BEFORE.replace("127.0.0.0/8, 0.0.0.0/0", "127.0.0.0/8"))
    )
    proof = prove(before, after)
    assert proof.error is None
    assert proof.ok, [f.flow.label for f in proof.broken]
    closed = [f for f in proof.flows if f.intended is not None]
    # The reinjection port accepted strangers only because 0.0.0.0/0 trusted them.
    assert any(f.flow.service == "10025/inet" and f.flow.address == OUTSIDE for f in closed)
    assert all(not f.works_after and f.worked_before for f in closed)
    # Mail from strangers to the local domain on port 25 is legitimate and still flows.
    port25_local = [
        f
        for f in proof.flows
        if f.flow.service == "smtp/inet"
        and f.flow.client == "outside"
        and f.flow.destination == "local"
    ]
    assert port25_local and all(f.works_after and f.intended is None for f in port25_local)


def test_a_legitimate_flow_that_stops_is_still_broken(tmp_path: Path) -> None:
    before = load_config(write(tmp_path / "before", BEFORE.replace(", 0.0.0.0/0", "")))
    # The "after" refuses everybody on port 25 although mynetworks did not change:
    # nothing explains that as removed trust, so the proof must call it broken.
    after = load_config(
        write(
            tmp_path / "after",
            BEFORE.replace(", 0.0.0.0/0", "").replace(
                "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination",
                "smtpd_recipient_restrictions = permit_mynetworks, reject",
            ),
        )
    )
    proof = prove(before, after)
    assert not proof.ok
    assert any(
        f.flow.service == "smtp/inet" and f.flow.client == "outside" and f.intended is None
        for f in proof.broken
    )


SUBMISSION = """\
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
"""
SASL_BEFORE = """\
compatibility_level = 3.6
myhostname = mail.example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_tls_security_level = may
smtpd_tls_cert_file = /etc/ssl/certs/mail.pem
smtpd_tls_key_file = /etc/ssl/private/mail.key
"""


def test_plaintext_sasl_stopped_by_tls_auth_only_is_intended(tmp_path: Path) -> None:
    before = load_config(write(tmp_path / "before", SASL_BEFORE, SUBMISSION))
    after = load_config(
        write(tmp_path / "after", SASL_BEFORE + "smtpd_tls_auth_only = yes\n", SUBMISSION)
    )
    proof = prove(before, after)
    assert proof.error is None
    assert proof.ok, [f.flow.label for f in proof.broken]
    sasl = [
        f
        for f in proof.flows
        if f.flow.client in ("sasl", "sasl+tls") and f.flow.service.startswith("sub")
    ]
    over_tls = [f for f in sasl if f.flow.tls]
    plain = [f for f in sasl if not f.flow.tls]
    # The SASL user still relays over STARTTLS after the plan ...
    assert over_tls and all(f.worked_before and f.works_after for f in over_tls)
    # ... and the plaintext login the profile removes is reported, with the reason.
    assert plain and all(f.worked_before and not f.works_after for f in plain)
    assert all(f.intended and "smtpd_tls_auth_only = yes" in f.intended for f in plain)
    assert {f.as_dict()["client"] for f in over_tls} == {"sasl+tls"}


def test_tls_auth_only_without_a_certificate_is_broken(tmp_path: Path) -> None:
    no_cert = SASL_BEFORE.replace("smtpd_tls_cert_file = /etc/ssl/certs/mail.pem\n", "")
    before = load_config(write(tmp_path / "before", no_cert, SUBMISSION))
    after = load_config(
        write(tmp_path / "after", no_cert + "smtpd_tls_auth_only = yes\n", SUBMISSION)
    )
    proof = prove(before, after)
    # Nobody can start TLS, so nobody can log in any more: that is a broken flow.
    broken = [f for f in proof.broken if f.flow.client == "sasl"]
    assert broken and not proof.ok
    assert all(not f.flow.tls and f.intended is None for f in broken)
