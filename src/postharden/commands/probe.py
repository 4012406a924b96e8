"""`postharden probe`: live tests of a running SMTP server from where postharden runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from postharden.commands._common import add_format, emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="probe a running server: banner, VRFY/EXPN, open relay, AUTH, XCLIENT, STARTTLS, TLS",
        description=(
            "Talk to HOST like an outside client, politely (one connection at a time, explicit "
            "timeouts, one test per session): banner and EHLO, VRFY/EXPN with a random control "
            "user, 20 relay address forms judged at RCPT, AUTH before TLS and cleartext AUTH "
            "PLAIN, XCLIENT/XFORWARD, unauthorised pipelining, STARTTLS and (with --tls) a TLS "
            "scan. Nothing is sent as mail unless --send is given."
        ),
        epilog=(
            "exit codes: 0 every test passed; 1 a test failed; 2 usage or input error; "
            "3 some tests were inconclusive or could not run. With --nagios: 0 OK, 1 WARNING, "
            "2 CRITICAL, 3 UNKNOWN."
        ),
    )
    parser.add_argument("target", metavar="HOST[:PORT]", help="the server to probe")
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        metavar="PORT",
        help="port to probe; repeat for several (default: 25, 587, 465)",
    )
    parser.add_argument(
        "--from-domain",
        metavar="D",
        help="the server's own mail domain, used for spoofed local senders "
        "(default: from the name in the banner)",
    )
    parser.add_argument(
        "--to-domain",
        metavar="D",
        default="example.net",
        help="foreign domain for relay attempts (default: %(default)s)",
    )
    parser.add_argument(
        "--implicit-tls-port",
        type=int,
        action="append",
        metavar="PORT",
        help="port that speaks TLS from the first byte (default: 465)",
    )
    parser.add_argument("--tls", action="store_true", help="scan TLS with sslyze (slower)")
    parser.add_argument(
        "--send",
        action="store_true",
        help="really send mail: DATA to confirm an accepted relay, and the smuggling test",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="timeout of each connect and read in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--session-deadline",
        type=float,
        default=30.0,
        metavar="S",
        help="longest time one SMTP session may take (default: %(default)s)",
    )
    parser.add_argument("--source", metavar="ADDR", help="local address to connect from")
    parser.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="when probing from the server itself: read mynetworks from DIR to tell whether "
        "the probe's address is trusted",
    )
    add_format(parser, ("text", "json", "nagios"))
    parser.add_argument(
        "--nagios", action="store_true", help="Nagios/Icinga plugin output (--format nagios)"
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="show every transcript in text output"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import time

    from postharden.errors import UsageError
    from postharden.probe import DEFAULT_PORTS, ProbeOptions, exit_code, mynetworks_of, probe
    from postharden.probe.render import nagios_status, render_json, render_nagios, render_text

    if args.timeout <= 0 or args.session_deadline <= 0:
        raise UsageError("--timeout and --session-deadline must be positive")
    if args.port and any(not 0 < p < 65536 for p in args.port):
        raise UsageError("--port must be between 1 and 65535")
    if args.port and ":" in args.target.rsplit("]", 1)[-1]:
        raise UsageError("give the port either in HOST:PORT or with --port, not both")
    options = ProbeOptions(
        ports=tuple(args.port) if args.port else DEFAULT_PORTS,
        local_domain=args.from_domain,
        foreign_domain=args.to_domain,
        tls=args.tls,
        send=args.send,
        timeout=args.timeout,
        session_deadline=args.session_deadline,
        source_address=args.source,
        mynetworks=mynetworks_of(args.config_dir) if args.config_dir else (),
        implicit_tls_ports=tuple(args.implicit_tls_port) if args.implicit_tls_port else (465,),
    )
    started = time.monotonic()
    report = probe(args.target, options)
    elapsed = time.monotonic() - started
    output_format = "nagios" if args.nagios else args.format
    if output_format == "nagios":
        emit(render_nagios(report, elapsed))
        return nagios_status(report)
    emit(
        render_json(report)
        if output_format == "json"
        else render_text(report, verbose=args.verbose)
    )
    return exit_code(report)
