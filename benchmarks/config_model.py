"""Benchmark of the configuration model.

    .venv/bin/python benchmarks/config_model.py [--runs N] [--keep DIR]

Generates a configuration with >= 300 main.cf parameters (many with $name references,
conditionals and continuation lines) and >= 40 master.cf services (most with -o
overrides that refer to main.cf), then prints:

- in-process: the time to parse main.cf and master.cf, expand every main.cf setting and
  build every service's effective configuration (every -o expanded in its context), with
  the defaults table already loaded (target <= 20 ms);
- CLI: the wall time of `postharden show --format json` (a cold start: a new Python process
  that also asks the installed postconf for its defaults; target <= 250 ms) next to
  `postconf -n` on the same files, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from postharden.config import load_config, load_defaults
from postharden.config.defaults import find_postfix_tool

IN_PROCESS_TARGET_MS = 20.0
COLD_START_TARGET_MS = 250.0


def generate(directory: Path, parameters: int = 320, services: int = 44) -> None:
    defaults = load_defaults("bundled").values
    builtin = sorted(n for n in defaults if not n.startswith(("process_", "config_")))[:200]
    main: list[str] = [
        "myhostname = bench.example.com",
        "mydomain = example.com",
        "compatibility_level = 3.6",
    ]
    for index, name in enumerate(builtin[: parameters - 120]):
        if name in (
            "myhostname",
            "mydomain",
            "compatibility_level",
            "inet_interfaces",
            "inet_protocols",
            "mynetworks_style",
            "mynetworks",
        ):
            continue
        main.append(f"{name} = {defaults[name] or 'value' + str(index)}")
    for index in range(120):
        name = f"user_list_{index}"
        if index % 4 == 0:
            previous = f"$user_list_{index - 1}" if index else "$mydomain"
            main.append(f"{name} = permit_mynetworks,\n    {previous},")
            main.append("# a comment inside the value\n    reject_unauth_destination")
        elif index % 4 == 1:
            main.append(f"{name} = ${{user_list_{index - 1}?{{$myhostname}}:{{none}}}} $mydomain")
        elif index % 4 == 2:
            main.append(f"{name} = ${{{{$compatibility_level}} <level {{3}} ? {{old}} : {{new}}}}")
        else:
            main.append(f"{name} = $(user_list_{index - 1}) ${{user_list_{index - 2}:x}}")
    main.append("smtpd_restriction_classes = " + ", ".join(f"user_list_{i}" for i in range(120)))
    (directory / "main.cf").write_text("\n".join(main) + "\n")
    master = ["smtp inet n - y - - smtpd"]
    for index in range(services - 1):
        if index % 3 == 0:
            master.append(f"127.0.0.1:{10025 + index} inet n - n - - smtpd")
            master.append(f"  -o smtpd_recipient_restrictions=$user_list_{index % 120}")
            master.append("  -o { smtpd_banner = $myhostname listener with spaces }")
            master.append(f"  -o syslog_name=postfix/l{index}")
            master.append("  -o smtpd_tls_security_level=encrypt")
        elif index % 3 == 1:
            master.append(f"relay{index} unix - - y - - smtp")
            master.append(f"  -o smtp_helo_name=$myhostname -o smtp_bind_address=127.0.0.{index}")
        else:
            master.append(f"pipe{index} unix - n n - - pipe flags=R user=nobody argv=/bin/true")
    (directory / "master.cf").write_text("\n".join(master) + "\n")
    past = time.time() - 60
    for path in directory.iterdir():
        os.utime(path, (past, past))


def in_process(directory: Path, runs: int) -> tuple[float, float, int, int]:
    defaults = load_defaults("auto")
    timings: list[float] = []
    parameters = services = 0
    for _ in range(runs):
        started = time.perf_counter()
        config = load_config(directory, defaults)
        for name in config.main.set_names():
            config.main.expansion(name)
        for service in config.services:
            context = config.effective(service)
            for name in service.overrides_dict():
                context.expansion(name)
        timings.append((time.perf_counter() - started) * 1000)
        parameters, services = len(config.winning), len(config.services)
    return min(timings), statistics.median(timings), parameters, services


def wall(command: list[str], runs: int) -> float:
    """Median wall time of a new process, after one warm-up run.

    The warm-up lets Python write its bytecode caches, as `pip install` does; the
    environment's PYTHONDONTWRITEBYTECODE is dropped for the same reason (with it, every
    run compiles postharden's modules again, ~40 ms more).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, capture_output=True, timeout=60, check=False, env=env)
    timings: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, timeout=60, check=False, env=env)
        timings.append((time.perf_counter() - started) * 1000)
        if completed.returncode != 0:
            raise SystemExit(f"{command}: exit {completed.returncode}: {completed.stderr!r}")
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--keep", type=Path, help="write the generated configuration here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postharden-bench-") as name:
        directory = args.keep or Path(name)
        directory.mkdir(parents=True, exist_ok=True)
        generate(directory)
        best, median, parameters, services = in_process(directory, args.runs)
        print(f"configuration: {parameters} main.cf parameters, {services} services")
        verdict = "ok" if best <= IN_PROCESS_TARGET_MS else "MISSED"
        print(
            f"in-process parse+expand+per-service contexts: min {best:.1f} ms, "
            f"median {median:.1f} ms (target <= {IN_PROCESS_TARGET_MS:.0f} ms: {verdict})"
        )
        show = [
            sys.executable,
            "-m",
            "postharden",
            "show",
            "--config-dir",
            str(directory),
            "--format",
            "json",
        ]
        show_ms = wall(show, max(3, args.runs // 3))
        verdict = "ok" if show_ms <= COLD_START_TARGET_MS else "MISSED"
        print(
            f"postharden show --format json (cold start): median {show_ms:.0f} ms "
            f"(target <= {COLD_START_TARGET_MS:.0f} ms: {verdict})"
        )
        postconf = find_postfix_tool("postconf")
        if postconf is None:
            print("postconf -n: not installed here")
        else:
            postconf_ms = wall([postconf, "-c", str(directory), "-n"], max(3, args.runs // 3))
            print(
                f"postconf -n: median {postconf_ms:.0f} ms; "
                f"ratio show/postconf = {show_ms / postconf_ms:.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
