"""`postharden show`: the configuration as Postfix sees it, per service, with origins."""

from __future__ import annotations

import argparse
import sys

from postharden.commands._common import add_config_dir, add_defaults, add_format, emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "show",
        help="show parameters as Postfix sees them, per service, with their origin",
        description=(
            "Show main.cf parameters (or one service's effective parameters: main.cf plus "
            "its master.cf -o overrides), each with its raw value, expanded value and "
            "origin (default, main.cf:LINE, master.cf:LINE), and the master.cf services."
        ),
    )
    add_config_dir(parser)
    add_defaults(parser)
    parser.add_argument(
        "--service",
        metavar="NAME",
        help="show the effective parameters of this master.cf service (name or name/type)",
    )
    parser.add_argument(
        "-n",
        "--non-default",
        action="store_true",
        help="only parameters set in main.cf or by the service's -o overrides",
    )
    parser.add_argument("parameters", nargs="*", metavar="PARAM", help="only these parameters")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.config import load_config
    from postharden.report.show import render_json, render_text

    config = load_config(args.config_dir, args.defaults)
    config.check_expansions()
    service = config.service(args.service) if args.service else None
    context = config.effective(service)
    if args.parameters:
        names = []
        for name in args.parameters:
            if context.raw(name) is None:
                print(f"postharden show: warning: unknown parameter: {name}", file=sys.stderr)
            else:
                names.append(name)
        services = []
    else:
        names = context.set_names() if args.non_default else context.names()
        services = [service] if service else list(config.services)
    render = render_json if args.format == "json" else render_text
    emit(render(config, context, names, services))
    return 0
