"""A production config with Dovecot SASL runs in the sandbox: smtpd does not die for want of
Dovecot's socket, and SASL clients are asked through XCLIENT LOGIN."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from postharden.sandbox import MINIMAL_MASTER_CF, Case, Sandbox

pytestmark = [pytest.mark.postfix, pytest.mark.root]

MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8
local_recipient_maps =
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
"""
SUBMISSION = "submission inet n - n - - smtpd\n  -o smtpd_sasl_auth_enable=yes\n"


def test_dovecot_sasl_service_runs_and_sasl_users_relay(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sandbox = sandbox_factory(MAIN, MINIMAL_MASTER_CF + SUBMISSION)
    assert [stub.path.name for stub in sandbox.sasl_stubs] == ["auth"]
    user = sandbox.query(
        service="submission", client_addr="203.0.113.9", sasl_login="alice",
        recipient="someone@example.org",
    )  # fmt: skip
    assert (user.command, user.code) == ("rcpt", 250), user.text
    stranger = sandbox.query(
        service="submission", client_addr="203.0.113.9", recipient="someone@example.org"
    )
    assert (stranger.command, stranger.code) == ("rcpt", 554), stranger.text
    # Port 25 has SASL off: no stand-in needed there, and it still runs.
    plain = sandbox.query(
        service="smtp", client_addr="203.0.113.9", recipient="someone@example.org"
    )
    assert (plain.command, plain.code) == ("rcpt", 554), plain.text


def test_wrappermode_service_is_asked_over_its_implicit_tls(
    sandbox_factory: Callable[..., Sandbox], tmp_path: Path
) -> None:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem"),
            "-days", "30", "-subj", "/CN=mx.example.com",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    main = MAIN + (
        "smtpd_tls_cert_file = $config_directory/cert.pem\n"
        "smtpd_tls_key_file = $config_directory/key.pem\n"
    )
    smtps = (
        "smtps inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n"
        "  -o smtpd_sasl_auth_enable=yes\n  -o smtpd_tls_auth_only=yes\n"
    )
    sandbox = sandbox_factory(
        main,
        MINIMAL_MASTER_CF + smtps,
        files={
            "cert.pem": (tmp_path / "cert.pem").read_text(),
            "key.pem": (tmp_path / "key.pem").read_text(),
        },
    )
    user = sandbox.run(
        [Case("smtps", "203.0.113.9", "client.example.net", "client.example.net", "alice",
              "alice@example.org", "someone@example.org", tls=True)]
    )[0]  # fmt: skip
    assert (user.command, user.code) == ("rcpt", 250), user.text
