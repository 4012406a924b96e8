"""`postharden logs FILE...`: the security report of Postfix mail logs."""

from __future__ import annotations

import argparse
import datetime
import re
import time

from postharden.commands._common import add_format, emit

FORMATS = ("text", "json", "html", "prometheus")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "logs",
        help="security report of Postfix mail logs",
        description="Read Postfix logs (plain, .gz, .xz, .bz2, rotated sets in any order, "
        "'-' for stdin, journalctl -o short-iso/json) and report SASL failures, relay "
        "attempts, rejects, TLS errors, policy outages, logins and deliveries.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="log files; '-' reads stdin")
    p.add_argument(
        "--since",
        metavar="TIME",
        help="ISO time (2024-03-22T08:00, optional offset) or an age like 2h, 3d",
    )
    p.add_argument("--until", metavar="TIME", help="same forms as --since (exclusive)")
    p.add_argument("--year", type=int, help="year of the first line for yearless syslog formats")
    p.add_argument("--thresholds", metavar="FILE", help="TOML or JSON file of alert thresholds")
    p.add_argument(
        "--unparsed",
        action="store_true",
        help="list every unparsed Postfix line instead of the report",
    )
    p.add_argument(
        "--exact", action="store_true", help="parse every line (no prefilter); same numbers, slower"
    )
    p.add_argument("--jobs", type=int, default=0, help="worker processes (default: CPUs)")
    add_format(p, FORMATS)
    p.set_defaults(run=run)


_AGE = re.compile(r"^(\d+)([smhdw])$")


def parse_time(value: str | None, option: str) -> float | None:
    from postharden.errors import UsageError

    if value is None:
        return None
    m = _AGE.match(value.strip())
    if m:
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        return time.time() - int(m.group(1)) * scale
    try:
        when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option}: not an ISO time or an age like 2h: {value!r}") from None
    if when.tzinfo is None:
        return time.mktime(when.timetuple()) + when.microsecond / 1e6
    return when.timestamp()


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from postharden.errors import EXIT_FINDINGS, EXIT_OK
    from postharden.logs.analyze import build_report
    from postharden.logs.render import RENDERERS
    from postharden.logs.scan import Window, analyze_paths, list_unparsed
    from postharden.logs.thresholds import load_thresholds

    window = Window(parse_time(args.since, "--since"), parse_time(args.until, "--until"))
    thresholds = load_thresholds(Path(args.thresholds) if args.thresholds else None)
    if args.unparsed:
        for line in list_unparsed(args.files, window=window, year=args.year):
            emit(line)
        return EXIT_OK
    tally, sources = analyze_paths(
        args.files, window=window, year=args.year, exact=args.exact, jobs=args.jobs or None
    )
    report = build_report(tally, thresholds, [s.describe() for s in sources])
    import sys

    for s in sources:
        if s.error:
            print(f"postharden logs: warning: {s.name}: {s.error}", file=sys.stderr)
    emit(RENDERERS[args.format](report))
    return EXIT_FINDINGS if report["alerts"] else EXIT_OK
