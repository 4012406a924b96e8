"""Options shared by `plan` and `apply`, and the plan they describe."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postharden.harden import Plan


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile",
        default="baseline",
        metavar="NAME",
        help="profile name (baseline, strict) or path to a profile file (default: %(default)s)",
    )
    parser.add_argument(
        "--role",
        metavar="ROLE",
        help="add a role part: mx (default), submission, local-only",
    )
    parser.add_argument(
        "--keep",
        nargs="+",
        action="extend",
        default=[],
        metavar="PARAM",
        help="leave these parameters as they are",
    )
    parser.add_argument(
        "--enable",
        nargs="+",
        action="extend",
        default=[],
        metavar="FLAG",
        help=(
            "include a rule that could stop legitimate mail: require-tls-port25, "
            "reject-unknown-client, reject-html-body"
        ),
    )
    parser.add_argument(
        "--mynetworks",
        nargs="+",
        action="extend",
        default=[],
        metavar="NET",
        help="networks to trust besides loopback (kept in or added to mynetworks)",
    )
    parser.add_argument(
        "--with-greylisting",
        nargs="?",
        const="inet:127.0.0.1:10030",
        default=None,
        metavar="inet:HOST:PORT",
        help=(
            "add check_policy_service for this greylisting service (default "
            "inet:127.0.0.1:10030) after checking that it answers"
        ),
    )
    parser.add_argument(
        "--defaults",
        choices=("auto", "installed", "bundled"),
        default="auto",
        help="default values: installed postconf -d, the bundled snapshot, or auto",
    )


def build_plan(args: argparse.Namespace) -> Plan:
    from postharden.config import load_defaults
    from postharden.harden import PlanOptions, load_profile, make_plan, probe_policy_service

    defaults = load_defaults(args.defaults)
    profile = load_profile(args.profile, args.role, defaults.values)
    greylisting = None
    if args.with_greylisting:
        greylisting = probe_policy_service(args.with_greylisting).address
    options = PlanOptions(
        keep=frozenset(args.keep),
        enable=frozenset(args.enable),
        mynetworks=tuple(args.mynetworks),
        greylisting=greylisting,
    )
    return make_plan(args.config_dir, profile, options, defaults)
