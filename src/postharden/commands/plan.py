"""`postharden plan`: the hardening changes as data, a diff, or postconf commands."""

from __future__ import annotations

import argparse

from postharden.commands._common import add_config_dir, add_format, emit
from postharden.commands._harden import add_plan_options, build_plan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="show what a hardening profile would change, and prove it keeps mail flowing",
        description=(
            "Plan the changes a profile asks for: each with the finding it fixes, the old and "
            "new effective value per service, and why; as text, a unified diff of "
            "main.cf/master.cf, postconf commands, or JSON. Nothing is written."
        ),
    )
    add_config_dir(parser)
    add_plan_options(parser)
    add_format(parser, ("text", "diff", "postconf", "json"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.errors import EXIT_FINDINGS, EXIT_OK
    from postharden.report.harden import render_plan

    plan = build_plan(args)
    text = render_plan(plan, args.format)
    if text:
        emit(text)
    if plan.safety is not None and not plan.safety.ok:
        return EXIT_FINDINGS
    return EXIT_OK
