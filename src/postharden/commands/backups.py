"""`postharden backups`: the backup sets that apply wrote."""

from __future__ import annotations

import argparse

from postharden.commands._common import add_config_dir, add_format, emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "backups",
        help="list the postharden backups of main.cf and master.cf",
        description="List the backup sets (main.cf.postharden-STAMP, master.cf.postharden-STAMP).",
    )
    add_config_dir(parser)
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.harden import list_backups
    from postharden.report.harden import render_backups

    emit(render_backups(args.config_dir, list_backups(args.config_dir), args.format))
    return 0
