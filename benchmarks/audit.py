"""Wall time of `postharden audit --format json` on the bundled examples, next to
`postconf -n` on the same directories in the same run.

Each run is a fresh process (cold: interpreter start, imports, `postconf -d` for the
defaults, the relay analysis, TLS certificate reads, postmap on content tables).
Target: <= 300 ms per configuration.

    .venv/bin/python benchmarks/audit.py [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("weak", "hardened", "runbook", "checklist")
TARGET_MS = 300.0


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall time of one run, in ms, and its exit code.

    Waits with a blocking wait4(), not `subprocess.run(timeout=...)`: with a timeout,
    Popen.wait polls with sleeps that grow to 50 ms, which rounds every measurement up to
    the next poll (up to +50 ms). A watchdog kills a run that hangs past 120 s.
    """
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        _pid, status, _usage = os.wait4(process.pid, 0)
    finally:
        watchdog.cancel()
    elapsed = (time.perf_counter() - start) * 1000
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return elapsed, process.returncode


def prepare(name: str, base: Path) -> Path:
    target = base / name
    shutil.copytree(ROOT / "examples" / name, target)
    for pem in target.glob("tls/*.pem"):
        os.chmod(pem, 0o600)
    # Postfix programs pause while main.cf looks freshly written; a real one is not.
    then = time.time() - 3600
    for path in target.rglob("*"):
        os.utime(path, (then, then))
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    postconf = shutil.which("postconf") or "/usr/sbin/postconf"
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        # An installed package has its bytecode compiled; a checkout run with
        # PYTHONDONTWRITEBYTECODE recompiles every module on every start. Measure the
        # installed situation without writing into the source tree.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        for name in EXAMPLES:
            directory = prepare(name, Path(tmp))
            audit = [
                sys.executable,
                "-m",
                "postharden",
                "audit",
                "--config-dir",
                str(directory),
                "--format",
                "json",
            ]
            timed(audit, env)  # compile bytecode, warm the page cache; each run is a new process
            audit_ms: list[float] = []
            postconf_ms: list[float] = []
            codes: set[int] = set()
            postconf_codes: set[int] = set()
            for _ in range(args.runs):
                ms, code = timed(audit, env)
                audit_ms.append(ms)
                codes.add(code)
                if os.access(postconf, os.X_OK):
                    ms, code = timed([postconf, "-c", str(directory), "-n"])
                    postconf_ms.append(ms)
                    postconf_codes.add(code)
            results.append(
                {
                    "config": name,
                    "load_average": round(os.getloadavg()[0], 2),
                    "audit_ms_median": round(statistics.median(audit_ms), 1),
                    "audit_ms_max": round(max(audit_ms), 1),
                    "audit_exit_codes": sorted(codes),
                    "postconf_n_ms_median": round(statistics.median(postconf_ms), 1)
                    if postconf_ms
                    else None,
                    "postconf_exit_codes": sorted(postconf_codes),
                    "within_target": statistics.median(audit_ms) <= TARGET_MS,
                }
            )
    if args.json:
        print(json.dumps({"target_ms": TARGET_MS, "runs": args.runs, "results": results}, indent=2))
    else:
        print(f"{'config':<10} {'audit median':>13} {'audit max':>10} {'postconf -n':>12}  exit")
        for r in results:
            pc = f"{r['postconf_n_ms_median']:.1f} ms" if r["postconf_n_ms_median"] else "-"
            print(
                f"{r['config']:<10} {r['audit_ms_median']:>10.1f} ms {r['audit_ms_max']:>7.1f} ms "
                f"{pc:>12}  audit {r['audit_exit_codes']} postconf {r['postconf_exit_codes']}"
            )
        print(f"target: <= {TARGET_MS:.0f} ms per configuration (cold, including TLS checks)")
    return 0 if all(r["within_target"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
