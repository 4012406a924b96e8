"""DNS-dependent restrictions: the engine against the real Postfix, with a random DNS.

Each run builds a random zone (clients with and without PTR, forward-confirmed or forged,
temporary failures; RBL and DNSWL listings with return codes and TXT; HELO names and sender
domains with A, MX only, nothing, or SERVFAIL) and an instance whose smtpd services mix
RBLs, reject_unknown_* and permit_dnswl_client with the other restrictions through `-o`.
The sandbox runs in DNS-isolated mode: Postfix resolves through the stub serving that
zone, in its own mount namespace.

Vantage points: most cases connect from a 127.54.x.y address without XCLIENT, so smtpd
does its own reverse lookup and RBL query of that address; the rest impersonate an
outside address with XCLIENT (NAME given or [UNAVAILABLE]/[TEMPUNAVAIL] not used by the
engine's ClientContext: only verified names or unknown).

Two claims per case: the plain engine's outcome set (its decision plus each outside
answer's other outcome) contains the real answer whenever at most one DNS answer is "yes"
and none is a temporary failure (the set flips one answer at a time),
and the engine with the zone as oracle (postharden.access.dns.DnsEngine) gives exactly
the real command and code.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from postharden.access import ClientContext, Decision, Engine
from postharden.access.dns import DnsEngine, client_names
from postharden.config import load_config
from postharden.sandbox import MINIMAL_MASTER_CF, Case, Outcome, Sandbox, postfix_available
from postharden.sandbox.dns import Zone, reverse_name

pytestmark = [
    pytest.mark.postfix,
    pytest.mark.root,
    pytest.mark.skipif(bool(postfix_available()), reason=str(postfix_available())),
]

MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
relay_domains = relay.example
mynetworks = 127.0.0.1/32 192.0.2.0/24
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
unknown_client_reject_code = {unknown_client_code}
unknown_address_reject_code = {unknown_address_code}
unknown_hostname_reject_code = {unknown_hostname_code}
"""

DNS_CLIENT = [
    "reject_unknown_client_hostname",
    "reject_unknown_reverse_client_hostname",
    "reject_rbl_client,rbl.test",
    "reject_rbl_client,rbl.test=127.0.0.[2..3]",
    "reject_rbl_client,rbl2.test=127.0.0.4",
    "permit_dnswl_client,dnswl.test",
    "reject_rhsbl_client,rhsbl.test",
]
DNS_HELO = ["reject_unknown_helo_hostname", "reject_rhsbl_helo,rhsbl.test"]
DNS_SENDER = ["reject_unknown_sender_domain", "reject_rhsbl_sender,rhsbl.test"]
DNS_RCPT = ["reject_unknown_recipient_domain"]
OTHER = [
    "permit_mynetworks",
    "reject_non_fqdn_sender",
    "reject_invalid_helo_hostname",
    "defer_if_permit",
    "warn_if_reject",
    "permit",
    "reject",
    "reject_unauth_destination",
    "permit_auth_destination",
]

HELOS = ["h-ok.example.net", "h-mx.example.net", "h-none.example.net", "h-fail.example.net",
         "h-listed.example.net"]  # fmt: skip
SENDER_DOMAINS = ["s-mx.example", "s-a.example", "s-none.example", "s-fail.example",
                  "s-listed.example"]  # fmt: skip
RECIPIENTS = ["user@mx.example.com", "user@relay.example", "x@s-mx.example",
              "x@s-none.example", "x@s-fail.example"]  # fmt: skip
RELAY_DOMAIN = "relay.example"
XCLIENT_ADDRS = ["203.0.113.9", "203.0.113.10", "198.51.100.7", "192.0.2.44"]


def _reversed(address: str) -> str:
    return ".".join(reversed(address.split(".")))


