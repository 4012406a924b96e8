"""`postharden watch FILE`: follow a Postfix log and alert on brute force, relay attempts,
policy outages, compromised accounts and fatal errors."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "watch",
        help="follow a Postfix log and raise alerts",
        description="Follow a Postfix log across rotation (like tail -F), keep sliding-window "
        "counters and raise each alert once per window. State (--state) makes a restart "
        "neither repeat nor lose alerts.",
    )
    p.add_argument("file", metavar="FILE", help="the log to follow")
    p.add_argument("--state", metavar="FILE", help="JSON file for position, windows and alerts")
    p.add_argument("--alert-mail", metavar="ADDR", help="mail alerts through the local sendmail")
    p.add_argument(
        "--sendmail",
        default="/usr/sbin/sendmail",
        metavar="CMD",
        help="sendmail command (default: %(default)s)",
    )
    p.add_argument("--alert-webhook", metavar="URL", help="POST each alert as JSON to URL")
    p.add_argument(
        "--alert-command", metavar="CMD", help="run CMD (sh -c) per alert, alert JSON on stdin"
    )
    p.add_argument("--thresholds", metavar="FILE", help="TOML or JSON file of thresholds")
    p.add_argument(
        "--blocklist",
        choices=("plain", "nft", "access"),
        help="also output the brute-force sources in this format",
    )
    p.add_argument(
        "--blocklist-file",
        metavar="FILE",
        help="write the blocklist here (atomically) instead of stdout",
    )
    p.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds")
    p.add_argument(
        "--once",
        action="store_true",
        help="process what is in the log now and exit (cron); exit 1 if alerts",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="how alerts are printed on stdout (default: %(default)s)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time
    from pathlib import Path

    from postharden.errors import EXIT_FINDINGS, EXIT_OK, UsageError
    from postharden.logs.thresholds import load_thresholds
    from postharden.logs.watch import Alert, Notifier, Watcher, atomic_write, render_blocklist

    if args.blocklist_file and not args.blocklist:
        raise UsageError("--blocklist-file needs --blocklist FORMAT")
    if args.interval <= 0:
        raise UsageError("--interval must be positive")

    def emit(alert: Alert) -> None:
        if args.format == "json":
            print(json.dumps(alert.as_json()), flush=True)
        else:
            print(f"ALERT [{alert.kind}] {alert.detail}", flush=True)

    def warn(message: str) -> None:
        print(f"postharden watch: warning: {message}", file=sys.stderr, flush=True)

    notifier = Notifier(
        args.alert_mail, args.sendmail, args.alert_webhook, args.alert_command, warn=warn
    )
    watcher = Watcher(
        Path(args.file),
        load_thresholds(Path(args.thresholds) if args.thresholds else None),
        Path(args.state) if args.state else None,
        notifier,
        emit,
    )
    raised = 0
    previous: list[str] | None = None
    while True:
        raised += len(watcher.step())
        if args.blocklist:
            current = watcher.blocklist()
            if current != previous:
                text = render_blocklist(current, args.blocklist)
                if args.blocklist_file:
                    atomic_write(Path(args.blocklist_file), text)
                elif args.once:
                    pass  # printed once at the end
                else:
                    sys.stdout.write(text)
                    sys.stdout.flush()
                previous = current
        if args.once:
            if args.blocklist and not args.blocklist_file:
                sys.stdout.write(render_blocklist(previous or [], args.blocklist))
            return EXIT_FINDINGS if raised else EXIT_OK
        time.sleep(args.interval)
