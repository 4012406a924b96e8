"""Command-line entry point: parse arguments, call the library, render, map to an exit code.

Each subcommand lives in `postharden.commands.<name>` with `register(subparsers)`; the
modules import their heavy dependencies inside `run()` so that `postharden --help` and a
single command start fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from postharden import __version__
from postharden.errors import EXIT_INTERRUPTED, EXIT_USAGE, PostHardenError

# The order here is the order in `postharden --help`.
COMMANDS: tuple[str, ...] = (
    "show",
    "lint",
    "explain",
    "relay",
    "audit",
    "logs",
    "watch",
    "plan",
    "apply",
    "rollback",
    "backups",
    "probe",
    "verify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="postharden",
        description="Read, explain, audit, harden, verify and watch Postfix mail servers.",
    )
    parser.add_argument("--version", action="version", version=f"postharden {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"postharden.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except PostHardenError as error:
        print(f"postharden {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"postharden {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `postharden show | head`: the reader left; not an error of ours.
        sys.stderr.close()
        return 0
    return code


__all__ = ["EXIT_USAGE", "build_parser", "main"]
