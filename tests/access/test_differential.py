"""The engine against the real Postfix: same command, same reply code, every case.

Random configurations (tests/access/corpus.py) run in throw-away Postfix instances (one
instance carries a dozen smtpd services, each a configuration of its own through `-o`);
each case is asked of the real smtpd through XCLIENT and of the engine. Fixed seeds.

The generator covers STARTTLS (self-signed certificate; smtpd_tls_auth_only, encrypt,
reject_plaintext_session, permit_tls_clientcerts), the verbs RCPT, VRFY, EXPN, ETRN and
DATA (with smtpd_etrn/data/end_of_data_restrictions), and IPv6 clients, mynetworks and
cidr entries; _check asserts that each of them was really exercised.
"""

from __future__ import annotations

from collections import Counter

import pytest

from postharden.sandbox import postfix_available

from .realpostfix import Comparison, compare

pytestmark = [
    pytest.mark.postfix,
    pytest.mark.root,
    pytest.mark.skipif(bool(postfix_available()), reason=str(postfix_available())),
]


def _check(results: list[Comparison]) -> None:
    bad = [r for r in results if not r.agrees]
    summary = Counter(
        (r.expected.command, r.expected.code, r.actual.command, r.actual.code) for r in bad
    )
    assert not bad, (
        f"{len(bad)} of {len(results)} cases disagree with the real Postfix: "
        f"{summary.most_common(5)}\n" + "\n".join(r.describe() for r in bad[:5])
    )
    # The corpus must exercise every kind of answer, or agreement proves little.
    kinds = Counter(r.expected.decision for r in results)
    commands = Counter(r.expected.command for r in results if r.expected.code)
    assert kinds["accept"] and kinds["reject"] and kinds["defer"], kinds
    assert commands["rcpt"] and commands["mail"], commands
    sasl_permits = sum(
        1
        for r in results
        if any(
            s.restriction == "permit_sasl_authenticated" and s.result == "permit"
            for s in r.expected.trace
        )
    )
    access_permits = sum(
        1
        for r in results
        if any(s.result == "permit" and " -> " in s.detail for s in r.expected.trace)
    )
    assert sasl_permits and access_permits, (sasl_permits, access_permits)
    # The new dimensions must be exercised, each with more than one kind of answer.
    by_verb: dict[str, Counter[tuple[str, int]]] = {}
    for r in results:
        by_verb.setdefault(r.query.context.verb, Counter())[
            (r.expected.command, r.expected.code)
        ] += 1
    for verb in ("RCPT", "VRFY", "ETRN", "DATA"):
        assert len(by_verb.get(verb, ())) >= 3, (verb, by_verb.get(verb))
    assert by_verb.get("EXPN"), by_verb
    vrfy = by_verb["VRFY"]
    assert vrfy[("vrfy", 502)] and (vrfy[("vrfy", 252)] or vrfy[("vrfy", 550)]), vrfy
    assert any(code in (250, 459) for command, code in by_verb["ETRN"] if command == "etrn")
    assert sum(1 for r in results if r.expected.code == 530) or len(results) < 1000
    assert by_verb["DATA"][("end-of-data", 250)], by_verb["DATA"]

    def has(r: Comparison, restriction: str, result: str) -> bool:
        return any(s.restriction == restriction and s.result == result for s in r.expected.trace)

    tls = [r for r in results if r.query.context.tls]
    ipv6 = [r for r in results if ":" in r.query.context.address]
    wanted = {
        "SASL permit after STARTTLS": any(
            has(r, "permit_sasl_authenticated", "permit") for r in tls
        ),
        "SASL refused on plaintext (smtpd_tls_auth_only)": any(
            has(r, "smtpd_tls_auth_only", "skipped") for r in results
        ),
        "reject_plaintext_session rejects": any(
            has(r, "reject_plaintext_session", "defer") for r in results
        ),
        "reject_plaintext_session passes TLS": any(
            has(r, "reject_plaintext_session", "dunno") for r in tls
        ),
        "IPv6 client in mynetworks": any(has(r, "permit_mynetworks", "permit") for r in ipv6),
        "IPv6 client rejected": any(r.expected.decision == "reject" for r in ipv6),
    }
    missing = [name for name, seen in wanted.items() if not seen]
    assert not missing, missing


def test_engine_agrees_with_postfix_fast() -> None:
    results = compare(seed=20240601, instances=1, services=12, cases=720)
    assert len(results) >= 700
    _check(results)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_engine_agrees_with_postfix_slow(seed: int) -> None:
    results = compare(seed=seed * 7919, instances=1, services=16, cases=1600)
    assert len(results) >= 1500
    unavailable = sum(1 for r in results if r.expected.decision == "unavailable")
    assert unavailable < len(results)
    _check(results)
