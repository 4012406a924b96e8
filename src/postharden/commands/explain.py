"""`postharden explain`: what Postfix's smtpd answers one client, and why."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from postharden.commands._common import add_config_dir, add_defaults, add_format, emit
from postharden.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from postharden.access import ClientContext, Decision, Engine


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="the reply Postfix gives one client (or a batch), with the restriction trace",
        description=(
            "Evaluate the restriction lists of an smtpd service (main.cf plus its master.cf "
            "-o overrides) for one client as Postfix does: the reply code and text, the SMTP "
            "command where the first refusal happens, and every restriction evaluated with "
            "its result and where it is configured. With --cases, read one JSON object per "
            "line and print one JSON object per line."
        ),
    )
    add_config_dir(parser)
    add_defaults(parser)
    parser.add_argument(
        "--service",
        default="smtp",
        metavar="NAME",
        help="master.cf smtpd service, name or name/type (default: smtp)",
    )
    parser.add_argument("--client-address", metavar="IP", help="the client's IP address")
    parser.add_argument(
        "--client-name", metavar="NAME", help="the client's verified host name (default: unknown)"
    )
    parser.add_argument(
        "--helo", metavar="NAME", help="the HELO/EHLO name (default: the client sends no HELO)"
    )
    parser.add_argument(
        "--sasl-user", metavar="USER", help="the SASL login name (default: not authenticated)"
    )
    parser.add_argument("--sender", metavar="ADDR", help="MAIL FROM address ('' is <>)")
    parser.add_argument(
        "--recipient",
        metavar="ADDR",
        help="RCPT TO address (the VRFY/EXPN argument, the ETRN domain)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="the client says STARTTLS after EHLO (when offered; no client certificate)",
    )
    parser.add_argument(
        "--verb",
        type=str.upper,
        choices=("RCPT", "VRFY", "EXPN", "ETRN", "DATA"),
        default=None,
        help="what the client tries after HELO (default RCPT: MAIL FROM then RCPT TO; DATA "
        "goes on through DATA and an empty message)",
    )
    parser.add_argument(
        "--cases",
        metavar="FILE",
        help="batch: JSON lines of cases ('-' for stdin); prints JSON lines",
    )
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.access import Engine
    from postharden.config import load_config
    from postharden.report.access import (
        render_decision_json,
        render_decision_line,
        render_decision_text,
    )

    if args.cases is not None:
        single = [
            args.client_address,
            args.client_name,
            args.helo,
            args.sasl_user,
            args.sender,
            args.recipient,
            args.tls,
            args.verb,
        ]
        if any(value is not None for value in single):
            raise UsageError(
                "--cases reads every case from the file: no --client-*, "
                "--helo, --sasl-user, --sender, --recipient, --tls or --verb with it"
            )
        config = load_config(args.config_dir, args.defaults)
        engine = Engine(config)
        return _batch(engine, args.cases, args.service, render_decision_line)
    verb = args.verb or "RCPT"
    needed = [("--client-address", args.client_address), ("--recipient", args.recipient)]
    if verb in ("RCPT", "DATA"):
        needed.append(("--sender", args.sender))
    missing = [flag for flag, value in needed if value is None]
    if missing:
        raise UsageError("missing " + ", ".join(missing) + " (or give --cases FILE)")
    config = load_config(args.config_dir, args.defaults)
    engine = Engine(config)
    context = _context(
        args.client_address,
        args.client_name,
        args.helo,
        args.sasl_user,
        args.sender if args.sender is not None else "",
        args.recipient,
        "command line",
        bool(args.tls),
        verb,
    )
    decision = engine.decide(args.service, context)
    render = render_decision_json if args.format == "json" else render_decision_text
    emit(render(decision))
    return 0


def _context(
    address: object,
    name: object,
    helo: object,
    sasl: object,
    sender: object,
    recipient: object,
    where: str,
    tls: object = False,
    verb: object = "RCPT",
) -> ClientContext:
    import ipaddress

    from postharden.access import ClientContext
    from postharden.access.model import VERBS

    if not isinstance(address, str):
        raise UsageError(f"{where}: client_address must be a string")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"{where}: client_address {address!r} is not an IP address") from None
    for label, value in (("client_name", name), ("helo", helo), ("sasl_user", sasl)):
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{where}: {label} must be a string or null")
    for label, value in (("sender", sender), ("recipient", recipient)):
        if not isinstance(value, str):
            raise UsageError(f"{where}: {label} must be a string")
    if not isinstance(tls, bool):
        raise UsageError(f"{where}: tls must be true or false")
    if not isinstance(verb, str) or verb.upper() not in VERBS:
        raise UsageError(f"{where}: verb must be one of {', '.join(VERBS)}")
    checked = next(v for v in VERBS if v == verb.upper())
    assert isinstance(sender, str) and isinstance(recipient, str)
    assert name is None or isinstance(name, str)
    assert helo is None or isinstance(helo, str)
    assert sasl is None or isinstance(sasl, str)
    return ClientContext(address, name or None, helo, sasl or None, sender, recipient, tls, checked)


def _batch(
    engine: Engine, path: str, default_service: str, render: Callable[[Decision], str]
) -> int:
    from postharden.errors import InputError

    try:
        stream = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise InputError(f"{path}: {error.strerror}") from None
    out = sys.stdout
    with stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                case = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"not JSON: {error.msg}", location=where) from None
            if not isinstance(case, dict):
                raise InputError("a case is a JSON object", location=where)
            unknown = set(case) - {
                "service",
                "client_address",
                "client_name",
                "helo",
                "sasl_user",
                "sender",
                "recipient",
                "tls",
                "verb",
            }
            if unknown:
                raise InputError(f"unknown field(s): {', '.join(sorted(unknown))}", location=where)
            context = _context(
                case.get("client_address"),
                case.get("client_name"),
                case.get("helo"),
                case.get("sasl_user"),
                case.get("sender", ""),
                case.get("recipient"),
                where,
                case.get("tls", False),
                case.get("verb", "RCPT"),
            )
            service = case.get("service") or default_service
            if not isinstance(service, str):
                raise InputError("service must be a string", location=where)
            out.write(render(engine.decide(service, context)) + "\n")
    out.flush()
    return 0
