"""`postharden rollback`: the whole files, or only named parameters, from a backup."""

from __future__ import annotations

import argparse

from postharden.commands._common import add_config_dir, add_format, emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rollback",
        help="restore main.cf/master.cf from a postharden backup, or only named parameters",
        description=(
            "Restore the whole files from the latest (or named) backup, byte for byte, or "
            "give only the named parameters their backup value (in main.cf and in every "
            "master.cf -o override), keeping the rest of the hardening. Then check and "
            "reload as apply does."
        ),
    )
    add_config_dir(parser)
    parser.add_argument(
        "--to",
        metavar="BACKUP",
        help="backup stamp (YYYYmmddTHHMMSS) or file name (default: the latest)",
    )
    parser.add_argument(
        "--param",
        nargs="+",
        action="extend",
        default=[],
        metavar="NAME",
        help="only these parameters",
    )
    parser.add_argument("--no-reload", action="store_true", help="do not reload Postfix")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.harden import rollback
    from postharden.report.harden import render_rollback

    result = rollback(args.config_dir, to=args.to, parameters=args.param, reload=not args.no_reload)
    emit(render_rollback(result, args.format))
    return 0
