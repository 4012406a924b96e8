"""`postharden lint`: what Postfix would silently misread in main.cf and master.cf."""

from __future__ import annotations

import argparse

from postharden.commands._common import add_config_dir, add_defaults, add_format, emit
from postharden.errors import EXIT_FINDINGS, EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="find what Postfix would silently misread in main.cf and master.cf",
        description=(
            "Report, with file:line and the fix: a # after a value, unknown parameter names "
            "(with the nearest known name), obsolete or renamed parameters and restrictions, "
            "restrictions written as parameters, duplicate definitions, $names without a "
            "value, expansion loops, master.cf -o lines that belong to another service than "
            "their place suggests, unknown -o names and malformed rows."
        ),
        epilog="exit codes: 0 no findings; 1 findings; 2 usage or input error",
    )
    add_config_dir(parser)
    add_defaults(parser)
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.config import load_config
    from postharden.config.lint import lint
    from postharden.report.lint import render_json, render_text

    config = load_config(args.config_dir, args.defaults)
    findings = lint(config)
    render = render_json if args.format == "json" else render_text
    emit(render(config, findings))
    return EXIT_FINDINGS if findings else EXIT_OK
