"""The DNS-isolated sandbox: Postfix in a private mount namespace, resolving through a stub.

Vantage point: the sessions marked `source_addr` connect from a 127.54.x.y address without
XCLIENT, so smtpd itself looks the client up (PTR, forward confirmation) - through the
stub, because /etc/resolv.conf in master's mount namespace names only the stub.
"""

from __future__ import annotations

import os
import random
import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from postharden.sandbox import MINIMAL_MASTER_CF, Case, Sandbox, SandboxError
from postharden.sandbox.dns import StubDns, Zone, reverse_name
from postharden.sandbox.namespace import mount_namespace, namespace_members, process_start
from postharden.sandbox.outside import outside_contacts

pytestmark = [pytest.mark.postfix, pytest.mark.root]

Factory = Callable[..., Sandbox]

BASE = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.1/32
local_recipient_maps =
unknown_client_reject_code = 550
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""

DNS_RESTRICTIONS = """\
smtpd_client_restrictions = reject_unknown_client_hostname, reject_rbl_client rbl.test
smtpd_helo_required = yes
smtpd_helo_restrictions = reject_unknown_helo_hostname
smtpd_sender_restrictions = reject_unknown_sender_domain
"""


def _peer(rng: random.Random | None = None) -> str:
    """A loopback source address of our own (not 127.0.0.1, which /etc/hosts names)."""
    rng = rng or random.Random()
    return f"127.54.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}"


def _zone(peer: str, **extra: dict[str, list[str]]) -> Zone:
    records: dict[str, dict[str, list[str]]] = {
        reverse_name(peer): {"PTR": ["good.example.net"]},
        "good.example.net": {"A": [peer]},
        "helo.example.net": {"A": ["192.0.2.1"]},
        "example.org": {"MX": ["10 mx.example.org"]},
        "mx.example.org": {"A": ["192.0.2.2"]},
    }
    records.update(extra)
    return Zone(records, servfail=["broken.example"])


def _names(sandbox: Sandbox) -> set[tuple[str, str]]:
    return {(q.name, q.rrtype) for q in sandbox.dns_queries()}


def test_lookups_by_postfix_reach_the_stub_and_nothing_else(sandbox_factory: Factory) -> None:
    peer = _peer()
    zone = _zone(peer)
    sandbox = sandbox_factory(BASE + DNS_RESTRICTIONS, dns=zone)
    assert sandbox.stub is not None and sandbox.namespace is not None

    # Every process of the instance is in master's private namespace, not ours, and sees
    # the stub's resolv.conf; the host's resolv.conf is untouched.
    assert sandbox.namespace != mount_namespace()
    members = namespace_members(sandbox.namespace)
    assert members, "no process in the sandbox's mount namespace"
    host_resolv = Path("/etc/resolv.conf").read_text()
    assert sandbox.stub.address not in host_resolv
    for pid in members:
        seen = Path(f"/proc/{pid}/root/etc/resolv.conf").read_text()
        assert seen.split("nameserver")[1].split()[0] == sandbox.stub.address, (pid, seen)

    accepted = sandbox.run(
        [Case(client_addr=peer, source_addr=peer, helo="helo.example.net",
              sender="a@example.org", recipient="user@mx.example.com")],
        workers=1,
    )[0]  # fmt: skip
    assert (accepted.command, accepted.code) == ("rcpt", 250), accepted
    # smtpd's own reverse lookup, forward-confirmed: the log shows the name it found.
    assert f"connect from good.example.net[{peer}]" in sandbox.maillog()

    rev = ".".join(reversed(peer.split(".")))
    asked = _names(sandbox)
    expected = {
        (reverse_name(peer), "PTR"),  # client name
        ("good.example.net", "A"),  # forward confirmation
        (f"{rev}.rbl.test", "A"),  # reject_rbl_client
        ("helo.example.net", "A"),  # reject_unknown_helo_hostname
        ("example.org", "MX"),  # reject_unknown_sender_domain
    }
    assert expected <= asked, expected - asked
    # Every question Postfix asked was answered by the stub (none dropped, none malformed),
    # and the names are the ones the configuration and the case explain: no lookups of
    # anything else (Postfix asks nothing the stub does not log).
    assert all(q.status in ("ok", "nodata", "nxdomain") for q in sandbox.dns_queries())
    explained = {name for name, _ in expected} | {"mx.example.com", "localhost"}
    assert {name for name, _ in asked} <= explained, {n for n, _ in asked} - explained


