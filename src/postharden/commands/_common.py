"""Arguments and output helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIG_DIR = Path("/etc/postfix")


def add_config_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config-dir",
        type=Path,
        default=DEFAULT_CONFIG_DIR,
        metavar="DIR",
        help="Postfix configuration directory with main.cf and master.cf (default: %(default)s)",
    )


def add_format(
    parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")
) -> None:
    parser.add_argument(
        "--format",
        choices=choices,
        default=choices[0],
        help="output format (default: %(default)s)",
    )


def emit(text: str) -> None:
    """Write a rendered report to stdout, ending with exactly one newline."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def add_defaults(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--defaults",
        choices=("auto", "installed", "bundled"),
        default="auto",
        help=(
            "default values: the installed Postfix's `postconf -d` (installed), the snapshot "
            "shipped with postharden (bundled), or installed when present (auto, the default)"
        ),
    )
