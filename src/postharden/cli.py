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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with `only`, just that subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="postharden",
        description="Read, explain, audit, harden, verify and watch Postfix mail servers.",
    )
    parser.add_argument("--version", action="version", version=f"postharden {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else (only,):
        module = importlib.import_module(f"postharden.commands.{name}")
        module.register(subparsers)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line, when it is the first word (cold start:
    importing every command module costs tens of milliseconds)."""
    for word in argv:
        if word.startswith("-"):
            return None  # a global option first (--help, --version): build everything
        return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_chosen_command(words))
    args = parser.parse_args(words)
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
