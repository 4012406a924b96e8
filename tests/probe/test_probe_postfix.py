"""Live probes against real Postfix instances in the shapes the runbook cares about.

Vantage point: every instance has `mynetworks = 127.0.0.2/32` (unless the shape is "broad
mynetworks") and the probe connects from 127.0.0.1, so the probe is an outside client
although everything runs on loopback. The instances do not authorise XCLIENT
(`authorize_xclient=False`), so the XCLIENT test sees what a stranger would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from postharden.probe import ProbeOptions, ProbeReport, exit_code, mynetworks_of, probe
from postharden.sandbox import MINIMAL_MASTER_CF, Sandbox

pytestmark = [pytest.mark.postfix, pytest.mark.root]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "src/postharden/schemas/probe.schema.json").read_text()
)
DAEMONS = MINIMAL_MASTER_CF.split("\n", 1)[1]
BASE = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.2/32
alias_maps = hash:$config_directory/aliases
alias_database = $alias_maps
local_recipient_maps = unix:passwd.byname $alias_maps
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""
ALIASES = {"aliases": "postmaster: root\n"}
HARDENED = BASE + textwrap.dedent("""\
    smtpd_banner = $myhostname ESMTP
    disable_vrfy_command = yes
    smtpd_forbid_unauth_pipelining = yes
    smtpd_forbid_bare_newline = yes
    smtpd_tls_security_level = may
    smtpd_tls_cert_file = $config_directory/cert.pem
    smtpd_tls_key_file = $config_directory/key.pem
    smtpd_tls_protocols = >=TLSv1.2
    smtpd_tls_auth_only = yes
    """)
Factory = Callable[..., Sandbox]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("cert")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem"),
            "-days", "30", "-subj", "/CN=mx.example.com",
            "-addext", "subjectAltName=DNS:mx.example.com",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return {
        "cert.pem": (directory / "cert.pem").read_text(),
        "key.pem": (directory / "key.pem").read_text(),
    }


def run_probe(sandbox: Sandbox, service: str = "smtp", **options: object) -> ProbeReport:
    report = probe(
        f"127.0.0.1:{sandbox.port(service)}",
        ProbeOptions(timeout=3, session_deadline=10, **options),  # type: ignore[arg-type]
    )
    jsonschema.validate(report.as_dict(), SCHEMA)
    return report


def statuses(report: ProbeReport, prefix: str) -> set[str]:
    return {t.status for t in report.services[0].tests if t.id.startswith(prefix)}


def test_hardened_instance_passes(sandbox_factory: Factory, certificate: dict[str, str]) -> None:
    sandbox = sandbox_factory(HARDENED, maps=ALIASES, files=certificate, authorize_xclient=False)
    report = run_probe(sandbox)
    service = report.services[0]
    assert service.open_relay is False
    assert statuses(report, "relay.") == {"pass"}
    assert service.vrfy_enabled is False
    assert service.test("vrfy").status == "pass"
    assert service.starttls is True and service.test("starttls").status == "pass"
    assert service.auth_before_tls is False
    assert service.test("xclient").status == "pass"
    assert service.test("pipelining.unauth").status == "pass"
    assert service.test("banner.software").status == "pass"
    assert service.banner == "mx.example.com ESMTP"
    assert report.source_address == "127.0.0.1"
    assert exit_code(report) == 0, [
        (t.id, t.detail) for t in report.all_tests() if t.status != "pass"
    ]


def test_open_relay_through_an_early_permit(sandbox_factory: Factory) -> None:
    main = BASE.replace(
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
        "smtpd_relay_restrictions = check_client_access cidr:$config_directory/clients, "
        "reject_unauth_destination",
    )
    sandbox = sandbox_factory(
        main, maps={**ALIASES, "clients": "0.0.0.0/0 OK\n"}, authorize_xclient=False
    )
    report = run_probe(sandbox)
    service = report.services[0]
    assert service.open_relay is True
    failed = {t.id for t in service.tests if t.status == "fail"}
    assert {"relay.null-sender", "relay.local-sender", "relay.upper-case"} <= failed
    evidence = service.test("relay.null-sender").transcript
    assert "C: MAIL FROM:<>" in evidence
    assert any(line.startswith("S: 250") and "2.1.5" in line for line in evidence)
    assert exit_code(report) == 1


def test_open_relay_through_broad_mynetworks_is_flagged_with_the_vantage_warning(
    sandbox_factory: Factory,
) -> None:
    main = BASE.replace("mynetworks = 127.0.0.2/32", "mynetworks = 127.0.0.0/8")
    sandbox = sandbox_factory(main, maps=ALIASES, authorize_xclient=False)
    networks = mynetworks_of(sandbox.config_directory)
    report = run_probe(sandbox, mynetworks=networks)
    assert report.services[0].open_relay is True
    assert any("inside the server's mynetworks (127.0.0.0/8)" in w for w in report.warnings)
    # The same server probed with the knowledge that 127.0.0.1 is outside: no warning.
    outside = run_probe(sandbox, mynetworks=("127.0.0.2/32",))
    assert not any("inside" in w for w in outside.warnings)


def test_open_relay_only_on_submission_through_an_o_override(sandbox_factory: Factory) -> None:
    master = (
        textwrap.dedent("""\
        smtp       inet  n       -       y       -       -       smtpd
        submission inet  n       -       y       -       -       smtpd
          -o syslog_name=postfix/submission
          -o smtpd_relay_restrictions=check_client_access,cidr:$config_directory/clients,reject_unauth_destination
        """)
        + DAEMONS
    )
    sandbox = sandbox_factory(
        BASE, master, maps={**ALIASES, "clients": "0.0.0.0/0 OK\n"}, authorize_xclient=False
    )
    assert run_probe(sandbox, "smtp").services[0].open_relay is False
    assert run_probe(sandbox, "submission").services[0].open_relay is True


def test_vrfy_on_leaks_the_difference(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory(BASE, maps=ALIASES, authorize_xclient=False)
    report = run_probe(sandbox)
    service = report.services[0]
    vrfy = service.test("vrfy")
    assert vrfy.status == "fail", vrfy.detail
    assert "-> 252" in vrfy.detail and "-> 550" in vrfy.detail
    assert service.vrfy_enabled is True
    assert any(line.startswith("C: VRFY postmaster") for line in vrfy.transcript)


def test_auth_offered_before_tls_and_cleartext_plain_checked(sandbox_factory: Factory) -> None:
    # Cyrus SASL with its sasldb backend (no users): AUTH is offered without TLS and a
    # password sent in cleartext is checked (535), which is the leak.
    sandbox = sandbox_factory(
        BASE + "smtpd_sasl_auth_enable = yes\n", maps=ALIASES, authorize_xclient=False
    )
    service = run_probe(sandbox).services[0]
    assert service.auth_before_tls is True
    assert service.test("auth.before_tls").status == "fail"
    cleartext = service.test("auth.cleartext_plain")
    assert cleartext.status == "fail" and "535" in cleartext.detail


def test_starttls_with_tls10_and_self_signed_certificate(
    sandbox_factory: Factory, certificate: dict[str, str]
) -> None:
    main = BASE + textwrap.dedent("""\
        smtpd_tls_security_level = may
        smtpd_tls_cert_file = $config_directory/cert.pem
        smtpd_tls_key_file = $config_directory/key.pem
        smtpd_tls_protocols = >=TLSv1
        tls_medium_cipherlist = DEFAULT:@SECLEVEL=0
        """)
    sandbox = sandbox_factory(main, maps=ALIASES, files=certificate, authorize_xclient=False)
    service = run_probe(sandbox, tls=True).services[0]
    assert service.test("starttls").status == "pass"
    assert service.tls is not None
    assert service.tls["protocols"]["TLSv1.0"] is True
    assert service.tls["protocols"]["SSLv3"] is False
    assert service.test("tls.protocols").status == "fail"
    certificate_test = service.test("tls.certificate")
    assert certificate_test.status == "fail" and "self-signed" in certificate_test.detail
    assert service.tls["certificate"]["name_matches"] is True
    assert service.tls["certificate"]["key_size"] == 2048


def test_send_confirms_relay_and_smuggling(sandbox_factory: Factory) -> None:
    main = BASE.replace(
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
        "smtpd_relay_restrictions = check_client_access cidr:$config_directory/clients, "
        "reject_unauth_destination\ndefault_transport = discard",
    )
    sandbox = sandbox_factory(
        main, maps={**ALIASES, "clients": "0.0.0.0/0 OK\n"}, authorize_xclient=False
    )
    service = run_probe(sandbox, send=True).services[0]
    assert "relaying confirmed" in service.test("relay.null-sender").detail
    assert service.test("smtp.smuggling").status == "fail"


def test_cli_json_and_nagios(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory(BASE, maps=ALIASES, authorize_xclient=False)
    target = f"127.0.0.1:{sandbox.port()}"
    result = subprocess.run(
        [sys.executable, "-m", "postharden", "probe", target, "--format", "json", "--timeout", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # VRFY leaks, banner names Postfix
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["services"][0]["open_relay"] is False
    nagios = subprocess.run(
        [sys.executable, "-m", "postharden", "probe", target, "--nagios", "--timeout", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    head = nagios.stdout.splitlines()[0]
    assert nagios.returncode == 1 and head.startswith("SMTP WARNING - "), nagios.stdout
    assert "| pass=" in head and "fail=" in head and "time=" in head