def random_zone(rng: random.Random, peers: list[str]) -> Zone:
    records: dict[str, dict[str, list[str]]] = {}
    servfail: list[str] = []

    def add(name: str, rrtype: str, value: str) -> None:
        records.setdefault(name, {}).setdefault(rrtype, []).append(value)

    for index, peer in enumerate(peers):
        kind = rng.choice(["confirmed", "confirmed", "none", "forged", "ptr-fail", "a-fail"])
        name = f"c{index}.clients.example"
        if kind in ("confirmed", "forged", "a-fail"):
            add(reverse_name(peer), "PTR", name)
        if kind == "confirmed":
            add(name, "A", peer)
        elif kind == "forged":
            add(name, "A", "192.0.2.200")
        elif kind == "a-fail":
            servfail.append(name)
        elif kind == "ptr-fail":
            servfail.append(reverse_name(peer))
    for address in peers + XCLIENT_ADDRS:
        for rbl, codes in (("rbl.test", ["127.0.0.2", "127.0.0.4"]), ("rbl2.test", ["127.0.0.4"]),
                           ("dnswl.test", ["127.0.5.1"])):  # fmt: skip
            roll = rng.random()
            query = f"{_reversed(address)}.{rbl}"
            if roll < 0.35:
                add(query, "A", rng.choice(codes))
                add(query, "TXT", f"{rbl} lists {address}")
            elif roll < 0.45:
                servfail.append(query)
    for helo in HELOS:
        if helo.startswith("h-ok"):
            add(helo, "A", "192.0.2.10")
        elif helo.startswith("h-mx"):
            add(helo, "MX", "10 mx.example.net")
        elif helo.startswith("h-fail"):
            servfail.append(helo)
        elif helo.startswith("h-listed"):
            add(helo, "A", "192.0.2.11")
            add(f"{helo}.rhsbl.test", "A", "127.0.0.2")
    for domain in SENDER_DOMAINS:
        if domain.startswith("s-mx"):
            add(domain, "MX", "10 mx.s-mx.example")
        elif domain.startswith("s-a"):
            add(domain, "A", "192.0.2.12")
        elif domain.startswith("s-fail"):
            servfail.append(domain)
        elif domain.startswith("s-listed"):
            add(domain, "MX", "10 mx.example.net")
            add(f"{domain}.rhsbl.test", "A", "127.0.0.2")
    listed_client = rng.choice(range(len(peers)))
    add(f"c{listed_client}.clients.example.rhsbl.test", "A", "127.0.0.2")
    return Zone(records, servfail=servfail)


def _restriction_list(rng: random.Random, dns: list[str]) -> str:
    words = rng.sample(dns, rng.randint(1, min(3, len(dns)))) + rng.sample(OTHER, rng.randint(0, 2))
    rng.shuffle(words)
    return ",".join(words)


def random_master(rng: random.Random, services: int) -> tuple[str, list[str]]:
    rows, names = [], []
    for index in range(services):
        name = f"dns{index}"
        options = [
            f"-o smtpd_client_restrictions={_restriction_list(rng, DNS_CLIENT)}",
            f"-o smtpd_helo_restrictions={_restriction_list(rng, DNS_HELO)}",
            f"-o smtpd_sender_restrictions={_restriction_list(rng, DNS_SENDER)}",
            f"-o smtpd_recipient_restrictions={_restriction_list(rng, DNS_RCPT)}",
        ]
        rng.shuffle(options)
        options = options[: rng.randint(1, 4)]
        rows.append(f"{name} inet n - n - - smtpd\n  " + "\n  ".join(options))
        names.append(name)
    daemons = MINIMAL_MASTER_CF.split("\n", 1)[1]
    return "\n".join(rows) + "\n" + daemons, names


@dataclass
class Row:
    case: Case
    plain: Decision
    exact: Decision
    actual: Outcome
    limit: str | None  # what the engine's ClientContext cannot say about this client
    modelled: bool

    @property
    def single_answer(self) -> bool:
        """At most one DNS answer is "yes" and none failed temporarily: a world the plain
        engine's outcome set (its decision and each single outside answer flipped) covers."""
        details = [s.detail for s in self.exact.trace]
        yes = sum(1 for d in details if d.startswith("outside answer:"))
        return yes <= 1 and not any(d.startswith("temporary DNS failure") for d in details)

    @property
    def limited(self) -> bool:
        """The engine's limit matters: a restriction that reads it was evaluated."""
        if self.limit is None:
            return False
        names = ["reverse_client"] + (["unknown_client"] if self.limit == "temporary" else [])
        return any(n in s.restriction for s in self.exact.trace for n in names)

    def describe(self) -> str:
        c = self.case
        trace = "\n".join(
            f"    {s.stage}: {s.restriction} -> {s.result} {s.detail}" for s in self.exact.trace
        )
        return (
            f"{c.service} peer={c.source_addr} addr={c.client_addr} name={c.client_name} "
            f"helo={c.helo} <{c.sender}> -> <{c.recipient}>\n"
            f"  exact engine: {self.exact.command} {self.exact.code} {self.exact.text}\n"
            f"  postfix:      {self.actual.command} {self.actual.code} {self.actual.text}\n" + trace
        )


