"""`postharden verify` against the real Postfix: a production-like directory is copied, asked
through XCLIENT, compared with the decision engine and left untouched."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest

from postharden.sandbox import MINIMAL_MASTER_CF, postfix_available
from postharden.sandbox.verify import checksums, done, verify

pytestmark = [pytest.mark.postfix, pytest.mark.root]

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "src/postharden/schemas/verify.schema.json").read_text()
)
DAEMONS = MINIMAL_MASTER_CF.split("\n", 1)[1]
MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.0/8
alias_maps =
local_recipient_maps =
relay_domains = relay.example
disable_vrfy_command = yes
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
"""
MASTER = (
    textwrap.dedent("""\
    smtp       inet  n       -       y       -       -       smtpd
    submission inet  n       -       y       -       -       smtpd
      -o smtpd_sasl_auth_enable=yes
      -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
    smtps      inet  n       -       y       -       -       smtpd
      -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
    """)
    + DAEMONS
)


@pytest.fixture(autouse=True)
def _needs_postfix() -> None:
    reason = postfix_available()
    if reason:
        pytest.skip(reason)


def production(tmp_path: Path, main: str = MAIN, master: str = MASTER) -> Path:
    directory = tmp_path / "etc-postfix"
    directory.mkdir()
    (directory / "main.cf").write_text(main)
    (directory / "master.cf").write_text(master)
    return directory


def test_three_services_agree_with_the_engine_and_production_is_untouched(tmp_path: Path) -> None:
    config = production(tmp_path)
    before = checksums(config)
    report = verify(config)
    assert checksums(config) == before and report.production_untouched
    document = report.as_dict()
    jsonschema.validate(document, SCHEMA)
    assert [s.name for s in report.services] == ["smtp", "submission", "smtps"]
    assert report.predictions is None, report.predictions
    for service in report.services:
        assert service.available and service.open_relay is False
        assert service.disagreements == 0, [r for r in service.results if r.disagrees]
        verbs = {r.actual["command"]: r.actual["code"] for r in service.results}
        assert verbs["vrfy"] == 502 and verbs["expn"] == 500 and "etrn" in verbs
        # Every row, VRFY/EXPN/ETRN included, has the engine's prediction next to the answer.
        assert all(r.predicted is not None for r in service.results)
        predicted = {r.predicted["command"]: r.predicted["code"] for r in service.results}
        assert predicted["vrfy"] == 502 and predicted["expn"] == 500
        assert predicted["etrn"] == verbs["etrn"]
    smtp = report.services[0]
    foreign = [r for r in smtp.results if r.destination == "foreign"]
    assert {(r.client, r.actual["code"]) for r in foreign} == {
        ("outside", 554),
        ("mynetworks", 250),
        ("sasl", 554),  # port 25 has no SASL enabled: permit_sasl_authenticated does nothing
    }
    assert report.postfix_check.clean
    assert report.elapsed < 8


def test_open_relay_and_unavailable_service(tmp_path: Path) -> None:
    # smtps: no list can refuse relaying, so smtpd refuses to run (an outage).
    # relay2: an access map answers OK for every client ahead of reject_unauth_destination.
    # (A literal `permit` first would make smtpd refuse to run as well: Postfix looks for
    # reject_unauth_destination only up to the first permit.)
    master = MASTER.replace(
        "smtps      inet  n       -       y       -       -       smtpd\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n",
        "smtps      inet  n       -       y       -       -       smtpd\n"
        "  -o smtpd_relay_restrictions=permit\n"
        "  -o smtpd_recipient_restrictions=permit\n"
        "relay2     inet  n       -       y       -       -       smtpd\n"
        "  -o smtpd_relay_restrictions=check_client_access,cidr:$config_directory/clients,"
        "reject_unauth_destination\n",
    )
    config = production(tmp_path, master=master)
    (config / "clients").write_text("0.0.0.0/0 OK\n")
    report = verify(config)
    by_name = {s.name: s for s in report.services}
    assert by_name["smtps"].available is False
    assert "restrictions" in (by_name["smtps"].reason or "")
    assert by_name["relay2"].open_relay is True
    assert sum(s.disagreements for s in report.services) == 0
    # Every case the engine chose is one the real Postfix can be asked through XCLIENT
    # (0.0.0.0/0 is represented by a documentation address, not 0.0.0.1, which XCLIENT
    # refuses as "Bad ADDR syntax").
    not_asked = [r for r in by_name["relay2"].results if r.actual["code"] is None]
    assert not_asked == []
    assert by_name["smtp"].open_relay is False
    jsonschema.validate(report.as_dict(), SCHEMA)


def test_done_criteria_and_cli(tmp_path: Path) -> None:
    config = production(tmp_path, main=MAIN.replace("disable_vrfy_command = yes\n", ""))
    report = done(config)
    jsonschema.validate(report.as_dict(), SCHEMA)
    status = {c.id: c.status for c in report.criteria}
    assert status == {
        "relay-restricted": "pass",
        "mynetworks-limited": "pass",
        "vrfy-disabled": "fail",
        "postfix-check": "pass",
        "external-relay-refused": "pass",
    }
    result = subprocess.run(
        [sys.executable, "-m", "postharden", "verify", "--config-dir", str(config), "--done",
         "--workers", "2", "--dns", "isolated"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "FAIL     VRFY disabled" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "postharden", "verify", "--config-dir", str(config),
         "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    # VRFY on: the real 252 for postmaster is predicted, and no row disagrees.
    for service in document["services"]:
        vrfy = [r for r in service["results"] if r["actual"]["command"] == "vrfy"]
        assert vrfy and all(r["actual"]["code"] == 252 for r in vrfy), vrfy
        assert all(r["predicted"] == {**r["predicted"], "command": "vrfy", "code": 252}
                   for r in vrfy)  # fmt: skip
        assert service["disagreements"] == 0


def test_done_with_a_live_host_and_wide_mynetworks(tmp_path: Path) -> None:
    from postharden.sandbox import Sandbox

    config = production(tmp_path, main=MAIN.replace("127.0.0.0/8", "0.0.0.0/0"))
    with Sandbox(MAIN, authorize_xclient=False) as live:
        report = done(config, host=f"127.0.0.1:{live.port()}", timeout=3)
    status = {c.id: c.status for c in report.criteria}
    assert status["mynetworks-limited"] == "fail"
    assert status["relay-restricted"] == "fail"  # everyone is in mynetworks
    # The live instance trusts 127.0.0.0/8 and the probe comes from 127.0.0.1: it relays,
    # and the probe says where it came from.
    external = next(c for c in report.criteria if c.id == "external-relay-refused")
    assert external.status == "fail"
    assert any("127.0.0.1" in line for line in external.evidence)
