"""The sandbox runs the real Postfix and reports what it answers (no mocks anywhere)."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from postharden.sandbox import (
    MINIMAL_MASTER_CF,
    Case,
    Sandbox,
    SandboxError,
    _group_members,
)
from postharden.sandbox.namespace import process_start

pytestmark = [pytest.mark.postfix, pytest.mark.root]


def _alive(pid: int) -> bool:
    return process_start(pid) is not None


BASE = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.2/32 192.0.2.0/24
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
"""

Factory = Callable[..., Sandbox]

# The daemons smtpd talks to (cleanup, trivial-rewrite, ...) without the smtp inet row.
DAEMONS = MINIMAL_MASTER_CF.split("\n", 1)[1]


def test_outside_client_is_refused_and_mynetworks_client_is_accepted(
    sandbox_factory: Factory,
) -> None:
    sandbox = sandbox_factory(BASE)
    outside = sandbox.query(client_addr="203.0.113.9", recipient="someone@example.org")
    assert (outside.command, outside.code) == ("rcpt", 554)
    assert "Relay access denied" in outside.text
    assert not outside.accepted
    inside = sandbox.query(client_addr="192.0.2.77", recipient="someone@example.org")
    assert (inside.command, inside.code, inside.accepted) == ("rcpt", 250, True)
    local = sandbox.query(client_addr="203.0.113.9", recipient="anyone@mx.example.com")
    assert local.accepted
    # The log shows the impersonated client, not the sandbox's own loopback address.
    assert "client.example.net[192.0.2.77]" in sandbox.maillog()
    assert outside.as_dict() == {"command": "rcpt", "code": 554, "text": outside.text}


def test_xclient_impersonates_address_name_helo_and_sasl_login(sandbox_factory: Factory) -> None:
    main = BASE + textwrap.dedent("""\
        smtpd_delay_reject = no
        smtpd_sasl_auth_enable = yes
        smtpd_client_restrictions = check_client_access hash:$config_directory/clients
        smtpd_helo_restrictions = check_helo_access hash:$config_directory/helos
        smtpd_sender_restrictions = check_sender_access hash:$config_directory/senders
        """)
    maps = {
        "clients": "198.51.100.7 REJECT blocked client\nbad.example.org REJECT blocked name\n",
        "helos": "evil.helo REJECT blocked helo\n",
        "senders": "spammer@example.net REJECT blocked sender\n",
    }
    sandbox = sandbox_factory(main, maps=maps)
    by_addr = sandbox.query(client_addr="198.51.100.7")
    assert (by_addr.command, by_addr.code) == ("connect", 554)
    assert "blocked client" in by_addr.text
    by_name = sandbox.query(client_addr="198.51.100.8", client_name="bad.example.org")
    assert (by_name.command, by_name.code) == ("connect", 554)
    by_helo = sandbox.query(helo="evil.helo")
    assert (by_helo.command, by_helo.code) == ("helo", 554)
    by_sender = sandbox.query(sender="spammer@example.net")
    assert (by_sender.command, by_sender.code) == ("mail", 554)
    relay_without_login = sandbox.query(recipient="x@example.org")
    assert relay_without_login.code == 554
    relay_with_login = sandbox.query(recipient="x@example.org", sasl_login="alice")
    assert relay_with_login.accepted, relay_with_login


def test_batch_gives_the_same_answers_as_single_queries(sandbox_factory: Factory) -> None:
    main = BASE + "smtpd_sender_restrictions = check_sender_access hash:$config_directory/senders\n"
    sandbox = sandbox_factory(main, maps={"senders": "bad@example.net REJECT no\n"})
    rng = random.Random(6)
    cases = [
        Case(
            client_addr=rng.choice(["203.0.113.9", "192.0.2.5", "127.0.0.2", "198.51.100.1"]),
            sender=rng.choice(["ok@example.net", "bad@example.net", ""]),
            recipient=rng.choice(["a@mx.example.com", "b@example.org", "c@localhost"]),
            sasl_login=rng.choice([None, None, "bob"]),
        )
        for _ in range(300)
    ]
    started = time.monotonic()
    batch = sandbox.run(cases, workers=4)
    elapsed = time.monotonic() - started
    assert len(batch) == len(cases)
    for case, outcome in list(zip(cases, batch, strict=True))[:40]:
        single = sandbox.query(
            client_addr=case.client_addr,
            sender=case.sender,
            recipient=case.recipient,
            sasl_login=case.sasl_login,
        )
        assert (single.command, single.code) == (outcome.command, outcome.code), case
    codes = {(o.command, o.code) for o in batch}
    assert ("rcpt", 250) in codes and ("rcpt", 554) in codes
    texts = " ".join(o.text for o in batch)
    assert "Relay access denied" in texts and "Sender address rejected" in texts
    assert elapsed < 20, f"300 cases took {elapsed:.1f} s"