def test_names_and_temporary_failures_decide_like_the_zone_says(sandbox_factory: Factory) -> None:
    rng = random.Random(53)
    good, noptr, forged, tempfail = (_peer(rng) for _ in range(4))
    zone = Zone(
        {
            reverse_name(good): {"PTR": ["good.example.net"]},
            "good.example.net": {"A": [good]},
            reverse_name(forged): {"PTR": ["forged.example.net"]},
            "forged.example.net": {"A": ["192.0.2.99"]},
            f"{'.'.join(reversed(good.split('.')))}.rbl.test": {
                "A": ["127.0.0.2"],
                "TXT": ["listed for testing"],
            },
        },
        servfail=[reverse_name(tempfail)],
    )
    main = BASE + "smtpd_client_restrictions = reject_unknown_client_hostname\n"
    sandbox = sandbox_factory(main, dns=zone)

    def ask(peer: str) -> tuple[str, int | None]:
        outcome = sandbox.run(
            [Case(client_addr=peer, source_addr=peer, helo="h.example.net",
                  sender="", recipient="user@mx.example.com")],
            workers=1,
        )[0]  # fmt: skip
        return outcome.command, outcome.code

    assert ask(good) == ("rcpt", 250)
    assert ask(noptr) == ("rcpt", 550)  # no PTR: permanent, unknown_client_reject_code
    assert ask(forged) == ("rcpt", 550)  # PTR not confirmed by A: forged, permanent
    assert ask(tempfail) == ("rcpt", 450)  # SERVFAIL: temporary, always 450
    log = sandbox.maillog()
    assert f"hostname forged.example.net does not resolve to address {forged}" in log
    # XCLIENT NAME=[TEMPUNAVAIL] / [UNAVAILABLE] are the same statuses without DNS.
    temp = sandbox.query(client_addr="203.0.113.9", client_name="[TEMPUNAVAIL]",
                         recipient="user@mx.example.com")  # fmt: skip
    perm = sandbox.query(client_addr="203.0.113.9", client_name="[UNAVAILABLE]",
                         recipient="user@mx.example.com")  # fmt: skip
    assert (temp.code, perm.code) == (450, 550)

    # An RBL answer with its TXT record makes the reply; a timeout is a quick temporary
    # failure (resolver timeout 1 s, one attempt), never an outside query.
    rbl = sandbox_factory(
        BASE + "smtpd_client_restrictions = reject_rbl_client rbl.test\n", dns=zone
    )
    listed = rbl.run(
        [Case(client_addr=good, source_addr=good, recipient="user@mx.example.com")], workers=1
    )[0]
    assert listed.code == 554 and "blocked using rbl.test; listed for testing" in listed.text


def _policy_server(action: str) -> tuple[Callable[[socket.socket], None], list[int]]:
    """A Postfix policy server answering `action` (a behaviour for the `loopback_server`
    fixture) and a one-element list counting its requests."""
    count = [0]

    def talk(conn: socket.socket) -> None:
        buffer = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return
            buffer += data
            while b"\n\n" in buffer:
                _, buffer = buffer.split(b"\n\n", 1)
                count[0] += 1
                conn.sendall(f"action={action}\n\n".encode())

    return talk, count


def test_outside_services_are_rewritten_or_refused(
    sandbox_factory: Factory, loopback_server: Callable[[Callable[[socket.socket], None]], int]
) -> None:
    production_policy, prod_count = _policy_server("REJECT production says no")
    test_policy, test_count = _policy_server("REJECT sandbox stand-in")
    prod_port, test_port = loopback_server(production_policy), loopback_server(test_policy)
    production = f"inet:127.0.0.1:{prod_port}"
    main = (
        BASE
        + "smtpd_recipient_restrictions = "
        + f"check_policy_service {{ {production}, default_action=DUNNO }}\n"
        + "smtpd_milters = inet:milter.example.net:8891\n"
        + "milter_default_action = accept\n"
    )
    contacts = outside_contacts(main, "")
    assert {(c.kind, c.endpoint) for c in contacts} == {
        ("policy", production),
        ("milter", "inet:milter.example.net:8891"),
    }
    with pytest.raises(SandboxError, match=re.escape("milter inet:milter.example.net:8891")):
        Sandbox(main, outside_services={production: f"inet:127.0.0.1:{test_port}"}).start()
    sandbox = sandbox_factory(
        main,
        dns=Zone({}),
        outside_services={
            production: f"inet:127.0.0.1:{test_port}",
            "inet:milter.example.net:8891": "",
        },
    )
    outcome = sandbox.query(recipient="user@mx.example.com")
    assert (outcome.command, outcome.code) == ("rcpt", 554)
    assert "sandbox stand-in" in outcome.text
    assert test_count[0] >= 1 and prod_count[0] == 0


def test_stop_leaves_no_process_mount_or_stub() -> None:
    from postharden.sandbox import postfix_available

    reason = postfix_available()
    if reason:
        pytest.skip(reason)
    sandbox = Sandbox(BASE, dns=Zone({}))
    sandbox.start()
    namespace, stub = sandbox.namespace, sandbox.stub
    assert namespace is not None and stub is not None
    address = stub.address
    members = {pid: process_start(pid) for pid in namespace_members(namespace)}
    assert members and sandbox._master_pid in members
    sandbox.stop()
    # Every process of the namespace is gone, so the namespace and its mount are too. (Not
    # `namespace_members(namespace) == []`: a sandbox that another test worker starts now
    # may get the freed namespace number. A process is known by PID and start time.)
    assert [pid for pid, start in members.items() if process_start(pid) == start] == []
    assert stub.closed
    with StubDns(Zone({}), address=address):  # port 53 of that address is free again
        pass
    assert os.path.exists("/etc/resolv.conf")


def test_verify_isolates_dns_and_reports_dns_dependent_cases(tmp_path: Path) -> None:
    from postharden.sandbox import postfix_available
    from postharden.sandbox.verify import verify

    reason = postfix_available()
    if reason:
        pytest.skip(reason)
    (tmp_path / "main.cf").write_text(
        BASE.replace("smtpd_relay_restrictions", "smtpd_relay_restrictions_unused")
        + "smtpd_relay_restrictions = permit_mynetworks, reject_rbl_client rbl.invalid, "
        "permit_dnswl_client dnswl.invalid, reject_unauth_destination\n"
    )
    (tmp_path / "master.cf").write_text(MINIMAL_MASTER_CF)
    report = verify(tmp_path, workers=2)  # default: isolated
    document = report.as_dict()
    results = [r for s in document["services"] for r in s["results"]]
    dependent = [r for r in results if r["predicted"] and r["predicted"].get("depends_on_dns")]
    assert dependent, "no result was marked as depending on DNS"
    assert all(not r["disagrees"] for r in dependent)
    assert {"reject_rbl_client rbl.invalid"} <= {
        name for r in dependent for name in r["predicted"]["depends_on_dns"]
    }
    assert report.production_untouched
