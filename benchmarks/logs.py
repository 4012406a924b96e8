"""Benchmark `postharden logs` against pflogsumm and `grep -c 'reject:'` on one generated log.

    .venv/bin/python benchmarks/logs.py [--size-mb 1024] [--dir DIR] [--keep] [--log PATH]

The log is generated from real Postfix lines (the public corpora in ../shared/data and
lines recorded from Postfix 3.7 in the real-Postfix tests) with varied client addresses,
queue IDs and monotonically increasing timestamps. Each tool runs on the same file (page
cache warmed first); throughput is MB/s of the file, peak memory is the summed RSS of the
process and its children, sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "shared/data/postfix-logs"

# Recorded from Postfix 3.7.11 (tests/logs/test_logs_real_postfix.py), message part only.
RECORDED = """\
postfix/smtpd|connect from unknown[{ip}]
postfix/smtpd|{qid}: client=unknown[{ip}]
postfix/cleanup|{qid}: message-id=<{qid}@mx.example.test>
postfix/qmgr|{qid}: from=<user{n}@example.test>, size={size}, nrcpt=1 (queue active)
postfix/smtp|{qid}: to=<friend{n}@remote.test>, relay=127.0.0.1[127.0.0.1]:2525, delay=0.05, delays=0.01/0.01/0.01/0.02, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {qid2})
postfix/qmgr|{qid}: removed
postfix/smtpd|disconnect from unknown[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5
postfix/smtpd|connect from unknown[{ip}]
postfix/smtpd|NOQUEUE: reject: RCPT from relay.example[{ip}]: 554 5.7.1 <x{n}@other.test>: Relay access denied; from=<a@b.test> to=<x{n}@other.test> proto=ESMTP helo=<client.test>
postfix/smtpd|disconnect from relay.example[{ip}] ehlo=2 mail=1 rcpt=0/2 quit=1 commands=4/6
postfix/smtpd|connect from unknown[{ip}]
postfix/smtpd|warning: bot.example[{ip}]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=admin
postfix/smtpd|disconnect from bot.example[{ip}] ehlo=2 auth=0/1 quit=1 commands=3/4
postfix/smtpd|NOQUEUE: reject: RCPT from harvest.example[{ip}]: 550 5.1.1 <nosuch{n}@example.test>: Recipient address rejected: User unknown in local recipient table; from=<x@spam.test> to=<nosuch{n}@example.test> proto=ESMTP helo=<client.test>
postfix/smtpd|Anonymous TLS connection established from tls.example[{ip}]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256
postfix/smtpd|{qid}: client=carol.example[{ip}], sasl_method=PLAIN, sasl_username=user{n}
postfix/smtp|{qid}: to=<z{n}@defer.test>, relay=none, delay=0.05, delays=0.03/0.01/0/0, dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:46437: Connection refused)
"""

_IP = re.compile(r"\[\d{1,3}(?:\.\d{1,3}){3}\]")
_HEADER = re.compile(
    r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+) \S+ ([^\s\[]+)\[\d+\]: (.*)$"
)


def templates() -> list[tuple[str, str]]:
    out = [tuple(line.split("|", 1)) for line in RECORDED.splitlines()]
    if CORPUS.is_dir():
        for f in sorted([*CORPUS.glob("*.log"), *CORPUS.glob("fail2ban_postfix*")]):
            for line in f.read_text(errors="replace").splitlines():
                m = _HEADER.match(line)
                if m and m.group(1).startswith("postfix"):
                    out.append(
                        (
                            m.group(1),
                            _IP.sub("[{ip}]", m.group(2).replace("{", "(").replace("}", ")")),
                        )
                    )
    return out  # type: ignore[return-value]


def generate(path: Path, size: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    tmpl = templates()
    recorded = len(RECORDED.splitlines())
    # Mostly the recorded 3.7 dialogue (normal traffic + attacks), plus every corpus line.
    weights = [40] * recorded + [1] * (len(tmpl) - recorded)
    ips = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(20000)
    ]
    hexdigits = "0123456789ABCDEF"
    t = time.mktime((2025, 3, 1, 0, 0, 0, 0, 0, -1))
    written = 0
    with path.open("w") as fh:
        while written < size:
            batch = []
            for _ in range(20000):
                prog, msg = rng.choices(tmpl, weights)[0]
                qid = "".join(rng.choices(hexdigits, k=10))
                text = (
                    msg.format(
                        ip=rng.choice(ips),
                        qid=qid,
                        qid2=qid[::-1],
                        n=rng.randrange(5000),
                        size=rng.randrange(500, 90000),
                    )
                    if "{" in msg
                    else msg
                )
                t += 0.01
                stamp = time.strftime("%b %e %H:%M:%S", time.localtime(t))
                batch.append(f"{stamp} mx {prog}[{rng.randrange(1000, 60000)}]: {text}\n")
            chunk = "".join(batch)
            fh.write(chunk)
            written += len(chunk)


def measure(argv: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, float, bytes]:
    """-> (seconds, peak RSS MiB of the process tree, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()
    out: list[bytes] = []

    def reader() -> None:
        assert proc.stdout is not None
        out.append(proc.stdout.read())
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    done.wait(30)
    if proc.returncode not in (0, 1):
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err[:500]}")
    return elapsed, peak / 1024, out[0] if out else b""