def test_vrfy_expn_etrn(sandbox_factory: Factory) -> None:
    sandbox = sandbox_factory(BASE + "local_recipient_maps = $alias_maps\nalias_maps =\n")
    vrfy = sandbox.run([Case(verb="VRFY", recipient="postmaster")])[0]
    assert vrfy.command == "vrfy" and vrfy.code is not None
    hardened = sandbox_factory(BASE + "disable_vrfy_command = yes\n")
    refused = hardened.run([Case(verb="VRFY", recipient="postmaster")])[0]
    assert (refused.command, refused.code) == ("vrfy", 502)
    etrn = hardened.run([Case(verb="ETRN", recipient="example.org")])[0]
    assert etrn.command == "etrn" and etrn.code is not None


def test_service_whose_smtpd_refuses_to_run_is_unavailable_with_the_fatal_line(
    sandbox_factory: Factory,
) -> None:
    # Neither restriction list can refuse relaying: Postfix's smtpd exits with a fatal
    # error at start-up and master keeps the port open without a greeting.
    main = BASE.replace(
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
        "reject_unauth_destination",
        "smtpd_relay_restrictions = permit_mynetworks\nsmtpd_recipient_restrictions = permit",
    )
    sandbox = sandbox_factory(main)
    started = time.monotonic()
    outcome = sandbox.query()
    assert not outcome.available
    assert outcome.code is None and outcome.command == "connect"
    assert "restrictions" in outcome.text, outcome.text
    assert time.monotonic() - started < sandbox.greeting_timeout + 1
    # Remembered: the next query does not wait again.
    started = time.monotonic()
    assert not sandbox.query().available
    assert time.monotonic() - started < 0.5


def test_listeners_move_to_loopback_and_xclient_hosts_are_kept(sandbox_factory: Factory) -> None:
    master = (
        textwrap.dedent("""\
        smtp      inet  n       -       y       -       -       smtpd
        submission inet n       -       y       -       -       smtpd
          -o syslog_name=postfix/submission
          -o smtpd_authorized_xclient_hosts=192.0.2.9
          -o smtpd_sasl_auth_enable=yes
          -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
        """)
        + DAEMONS
    )
    sandbox = sandbox_factory(BASE + "smtpd_authorized_xclient_hosts = 192.0.2.1\n", master)
    assert set(sandbox.ports) == {"smtp", "submission"}
    assert len(set(sandbox.ports.values())) == 2
    result = subprocess.run(
        ["postconf", "-c", str(sandbox.config_directory), "-h", "smtpd_authorized_xclient_hosts"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["127.0.0.1,", "192.0.2.1"]
    rewritten = (sandbox.config_directory / "master.cf").read_text()
    assert "smtpd_authorized_xclient_hosts=127.0.0.1,192.0.2.9" in rewritten
    assert f"127.0.0.1:{sandbox.port('submission')} inet" in rewritten
    submission = sandbox.query("submission", recipient="x@example.org")
    assert (submission.command, submission.code) == ("rcpt", 554)
    assert sandbox.query("submission", recipient="x@example.org", sasl_login="u").accepted
    assert sandbox.check().clean
    with pytest.raises(SandboxError):
        sandbox.query("no-such-service")


def test_production_directory_is_copied_not_touched(tmp_path: Path) -> None:
    production = tmp_path / "etc-postfix"
    production.mkdir()
    (production / "main.cf").write_text(
        BASE + "smtpd_client_restrictions = check_client_access hash:$config_directory/access\n"
    )
    (production / "master.cf").write_text("smtp inet n - y - - smtpd\n" + DAEMONS)
    (production / "access").write_text("198.51.100.7 REJECT\n")

    def checksums() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
            for p in sorted(production.iterdir())
        }

    before = checksums()
    with Sandbox.from_config_dir(production) as sandbox:
        assert sandbox.query(client_addr="198.51.100.7").code == 554
        assert sandbox.query(client_addr="198.51.100.8").code == 554
    assert checksums() == before
    assert not (production / "access.db").exists()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killed_owner_leaves_no_process_or_directory(signum: int) -> None:
    script = textwrap.dedent("""\
        import sys, time
        from postharden.sandbox import Sandbox
        sandbox = Sandbox("compatibility_level = 3.6\\n")
        with sandbox:
            print(sandbox.directory, sandbox._master_pid, flush=True)
            time.sleep(60)
        """)
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    assert owner.stdout is not None
    line = owner.stdout.readline().split()
    if not line:
        owner.kill()
        pytest.fail("the sandbox did not start")
    directory, pid = Path(line[0]), int(line[1])
    assert directory.is_dir() and _alive(pid)
    owner.send_signal(signum)
    owner.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (directory.exists() or _alive(pid)):
        time.sleep(0.05)
    assert not directory.exists()
    assert not _alive(pid)
    while time.monotonic() < deadline and _group_members(pid):
        time.sleep(0.05)
    assert _group_members(pid) == [], "processes of the instance are left"


def test_bad_master_cf_fails_with_one_line_reason() -> None:
    sandbox = Sandbox("compatibility_level = 3.6\n", "smtp inet n - n - - smtpd\nbad unix n -\n")
    with pytest.raises(SandboxError) as raised:
        sandbox.start()
    assert "\n" not in str(raised.value)
    assert "master.cf" in str(raised.value) or "field" in str(raised.value), raised.value
    assert sandbox.directory is None