def run_corpus(seed: int, services: int, cases: int) -> list[Row]:
    rng = random.Random(seed)
    peers = [f"127.54.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}" for _ in range(12)]
    peers = list(dict.fromkeys(peers))
    zone = random_zone(rng, peers)
    codes = {
        "unknown_client_code": rng.choice([450, 550]),
        "unknown_address_code": rng.choice([450, 550]),
        "unknown_hostname_code": rng.choice([450, 550]),
    }
    master, names = random_master(rng, services)
    with Sandbox(MAIN.format(**codes), master, dns=zone, greeting_timeout=30.0) as sandbox:
        config = load_config(sandbox.config_directory)
        keys = {}
        for service in config.smtpd_services():
            if service.listen is not None:
                keys[int(service.listen[1])] = service.key
        plain_engine, exact_engine = Engine(config), DnsEngine(config, zone)
        planned: list[tuple[Case, ClientContext, str, str | None]] = []
        for _ in range(cases):
            service = rng.choice(names)
            helo = rng.choice(HELOS)
            sender = rng.choice(["", f"a@{rng.choice(SENDER_DOMAINS)}"])
            recipient = rng.choice(RECIPIENTS)
            if rng.random() < 0.7:
                peer = rng.choice(peers)
                found = client_names(zone, peer)
                case = Case(service, peer, found.name or "", helo, None, sender, recipient,
                            source_addr=peer)  # fmt: skip
                limit = None
                if "temp" in (found.name_status, found.reverse_status):
                    limit = "temporary"  # smtpd: 450, engine: unknown_client_reject_code
                elif not found.exact:
                    limit = "reverse"  # PTR name kept as reverse name, not verified
            else:
                peer = rng.choice(XCLIENT_ADDRS)
                name = rng.choice([None, "c0.clients.example", "named.example.net"])
                found = None
                case = Case(service, peer, name or "[UNAVAILABLE]", helo, None, sender,
                            recipient)  # fmt: skip
                # XCLIENT NAME=[UNAVAILABLE] leaves smtpd's reverse name (localhost).
                limit = "reverse" if name is None else None
            context = ClientContext(peer, found.name if found else case.client_name
                                    if case.client_name != "[UNAVAILABLE]" else None,
                                    helo, None, sender, recipient)  # fmt: skip
            port = sandbox.ports[service]
            planned.append((case, context, keys[port], limit))
        outcomes = sandbox.run([p[0] for p in planned], workers=4)
    rows = []
    for (case, context, key, limit), actual in zip(planned, outcomes, strict=True):
        exact_engine.unmodelled.clear()
        exact = exact_engine.decide(key, context)
        plain = plain_engine.decide(key, context)
        rows.append(Row(case, plain, exact, actual, limit, not exact_engine.unmodelled))
    return rows


def _outcomes(decision: Decision) -> set[tuple[str, int]]:
    return {(decision.command, decision.code)} | {
        (o.if_yes.command, o.if_yes.code) for o in decision.outside
    }


def _check(rows: list[Row]) -> Counter[str]:
    assert all(r.actual.code is not None for r in rows), [
        r.actual.text for r in rows if r.actual.code is None
    ][:3]
    stats: Counter[str] = Counter()
    contained_bad = [
        r
        for r in rows
        if r.limit is None
        and r.modelled
        and r.single_answer
        and (r.actual.command, r.actual.code) not in _outcomes(r.plain)
        and len(r.plain.outside) < 8
    ]
    exact_rows = [r for r in rows if r.modelled and not r.limited]
    exact_bad = [
        r
        for r in exact_rows
        if (r.exact.command, r.exact.code) != (r.actual.command, r.actual.code)
    ]
    stats["cases"] = len(rows)
    stats["exact_checked"] = len(exact_rows)
    stats["exact_agree"] = len(exact_rows) - len(exact_bad)
    stats["outside_in_plain"] = sum(1 for r in rows if r.plain.outside)
    stats["containment_checked"] = sum(
        1 for r in rows if r.limit is None and r.modelled and r.single_answer
    )
    stats.update(f"actual {r.actual.command} {r.actual.code}" for r in rows)
    summary = Counter(
        (r.exact.command, r.exact.code, r.actual.command, r.actual.code) for r in exact_bad
    )
    assert not exact_bad, (
        f"{len(exact_bad)} of {len(exact_rows)} cases: the DNS-aware engine disagrees with "
        f"the real Postfix: {summary.most_common(6)}\n"
        + "\n".join(r.describe() for r in exact_bad[:4])
    )
    assert not contained_bad, "\n".join(r.describe() for r in contained_bad[:4])
    # The corpus must exercise the DNS answers both ways, or agreement proves little.
    assert stats["outside_in_plain"] > len(rows) // 3, stats
    kinds = Counter(r.actual.code // 100 for r in rows if r.actual.code)
    assert kinds[2] and kinds[4] and kinds[5], kinds
    return stats


def test_dns_restrictions_agree_with_postfix_fast() -> None:
    rows = run_corpus(seed=5353, services=8, cases=320)
    stats = _check(rows)
    assert stats["exact_checked"] >= 250, stats


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dns_restrictions_agree_with_postfix_slow(seed: int) -> None:
    rows = run_corpus(seed=seed * 104729, services=12, cases=900)
    stats = _check(rows)
    assert stats["exact_checked"] >= 700, stats