def tree_rss(root: int) -> int:
    """Summed VmRSS (KiB) of ROOT and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                ppid = vm = 0
                for line in fh:
                    if line.startswith("PPid:"):
                        ppid = int(line.split()[1])
                    elif line.startswith("VmRSS:"):
                        vm = int(line.split()[1])
        except (OSError, ValueError):
            continue
        pid = int(entry)
        rss[pid] = vm
        children.setdefault(ppid, []).append(pid)
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=int, default=1024, help="log size in MB (default 1024)")
    ap.add_argument("--dir", type=Path, help="where to write the log (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated log")
    ap.add_argument(
        "--log", type=Path, help="use this log (generated there first if it does not exist)"
    )
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="postharden-bench-", dir=args.dir))
    log = args.log or workdir / "mail.log"
    try:
        t0 = time.perf_counter()
        if not log.exists():
            generate(log, args.size_mb * 1_000_000)
            print(f"generated in {time.perf_counter() - t0:.0f}s: {log}")
        size_mb = log.stat().st_size / 1e6
        print(f"log: {log} ({size_mb:.0f} MB)")
        from postharden.logs import scan

        print(f"postharden fast path: {scan.ENGINE} (POSTHARDEN_LOGS_ENGINE=c|regex)")
        subprocess.run(["cat", str(log)], stdout=subprocess.DEVNULL, check=True)  # warm the cache
        postharden = [sys.executable, "-m", "postharden", "logs", "--format", "json", str(log)]
        rows = []
        for name, argv in (
            ("grep -c 'reject:'", ["grep", "-c", "reject:", str(log)]),
            ("postharden logs --format json", postharden),
            ("pflogsumm", [shutil.which("pflogsumm") or "pflogsumm", str(log)]),
        ):
            if argv[0] == "pflogsumm" and not shutil.which("pflogsumm"):
                print("pflogsumm not installed: skipped")
                continue
            seconds, peak, out = measure(argv)
            rows.append((name, seconds, size_mb / seconds, peak))
            if name == "grep -c 'reject:'":
                grep_count = int(out.decode().strip() or 0)
            if name.startswith("postharden"):
                import json

                report = json.loads(out)
                print(
                    f"postharden: {report['rejects']['total']} rejects, "
                    f"{report['lines']['total']} lines, {report['lines']['unparsed']} unparsed "
                    f"(grep -c reject: {grep_count})"
                )
        print(f"\n{'tool':32} {'seconds':>8} {'MB/s':>8} {'peak MiB':>9}")
        for name, seconds, rate, peak in rows:
            print(f"{name:32} {seconds:8.2f} {rate:8.1f} {peak:9.1f}")
        rates = {name: rate for name, _s, rate, _p in rows}
        ours = rates["postharden logs --format json"]
        grep_rate = rates["grep -c 'reject:'"]
        print(f"\npostharden / grep -c  = {ours / grep_rate:.2f} (target >= 0.25)")
        if "pflogsumm" in rates:
            print(f"postharden / pflogsumm = {ours / rates['pflogsumm']:.1f}x (target >= 10x)")
        peak_ours = next(p for n, _s, _r, p in rows if n.startswith("postharden"))
        print(f"postharden peak memory = {peak_ours:.0f} MiB (target <= 200)")
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
