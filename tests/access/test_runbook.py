"""The runbook's relay examples, decided by `relay` and confirmed by the real Postfix.

Every matrix cell of every analysed service is also asked of the real smtpd: the relay
verdict stands on answers Postfix itself gives.
"""

from __future__ import annotations

import pytest

from postharden.access import RelayReport, analyze_relay
from postharden.sandbox import Sandbox, postfix_available

from .corpus import Query
from .realpostfix import case_for, sandboxed

pytestmark = [
    pytest.mark.postfix,
    pytest.mark.root,
    pytest.mark.skipif(bool(postfix_available()), reason=str(postfix_available())),
]

BASE = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, example.com
relay_domains = relay.example
alias_maps =
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
"""


def _confirm(sandbox: Sandbox, keys: dict[str, str], report: RelayReport) -> None:
    """Each matrix cell's command and code agree with the real Postfix."""
    by_key = {key: name for name, key in keys.items()}
    queries = []
    expected = []
    for service in report.services:
        if service.verdict == "unavailable":
            continue
        for cell in service.matrix:
            queries.append(Query(by_key[service.service], cell.context))
            expected.append(cell)
    outcomes = sandbox.run([case_for(q) for q in queries], workers=2)
    for query, cell, outcome in zip(queries, expected, outcomes, strict=True):
        assert (outcome.command, outcome.code) == (cell.decision.command, cell.decision.code), (
            query,
            cell.decision.text,
            outcome,
        )


def test_literal_permit_before_reject_is_an_outage() -> None:
    main = (
        BASE + "smtpd_relay_restrictions = permit_mynetworks, permit, reject_unauth_destination\n"
    )
    with sandboxed(main) as (sandbox, engine, _keys):
        report = analyze_relay(engine.config, engine)
        smtp = report.services[0]
        assert smtp.verdict == "unavailable"
        line = (
            main.splitlines().index(
                "smtpd_relay_restrictions = permit_mynetworks, permit, reject_unauth_destination"
            )
            + 1
        )
        assert f"main.cf:{line}" in smtp.summary
        assert "restriction `reject_unauth_destination' after `permit' is ignored" in smtp.summary
        assert any(r.id == "permit-shadows-reject" for r in smtp.risks)
        outcome = sandbox.query(recipient="x@foreign.example")
        assert not outcome.available
        assert "specify at least one working instance" in outcome.text
        assert "after `permit' is ignored" in sandbox.maillog()


def test_access_map_ok_ahead_of_reject_is_open() -> None:
    main = BASE + (
        "smtpd_relay_restrictions = permit_mynetworks, "
        "check_client_access cidr:$config_directory/trusted.cidr, reject_unauth_destination\n"
    )
    maps = {"trusted.cidr": "# partners\n198.51.100.0/24 OK\n"}
    with sandboxed(main, maps=maps) as (sandbox, engine, keys):
        report = analyze_relay(engine.config, engine)
        smtp = report.services[0]
        assert smtp.verdict == "open", smtp.summary
        assert smtp.path is not None
        assert smtp.path.example.address.startswith("198.51.100.")
        assert "check_client_access" in smtp.path.rule
        assert "trusted.cidr:2" in smtp.path.rule
        assert smtp.path.origin == "main.cf:9"
        assert any(r.id == "access-ok-before-reject" for r in smtp.risks)
        example = smtp.path.example
        outcome = sandbox.query(
            client_addr=example.address,
            client_name="[UNAVAILABLE]",
            helo="mail.example.net",
            sender=example.sender,
            recipient=example.recipient,
        )
        assert (outcome.command, outcome.code) == ("rcpt", 250)
        _confirm(sandbox, keys, report)


def test_mynetworks_everything_is_open() -> None:
    main = BASE + (
        "mynetworks = 127.0.0.0/8, 0.0.0.0/0\n"
        "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
    )
    with sandboxed(main) as (sandbox, engine, keys):
        report = analyze_relay(engine.config, engine)
        smtp = report.services[0]
        assert smtp.verdict == "open", smtp.summary
        assert smtp.path is not None and smtp.path.client.startswith("outside")
        assert "permit_mynetworks" in smtp.path.rule
        assert any(r.id == "mynetworks-everything" for r in smtp.risks)
        _confirm(sandbox, keys, report)


def test_runbook_final_list_is_closed() -> None:
    main = BASE + (
        "mynetworks = 127.0.0.0/8 [::1]/128 192.168.1.0/24\n"
        "smtpd_helo_required = yes\n"
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,"
        " reject_unauth_destination\n"
        "smtpd_recipient_restrictions = permit_mynetworks, permit_sasl_authenticated,"
        " reject_unauth_destination, reject_non_fqdn_recipient, reject_unlisted_recipient\n"
    )
    master = (
        "smtp inet n - n - - smtpd\n"
        "submission inet n - n - - smtpd\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
        "rewrite unix - - n - - trivial-rewrite\n"
        "proxymap unix - - n - - proxymap\n"
        "cleanup unix n - n - 0 cleanup\n"
        "anvil unix - - n - 1 anvil\n"
    )
    with sandboxed(main, master) as (sandbox, engine, keys):
        report = analyze_relay(engine.config, engine)
        verdicts = {s.service: s.verdict for s in report.services}
        assert set(verdicts.values()) == {"closed"}, verdicts
        assert not [r for s in report.services for r in s.risks], report.services[0].risks
        sasl = [c for s in report.services for c in s.matrix if c.client == "sasl"]
        assert any(c.relays for c in sasl)  # authenticated submission relays by design
        _confirm(sandbox, keys, report)
