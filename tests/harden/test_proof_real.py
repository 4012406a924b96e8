"""The proof against the real Postfix 3.7: generated weak configurations, hardened by
`apply --no-reload` on a copy, then run by the real Postfix (the sandbox) and asked through
XCLIENT before and after. Plus a live apply with reload on a running open relay.

After hardening, on every smtpd service:
- `postfix check` is clean (apply ran it; we run it again on the result);
- an outside client's relay attempts get 5xx (several senders and recipients, including
  the ones an access map let through);
- VRFY gets 502;
- every flow that got 250 before still gets 250: local delivery from outside, relay from
  mynetworks hosts, relay for a SASL login (XCLIENT LOGIN, Dovecot as the SASL backend).
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from postharden.sandbox import MINIMAL_MASTER_CF, Case, Sandbox

from .helpers import make_top, needs_postfix_root, run_cli, snapshot, write_config

pytestmark = [pytest.mark.postfix, pytest.mark.root, needs_postfix_root()]

DOVECOT = shutil.which("dovecot", path="/usr/sbin:/usr/bin:/sbin:/bin")
OUTSIDE = "203.0.113.7"
FOREIGN = "user@relay-test.example"
MAPPED = "relayme@foreign.example"  # an access map says OK to this recipient
PARTNER = "partner@example.net"  # an access map says OK to this sender


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    port: int
    directory: Path


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (needed as the SASL backend)")
    top = make_top()
    port = _free_port()
    (top / "users").write_text("alice:{PLAIN}alice-pw\n")
    conf = top / "dovecot.conf"
    conf.write_text(f"""\
