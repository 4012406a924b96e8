"""The engine against the real Postfix: same command, same reply code, every case.

Random configurations (tests/access/corpus.py) run in throw-away Postfix instances (one
instance carries a dozen smtpd services, each a configuration of its own through `-o`);
each case is asked of the real smtpd through XCLIENT and of the engine. Fixed seeds.
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
