"""`postharden relay`: per smtpd service, who can relay, and the way in."""

from __future__ import annotations

import argparse

from postharden.commands._common import add_config_dir, add_defaults, add_format, emit
from postharden.errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNEVALUATED


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "relay",
        help="find every relay path per smtpd service: closed, OPEN (with the path) or unavailable",
        description=(
            "For every smtpd service in master.cf, decide what Postfix answers each client "
            "class (outside, mynetworks, SASL-authenticated, networks and names that access "
            "maps or mynetworks single out) for each destination class (local, virtual, "
            "relay_domains, foreign), and give one verdict per service: closed, OPEN with "
            "the shortest path and its file:line, or unavailable (smtpd refuses to run). "
            "Flags the runbook's relay risks."
        ),
    )
    add_config_dir(parser)
    add_defaults(parser)
    parser.add_argument(
        "--service", action="append", metavar="NAME", help="only this smtpd service (repeatable)"
    )
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.access import analyze_relay
    from postharden.access.model import RelayReport
    from postharden.config import load_config
    from postharden.report.access import render_relay_json, render_relay_text

    config = load_config(args.config_dir, args.defaults)
    report = analyze_relay(config)
    if args.service:
        from postharden.access import AccessError

        wanted = set()
        for name in args.service:
            try:
                wanted.add(config.service(name).key)
            except Exception as error:  # ConfigError: unknown or ambiguous name
                raise AccessError(str(error)) from None
        report = RelayReport(
            report.config_dir,
            report.postfix_version,
            tuple(s for s in report.services if s.service in wanted),
        )
    render = render_relay_json if args.format == "json" else render_relay_text
    emit(render(report))
    if any(s.verdict in ("open", "unavailable") for s in report.services):
        return EXIT_FINDINGS
    if any(s.verdict == "depends" for s in report.services):
        return EXIT_UNEVALUATED
    return EXIT_OK
