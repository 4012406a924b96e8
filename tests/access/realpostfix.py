"""Run generated configurations in the shared sandbox and ask both it and the engine.

SASL logins through XCLIENT need `smtpd_sasl_auth_enable = yes`, and smtpd then needs a
working SASL backend to list mechanisms in its EHLO reply: the sandbox stands in for
Dovecot's auth socket itself (postharden.sandbox.sasl); XCLIENT LOGIN never asks it to
authenticate anybody.

TLS: the instances carry a self-signed certificate made with openssl for this test run;
a case with `tls` says STARTTLS before XCLIENT (Sandbox Case.tls). DATA cases (the sandbox
asks RCPT, VRFY, EXPN and ETRN) go through `run_data` here: the same session opening as the
sandbox's, then MAIL, RCPT, DATA and an empty message; the instance delivers to discard.
"""

from __future__ import annotations

import contextlib
import functools
import random
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from postharden.access import ClientContext, Decision, Engine
from postharden.config import load_config
from postharden.sandbox import Case, Outcome, Sandbox
from postharden.smtp import SmtpClient

from .corpus import Instance, Query, random_instance, random_queries

SANDBOX_CLIENT = ClientContext("127.0.0.1", "localhost", "sandbox.postharden.invalid", None, "", "")


@dataclass
class Comparison:
    query: Query
    expected: Decision
    actual: Outcome

    @property
    def agrees(self) -> bool:
        if self.expected.decision == "unavailable":
            return not self.actual.available
        if not self.actual.available:
            return False
        refused = self.actual.text.partition("XCLIENT refused the case: ")[2]
        if self.actual.code is None and refused[:3].isdigit() and "authoriz" not in refused:
            # With smtpd_delay_reject = no, XCLIENT answers with the new client's refusal.
            return (self.expected.command, str(self.expected.code)) == ("connect", refused[:3])
        if self.actual.code is None and "STARTTLS is not offered" in self.actual.text:
            # The engine must know that this service offers no STARTTLS.
            return any(
                s.restriction == "STARTTLS" and s.result == "skipped" for s in self.expected.trace
            )
        return (self.expected.command, self.expected.code) == (
            self.actual.command,
            self.actual.code,
        )

    def describe(self) -> str:
        c = self.query.context
        return (
            f"service {self.query.service}: client {c.address} name={c.name} helo={c.helo} "
            f"login={c.sasl_user} tls={c.tls} {c.verb} <{c.sender}> -> <{c.recipient}>\n"
            f"  engine: {self.expected.command} {self.expected.code} {self.expected.text}\n"
            f"  postfix: {self.actual.command} {self.actual.code} {self.actual.text}\n"
            + "\n".join(
                f"    {s.stage}: {s.restriction} -> {s.result} ({s.origin}) {s.detail}"
                for s in self.expected.trace
            )
        )


def _engine_for(instance: Instance) -> tuple[Engine, dict[str, str]]:
    """Load an instance from a scratch directory (to vet it before Postfix starts)."""
    directory = Path(tempfile.mkdtemp(prefix="postharden-access-vet-"))
    for name, content in instance.maps.items():
        (directory / name).write_text(content)
    (directory / "main.cf").write_text(instance.main_cf)
    (directory / "master.cf").write_text(instance.master_cf)
    config = load_config(directory)
    keys = {s.name: s.key for s in config.smtpd_services()}
    return Engine(config), keys


def vetted_instance(rng: random.Random, services: int) -> Instance:
    """An instance whose services do not refuse the sandbox's own connection.

    With smtpd_delay_reject = no the client list runs against the real peer (127.0.0.1)
    before XCLIENT, and the sandbox's EHLO runs the helo list: a service that refuses
    those cannot be asked anything through XCLIENT.
    """
    for _ in range(50):
        instance = random_instance(rng, services, tls_files())
        engine, keys = _engine_for(instance)
        if all(_sandbox_can_talk(engine, keys[name]) for name in instance.services):
            return instance
    raise AssertionError("no usable instance in 50 tries")


def _sandbox_can_talk(engine: Engine, service: str) -> bool:
    policy = engine.policy(service)
    if policy.startup_problem is not None or policy.delay_reject:
        return True
    decision = engine.decide(service, SANDBOX_CLIENT)
    # A defer_if_permit that the sandbox's own connection raises at connect or HELO stays
    # in smtpd's state after XCLIENT (seen with ETRN): such a service cannot be asked.
    raised = any(
        s.stage in ("client", "helo") and s.result == "defer_if_permit" for s in decision.trace
    )
    return decision.command not in ("connect", "helo") and not raised


@contextlib.contextmanager
def running(instance: Instance) -> Iterator[tuple[Sandbox, Engine, dict[str, str]]]:
    """The instance in a real Postfix, the engine on the sandbox's own files, and the map
    from sandbox service names to master.cf service keys."""
    with sandboxed(instance.main_cf, instance.master_cf, instance.maps) as found:
        yield found