base_dir = {top}/run
state_dir = {top}/state
log_path = {top}/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {top}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  inet_listener {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
service log {{
  chroot =
}}
default_internal_user = nobody
default_login_user = nobody
""")
    subprocess.run(
        [DOVECOT, "-c", str(conf)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        time.sleep(0.1)
    try:
        yield Dovecot(port, top)
    finally:
        subprocess.run(
            [DOVECOT, "-c", str(conf), "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
            check=False,
        )
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def certificate() -> Iterator[Path]:
    top = make_top()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mx.example.test",
            "-keyout",
            str(top / "key.pem"),
            "-out",
            str(top / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield top
    shutil.rmtree(top, ignore_errors=True)


def weak_configuration(
    rng: random.Random, dovecot: Dovecot, certificate: Path
) -> tuple[str, str, list[str]]:
    """main.cf extra, master.cf, and the weaknesses in words."""
    weaknesses: list[str] = []
    lines: list[str] = []
    mynetworks = rng.choice(
        [
            ("127.0.0.0/8 10.20.0.0/16", "narrow"),
            ("127.0.0.0/8 0.0.0.0/0 10.20.0.0/16", "0.0.0.0/0 in mynetworks"),
            ("0.0.0.0/1 128.0.0.0/1 10.20.0.0/16", "two /1 halves in mynetworks"),
            (None, "mynetworks_style = subnet (derived)"),
        ]
    )
    if mynetworks[0] is None:
        lines.append("mynetworks_style = subnet")
    else:
        lines.append(f"mynetworks = {mynetworks[0]}")
    weaknesses.append(mynetworks[1])
    sasl = rng.random() < 0.6
    if sasl:
        lines += [
            "smtpd_sasl_auth_enable = yes",
            "smtpd_sasl_type = dovecot",
            f"smtpd_sasl_path = inet:127.0.0.1:{dovecot.port}",
        ]
        weaknesses.append("SASL via Dovecot")
    relay = rng.choice(
        [
            (
                "permit_mynetworks, permit_sasl_authenticated,\n"
                f"    check_sender_access inline:{{ {PARTNER}=OK }},\n    reject_unauth_destination",
                "early sender-map OK",
            ),
            (
                f"permit_mynetworks permit_sasl_authenticated check_recipient_access inline:{{ {MAPPED}=OK }} "
                "reject_unauth_destination",
                "early recipient-map OK",
            ),
            (None, "default relay list (defer_unauth_destination)"),
            (
                "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
                "explicit defer",
            ),
        ]
    )
    if relay[0] is not None:
        lines.append(f"smtpd_relay_restrictions = {relay[0]}")
    weaknesses.append(relay[1])
    if rng.random() < 0.5:
        lines.append("# the old style: relay control in the recipient list, permit first")
        lines.append(
            "smtpd_recipient_restrictions = permit_mynetworks, permit, reject_unauth_destination"
        )
        weaknesses.append("early permit in recipient list")
    if rng.random() < 0.7:
        lines.append("disable_vrfy_command = no")
        weaknesses.append("VRFY on")
    if rng.random() < 0.6:
        lines.append(f"smtpd_tls_cert_file = {certificate}/cert.pem")
        lines.append(f"smtpd_tls_key_file = {certificate}/key.pem")
        lines.append(rng.choice(["smtpd_tls_security_level = none", "# TLS level not set"]))
        weaknesses.append("certificate but no STARTTLS")
    master_rows = MINIMAL_MASTER_CF.splitlines()
    submission = ["submission inet n - n - - smtpd", "  -o syslog_name=postfix/submission"]
    reopen = rng.choice(
        [
            ("  -o mynetworks=0.0.0.0/0", "-o mynetworks=0.0.0.0/0 reopens submission"),
            (
                "  -o smtpd_relay_restrictions=permit_mynetworks,permit_sasl_authenticated,"
                f"check_recipient_access,inline:{{{MAPPED}=OK}},reject_unauth_destination",
                "-o relay list with an early recipient-map OK",
            ),
            ("  -o disable_vrfy_command=no", "-o VRFY on for submission"),
            (None, "no submission service"),
        ]
    )
    if reopen[0] is not None:
        submission.append(reopen[0])
        master_rows[1:1] = submission
    weaknesses.append(reopen[1])
    return "\n".join(lines) + "\n", "\n".join(master_rows) + "\n", weaknesses


def flow_cases(
    services: list[str], mynetworks_host: bool, sasl: bool, tls: bool = False
) -> list[tuple[str, Case]]:
    cases: list[tuple[str, Case]] = []
    for service in services:
        cases.append(
            (
                "legit",
                Case(
                    service,
                    OUTSIDE,
                    "client.example.net",
                    "client.example.net",
                    None,
                    "sender@example.net",
                    "postmaster@example.test",
                ),
            )
        )
        cases.append(
            (
                "legit",
                Case(
                    service,
                    "127.0.0.1",
                    "localhost",
                    "localhost",
                    None,
                    "root@example.test",
                    FOREIGN,
                ),
            )
        )
        if mynetworks_host:
            cases.append(
                (
                    "legit",
                    Case(
                        service,
                        "10.20.0.5",
                        "host.example.test",
                        "host.example.test",
                        None,
                        "user@example.test",
                        FOREIGN,
                    ),
                )
            )
        if sasl:
            # A SASL client uses STARTTLS when it is offered (strict: smtpd_tls_auth_only).
            cases.append(
                (
                    "legit",
                    Case(
                        service,
                        OUTSIDE,
                        "client.example.net",
                        "client.example.net",
                        "alice",
                        "alice@example.test",
                        FOREIGN,
                        tls=tls,
                    ),
                )
            )
        for sender in ("sender@example.net", PARTNER):
            for recipient in (FOREIGN, MAPPED):
                cases.append(
                    (
                        "relay",
                        Case(
                            service,
                            OUTSIDE,
                            "client.example.net",
                            "client.example.net",
                            None,
                            sender,
                            recipient,
                        ),
                    )
                )
        cases.append(
            (
                "vrfy",
                Case(
                    service,
                    OUTSIDE,
                    "client.example.net",
                    "client.example.net",
                    None,
                    "sender@example.net",
                    "postmaster@example.test",
                    verb="VRFY",
                ),
            )
        )
    return cases


def _offers_tls(main: str) -> bool:
    from postharden.config import parse_main_cf

    values = {d.name: d.value for d in parse_main_cf(main, "main.cf", [])}
    return bool(values.get("smtpd_tls_cert_file")) and values.get("smtpd_tls_security_level") in (
        "may",
        "encrypt",
    )


def _ask(
    main: str, master: str, mynetworks_host: bool, sasl: bool
) -> tuple[list[tuple[str, Case]], list[object]]:
    with Sandbox(main, master) as sandbox:
        services = [name for name in sandbox.ports if name in ("smtp", "submission")]
        cases = flow_cases(services, mynetworks_host, sasl, _offers_tls(main))
        outcomes = sandbox.run([case for _, case in cases], workers=2)
    return cases, outcomes


def _prove(profile: str, seed: int, dovecot: Dovecot, certificate: Path) -> list[str]:
    rng = random.Random(seed)
    main_extra, master, weaknesses = weak_configuration(rng, dovecot, certificate)
    top = make_top()
    try:
        config = write_config(top, main_extra, master)
        before = snapshot(config)
        result = run_cli(
            "apply", "--config-dir", str(config), "--profile", profile, "--yes", "--no-reload"
        )
        assert result.returncode == 0, (weaknesses, result.stdout, result.stderr)
        after = snapshot(config)
        assert after != before
        check = subprocess.run(
            ["script", "-qec", f"postfix -c {config} check", "/dev/null"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0, check.stdout
        assert "fatal" not in check.stdout and "error" not in check.stdout.lower(), check.stdout
        # second apply and plan: nothing left to do
        assert (
            "nothing changed"
            in run_cli(
                "apply", "--config-dir", str(config), "--profile", profile, "--yes", "--no-reload"
            ).stdout
        )
        sasl = "SASL via Dovecot" in weaknesses
        host = "10.20.0.0/16" in main_extra
        cases, old = _ask(before["main.cf"].decode(), before["master.cf"].decode(), host, sasl)
        cases_after, new = _ask(after["main.cf"].decode(), after["master.cf"].decode(), host, sasl)
        assert [(k, c.service, c.sender, c.recipient) for k, c in cases] == [
            (k, c.service, c.sender, c.recipient) for k, c in cases_after
        ]
        problems: list[str] = []
        for (kind, case), was, now in zip(cases, old, new, strict=True):
            label = (
                f"{weaknesses}: {case.service} {case.client_addr} login={case.sasl_login} "
                f"<{case.sender}> -> {case.verb} <{case.recipient}>"
            )
            if kind == "legit" and was.accepted and not now.accepted:  # type: ignore[attr-defined]
                problems.append(f"BROKEN {label}: {was} -> {now}")
            if kind == "relay" and not (now.code and 500 <= now.code < 600):  # type: ignore[attr-defined]
                problems.append(f"RELAY not refused with 5xx: {label}: {now}")
            if kind == "vrfy" and now.code != 502:  # type: ignore[attr-defined]
                problems.append(f"VRFY not 502: {label}: {now}")
        # the generated set must contain real weaknesses: something was open or VRFY answered
        return problems
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.mark.parametrize("seed", range(6))
def test_baseline_on_generated_weak_configurations(
    seed: int, dovecot: Dovecot, certificate: Path
) -> None:
    assert _prove("baseline", seed, dovecot, certificate) == []


@pytest.mark.parametrize("seed", range(100, 103))
def test_strict_on_generated_weak_configurations(
    seed: int, dovecot: Dovecot, certificate: Path
) -> None:
    assert _prove("strict", seed, dovecot, certificate) == []


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 30))
def test_baseline_on_many_more_weak_configurations(
    seed: int, dovecot: Dovecot, certificate: Path
) -> None:
    assert _prove("baseline", seed, dovecot, certificate) == []


def test_the_generated_set_is_really_weak(dovecot: Dovecot, certificate: Path) -> None:
    """Before hardening the real Postfix relays for strangers or answers VRFY in most configs."""
    weak = 0
    for seed in range(6):
        main_extra, master, _weaknesses = weak_configuration(
            random.Random(seed), dovecot, certificate
        )
        top = make_top()
        try:
            config = write_config(top, main_extra, master)
            before = snapshot(config)
            cases, outcomes = _ask(
                before["main.cf"].decode(), before["master.cf"].decode(), False, False
            )
            if any(
                (kind == "relay" and o.accepted) or (kind == "vrfy" and o.code == 252)  # type: ignore[attr-defined]
                for (kind, _), o in zip(cases, outcomes, strict=True)
            ):
                weak += 1
        finally:
            shutil.rmtree(top, ignore_errors=True)
    assert weak >= 4


def test_live_apply_closes_the_relay_of_a_running_postfix_without_restart(
    certificate: Path,
) -> None:
    main = (
        "compatibility_level = 3.6\nmyhostname = mx.example.test\nmydestination = example.test\n"
        "mynetworks = 0.0.0.0/0\nalias_maps =\nalias_database =\nlocal_recipient_maps =\n"
        "smtpd_peername_lookup = no\n"
    )
    with Sandbox(main) as sandbox:
        relay = Case(
            "smtp",
            OUTSIDE,
            "client.example.net",
            "client.example.net",
            None,
            "sender@example.net",
            FOREIGN,
        )
        local = Case(
            "smtp",
            OUTSIDE,
            "client.example.net",
            "client.example.net",
            None,
            "sender@example.net",
            "postmaster@example.test",
        )
        assert sandbox.run([relay])[0].accepted, "the open relay is not open"
        pid_file = sandbox.directory / "queue" / "pid" / "master.pid"  # type: ignore[operator]
        master_pid = pid_file.read_text().split()[0]
        result = run_cli("apply", "--config-dir", str(sandbox.config_directory), "--yes")
        assert result.returncode == 0, result.stderr
        assert "postfix reload: ok" in result.stdout
        deadline = time.monotonic() + 30
        outcome = sandbox.run([relay])[0]
        while outcome.accepted and time.monotonic() < deadline:
            time.sleep(0.5)  # smtpd processes of the old generation finish their sessions
            outcome = sandbox.run([relay])[0]
        assert outcome.code is not None and 500 <= outcome.code < 600, outcome
        assert sandbox.run([local])[0].accepted
        assert pid_file.read_text().split()[0] == master_pid, "master was restarted"
