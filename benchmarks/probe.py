"""Wall time of `postharden probe` (without and with --tls) against a loopback Postfix,
next to the same relay forms sent by a plain sequential smtplib script in the same run,
and of `postharden verify` for a 3-service configuration (Postfix start and stop included).

Each postharden run is a fresh process (cold start). Targets: probe <= 3 s without TLS,
<= 20 s with the TLS scan; verify <= 8 s. Needs root and Postfix.

    .venv/bin/python benchmarks/probe.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postharden.probe.relay import relay_forms
from postharden.sandbox import MINIMAL_MASTER_CF, Sandbox, postfix_available

TARGETS = {"probe": 3.0, "probe --tls": 20.0, "verify (3 services)": 8.0}
MAIN = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination = $myhostname, localhost
mynetworks = 127.0.0.2/32
alias_maps =
local_recipient_maps =
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_security_level = may
smtpd_tls_cert_file = $config_directory/cert.pem
smtpd_tls_key_file = $config_directory/key.pem
"""
MASTER = (
    MINIMAL_MASTER_CF.split("\n", 1)[0]
    + "\nsubmission inet n - n - - smtpd\n  -o smtpd_sasl_auth_enable=yes\n"
    + "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
    + "smtps inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n"
    + "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
    + MINIMAL_MASTER_CF.split("\n", 1)[1]
)


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - start


def plain_script(port: int) -> float:
    """The relay forms, one smtplib session each, judged at RCPT: the naive baseline."""
    start = time.perf_counter()
    for form in relay_forms(
        server_name="mx.example.com",
        server_ip="127.0.0.1",
        local_domain="example.com",
        foreign_domain="example.net",
        local_part="relaytest",
    ):
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.ehlo("probe.example")
            client.mail(form.sender)
            client.rcpt(form.recipient)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reason = postfix_available()
    if reason:
        print(f"benchmark skipped: {reason}", file=sys.stderr)
        return 3
    postharden = [sys.executable, "-m", "postharden"]
    times: dict[str, list[float]] = {name: [] for name in (*TARGETS, "plain smtplib relay forms")}
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", str(config / "key.pem"), "-out", str(config / "cert.pem"),
             "-days", "30", "-subj", "/CN=mx.example.com"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        (config / "main.cf").write_text(MAIN)
        (config / "master.cf").write_text(MASTER)
        files = {name: (config / name).read_text() for name in ("cert.pem", "key.pem")}
        with Sandbox(MAIN, files=files, authorize_xclient=False) as sandbox:
            target = f"127.0.0.1:{sandbox.port()}"
            for _ in range(args.runs):
                times["probe"].append(timed([*postharden, "probe", target, "--format", "json"]))
                times["plain smtplib relay forms"].append(plain_script(sandbox.port()))
                times["probe --tls"].append(
                    timed([*postharden, "probe", target, "--tls", "--format", "json"])
                )
        for _ in range(args.runs):
            times["verify (3 services)"].append(
                timed([*postharden, "verify", "--config-dir", str(config), "--format", "json"])
            )
    result = {
        name: {
            "median_s": round(statistics.median(values), 3),
            "max_s": round(max(values), 3),
            "target_s": TARGETS.get(name),
        }
        for name, values in times.items()
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, row in result.items():
            target = f"(target <= {row['target_s']} s)" if row["target_s"] else ""
            print(
                f"{name:<28} median {row['median_s']:>7.3f} s  max {row['max_s']:>7.3f} s {target}"
            )
    over = [n for n, row in result.items() if row["target_s"] and row["median_s"] > row["target_s"]]
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