@contextlib.contextmanager
def sandboxed(
    main_cf: str, master_cf: str | None = None, maps: dict[str, str] | None = None
) -> Iterator[tuple[Sandbox, Engine, dict[str, str]]]:
    # A generous greeting timeout: on a loaded machine a slow first greeting must not
    # pass for a service that refuses to run (those are told by smtpd's fatal log line).
    with Sandbox(main_cf, master_cf, maps=maps or {}, greeting_timeout=30.0) as sandbox:
        # The sandbox answers Dovecot's auth handshake itself (postharden.sandbox.sasl).
        config = load_config(sandbox.config_directory)
        by_port = {}
        for service in config.smtpd_services():
            listen = service.listen
            if listen is not None:
                by_port[int(listen[1])] = service.key
        keys = {name: by_port[port] for name, port in sandbox.ports.items()}
        yield sandbox, Engine(config), keys


def compare(seed: int, instances: int, services: int, cases: int) -> list[Comparison]:
    rng = random.Random(seed)
    results: list[Comparison] = []
    for _ in range(instances):
        instance = vetted_instance(rng, services)
        queries = random_queries(rng, instance.services, cases, data=True)
        with running(instance) as (sandbox, engine, keys):
            expected = [engine.decide(keys[q.service], q.context) for q in queries]
            outcomes = ask(sandbox, [case_for(q) for q in queries])
        results.extend(
            Comparison(q, e, a) for q, e, a in zip(queries, expected, outcomes, strict=True)
        )
    return results


def ask(sandbox: Sandbox, cases: Sequence[Case]) -> list[Outcome]:
    """The sandbox's answers; DATA cases through run_data."""
    data = [i for i, c in enumerate(cases) if c.verb == "DATA"]
    other = [i for i, c in enumerate(cases) if c.verb != "DATA"]
    results: list[Outcome | None] = [None] * len(cases)
    for i, outcome in zip(other, sandbox.run([cases[i] for i in other], workers=4), strict=True):
        results[i] = outcome
    for i, outcome in zip(data, run_data(sandbox, [cases[i] for i in data]), strict=True):
        results[i] = outcome
    return [r for r in results if r is not None]


def run_data(sandbox: Sandbox, cases: Sequence[Case], workers: int = 4) -> list[Outcome]:
    """MAIL, RCPT, DATA, an empty message: the first refusal, or the end-of-data reply."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for index, case in enumerate(cases):
        groups.setdefault(case.session_key(), []).append(index)
    results: list[Outcome | None] = [None] * len(cases)

    def session(indexes: list[int]) -> None:
        client = None
        try:
            for index in indexes:
                case = cases[index]
                if client is None or not client.connected:
                    client, refused = sandbox._open(case)
                    if refused is not None:
                        results[index] = refused
                        client = None
                        continue
                assert client is not None
                results[index] = _data_case(client, case)
        finally:
            if client is not None:
                client.quit()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(session, g) for g in groups.values()]:
            future.result()
    return [r for r in results if r is not None]


def _data_case(client: SmtpClient, case: Case) -> Outcome:
    outcome = None
    mail = client.command(f"MAIL FROM:<{case.sender}>")
    if not mail.positive:
        outcome = Outcome("mail", mail.code, mail.text)
    else:
        rcpt = client.command(f"RCPT TO:<{case.recipient}>")
        if not rcpt.positive:
            outcome = Outcome("rcpt", rcpt.code, rcpt.text)
        else:
            data = client.command("DATA")
            if data.code != 354:
                outcome = Outcome("data", data.code, data.text)
            else:
                end = client.command(".")
                outcome = Outcome("end-of-data", end.code, end.text)
    if outcome.code == 421:
        client.close()
    else:
        client.command("RSET")
    return outcome


@functools.lru_cache(maxsize=1)
def tls_files() -> dict[str, str]:
    """A self-signed certificate and key for the instances (openssl, once per run)."""
    directory = Path(tempfile.mkdtemp(prefix="postharden-access-tls-"))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mx.example.com", "-keyout", str(directory / "key.pem"),
         "-out", str(directory / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return {
        "cert.pem": (directory / "cert.pem").read_text(),
        "key.pem": (directory / "key.pem").read_text(),
    }


def case_for(query: Query) -> Case:
    c = query.context
    return Case(
        service=query.service,
        # XCLIENT takes an IPv6 address as IPV6:address (Bad ADDR syntax without).
        client_addr=f"IPV6:{c.address}" if ":" in c.address else c.address,
        client_name=c.name or "[UNAVAILABLE]",
        helo=c.helo,
        sasl_login=c.sasl_user,
        sender=c.sender,
        recipient=c.recipient,
        verb=c.verb,
        tls=c.tls,
    )
