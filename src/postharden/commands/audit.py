"""`postharden audit`: every declared check on the configuration, with evidence and fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from postharden.commands._common import add_config_dir, add_defaults, add_format, emit

FORMATS = ("text", "json", "sarif", "markdown", "html")
ROLES = ("mx", "submission", "relay-hub", "local-only")
FAIL_ON = ("critical", "high", "medium", "low", "info", "none")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="audit the configuration: every runbook and checklist item, with evidence and fix",
        description=(
            "Run every declared check on main.cf and master.cf (per smtpd service, with its "
            "-o overrides), the files they name and the TLS certificates; report findings "
            "with evidence and the fix as postconf commands, and the runbook's Done criteria "
            "and the checklist items as pass, fail, not applicable or unknown."
        ),
        epilog=(
            "exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; "
            "2 usage or input error; 3 some checks could not be evaluated"
        ),
    )
    add_config_dir(parser)
    add_defaults(parser)
    parser.add_argument(
        "--role", choices=ROLES, help="what the server is for (default: inferred from the services)"
    )
    add_format(parser, FORMATS)
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON,
        default="high",
        help="exit 1 when a finding has this severity or worse (default: %(default)s)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="a previous `audit --format json` report: show only new findings",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="write the report to FILE instead of standard output",
    )
    parser.set_defaults(run=run)


def exit_code_for(report: object, fail_on: str) -> int:
    from postharden.checks import AuditReport, Severity, Status
    from postharden.errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNEVALUATED

    assert isinstance(report, AuditReport)
    if fail_on != "none":
        threshold = Severity(fail_on).rank
        if any(f.severity.rank >= threshold for f in report.findings):
            return EXIT_FINDINGS
    if any(o.status in (Status.UNKNOWN, Status.ERROR) for o in report.outcomes):
        return EXIT_UNEVALUATED
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    from postharden.checks import apply_baseline, load_baseline, run_audit
    from postharden.config import load_config
    from postharden.errors import InputError
    from postharden.report.audit import render

    known = load_baseline(args.baseline) if args.baseline else None
    # Absolute, as Postfix's own config_directory always is ($config_directory in paths).
    config = load_config(args.config_dir.absolute(), args.defaults)
    report = run_audit(config, role=args.role)
    if known is not None:
        report = apply_baseline(report, known)
    code = exit_code_for(report, args.fail_on)
    text = render(report, args.format, fail_on=args.fail_on, exit_code=code)
    if args.output:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise InputError(error.strerror or str(error), location=str(args.output)) from None
    else:
        emit(text)
    return code
