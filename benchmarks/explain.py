"""Benchmark: engine decisions per second vs the real Postfix through XCLIENT, and
`relay` on a 5-service configuration.

    .venv/bin/python benchmarks/explain.py [--cases 10000] [--postfix-cases 2000]

Targets: >= 20,000 decisions/s (batch, in-process) and relay < 200 ms for 5 services.
The real Postfix's rate is measured in the same run on the same kind of cases (one
throw-away instance on loopback, sessions shared per client, 4 parallel sessions); the
first --postfix-cases of the corpus are also compared for agreement.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.access.corpus import random_queries  # noqa: E402
from tests.access.realpostfix import case_for, running, vetted_instance  # noqa: E402

from postharden.access import Engine, analyze_relay  # noqa: E402
from postharden.config import load_config  # noqa: E402

RELAY_MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination = $myhostname, example.com
relay_domains = relay.example
alias_maps =
mynetworks = 127.0.0.0/8, 10.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    check_client_access cidr:$config_directory/clients.cidr, reject_unauth_destination
smtpd_recipient_restrictions = check_sender_access texthash:$config_directory/senders,
    reject_unlisted_recipient
"""
RELAY_MASTER = """\
smtp inet n - n - - smtpd
submission inet n - n - - smtpd
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
smtps inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
2525 inet n - n - - smtpd
  -o mynetworks=0.0.0.0/0
127.0.0.1:10025 inet n - n - - smtpd
  -o smtpd_relay_restrictions=permit_mynetworks,permit,reject_unauth_destination
"""


def bench_relay() -> float:
    directory = Path(tempfile.mkdtemp(prefix="postharden-bench-relay-"))
    (directory / "main.cf").write_text(RELAY_MAIN)
    (directory / "master.cf").write_text(RELAY_MASTER)
    (directory / "clients.cidr").write_text("198.51.100.0/24 OK\n192.0.2.0/24 REJECT\n")
    (directory / "senders").write_text("example.com OK\nspam.example REJECT\n")
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        config = load_config(directory)
        report = analyze_relay(config)
        best = min(best, time.perf_counter() - start)
    assert len(report.services) == 5
    for service in report.services:
        print(f"  {service.service}: {service.summary}")
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--postfix-cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=4242)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    instance = vetted_instance(rng, 12)
    queries = random_queries(rng, instance.services, args.cases)
    with running(instance) as (sandbox, engine, keys):
        config = engine.config
        fresh = Engine(config)  # compile time counts
        start, cpu_start = time.perf_counter(), time.process_time()
        decisions = [fresh.decide(keys[q.service], q.context) for q in queries]
        engine_seconds = time.perf_counter() - start
        engine_cpu = time.process_time() - cpu_start
        sample = queries[: args.postfix_cases]
        start = time.perf_counter()
        outcomes = sandbox.run([case_for(q) for q in sample], workers=4)
        postfix_seconds = time.perf_counter() - start
    agree = sum(
        1
        for d, o in zip(decisions, outcomes, strict=False)
        if (d.decision == "unavailable" and not o.available)
        or (o.available and (d.command, d.code) == (o.command, o.code))
    )
    engine_rate = len(queries) / engine_seconds
    postfix_rate = len(sample) / postfix_seconds
    print(
        f"engine:  {len(queries)} decisions in {engine_seconds:.3f} s = {engine_rate:,.0f}/s "
        f"({len(queries) / engine_cpu:,.0f}/s of CPU time; os.getloadavg() = "
        f"{os.getloadavg()[0]:.1f})"
    )
    print(f"postfix: {len(sample)} decisions in {postfix_seconds:.3f} s = {postfix_rate:,.0f}/s")
    print(f"agreement on the postfix sample: {agree}/{len(sample)}")
    relay_seconds = bench_relay()
    print(f"relay, 5 services, in-process: {relay_seconds * 1000:.1f} ms (best of 5)")
    ok = engine_rate >= 20_000 and relay_seconds < 0.2 and agree == len(sample)
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
