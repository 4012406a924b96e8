"""`postharden apply`: plan, ask, then write with backup, check, restore on failure, reload."""

from __future__ import annotations

import argparse
import sys

from postharden.commands._common import add_config_dir, add_format, emit
from postharden.commands._harden import add_plan_options, build_plan


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "apply",
        help="apply a hardening profile: backup, atomic write, postfix check, reload",
        description=(
            "Show the plan and ask (or --yes); then take a lock, write a timestamped backup "
            "(main.cf.postharden-YYYYmmddTHHMMSS and main.cf.old), write each file atomically "
            "keeping owner, group and mode, run `postfix -c DIR check`, restore the old bytes "
            "on any failure, and reload Postfix unless --no-reload."
        ),
    )
    add_config_dir(parser)
    add_plan_options(parser)
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask before writing")
    parser.add_argument("--no-reload", action="store_true", help="do not reload Postfix")
    parser.add_argument(
        "--verify-sandbox",
        action="store_true",
        help="after writing, run the real Postfix on a copy of the new files (postharden verify)",
    )
    parser.add_argument(
        "--probe",
        metavar="HOST[:PORT]",
        help="after the reload, probe the running server from here (postharden probe)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="apply even when the safety proof says a legitimate flow would stop",
    )
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.errors import EXIT_FINDINGS, EXIT_OK, UsageError
    from postharden.harden import apply_plan, check_safety, verify_with_probe, verify_with_sandbox
    from postharden.report.harden import render_apply, render_plan

    plan = build_plan(args)
    if not plan.empty:
        check_safety(plan, force=args.force)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("stdin is not a terminal: say --yes to apply without asking")
            sys.stderr.write(render_plan(plan, "text"))
            sys.stderr.write(f"Apply {len(plan.changes)} change(s) to {plan.config_dir}? [y/N] ")
            sys.stderr.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                sys.stderr.write("nothing changed\n")
                return EXIT_OK
    result = apply_plan(plan, force=args.force, reload=not args.no_reload)
    if args.verify_sandbox:
        verify_with_sandbox(result)
    if args.probe:
        verify_with_probe(result, args.probe)
    emit(render_apply(result, args.format))
    return EXIT_FINDINGS if result.problems else EXIT_OK
