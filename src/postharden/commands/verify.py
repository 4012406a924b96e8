"""`postharden verify`: ask the real Postfix, in a sandbox of the configuration."""

from __future__ import annotations

import argparse
import json
from typing import Any

from postharden.commands._common import add_config_dir, add_format, emit


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="run the real Postfix on a copy of the configuration and compare with predictions",
        description=(
            "Copy the configuration into a throw-away Postfix instance on loopback (only the "
            "queue and data directories, the log, the listeners and XCLIENT access change), "
            "ask every smtpd service the relay matrix through XCLIENT plus VRFY/EXPN/ETRN, and "
            "report what Postfix answered next to what the decision engine predicted. With "
            "--done: the runbook's Done criteria with evidence. Needs root and Postfix."
        ),
        epilog=(
            "exit codes: 0 no open relay and no disagreement (with --done: every criterion "
            "passes); 1 an open relay, a disagreement or a failed criterion; 2 usage or input "
            "error; 3 something could not be evaluated (no root, no Postfix, no predictions)"
        ),
    )
    add_config_dir(parser)
    add_format(parser)
    parser.add_argument(
        "--done", action="store_true", help="print the runbook's Done criteria as pass/fail"
    )
    parser.add_argument(
        "--host",
        metavar="HOST[:PORT]",
        help="with --done: also probe HOST live for the external relay criterion",
    )
    parser.add_argument(
        "--workers", type=int, default=4, metavar="N", help="parallel sessions (default: 4)"
    )
    parser.add_argument(
        "--dns",
        choices=("isolated", "system"),
        default="isolated",
        help="isolated (default): a config with DNS-based restrictions runs against a stub "
        "DNS server that knows no names, and DNS-dependent cases are reported as 'depends on "
        "DNS'; system: the sandbox uses this machine's resolver, as production would",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from postharden.errors import EXIT_FINDINGS, EXIT_OK, EXIT_UNEVALUATED, UsageError
    from postharden.sandbox import SandboxError, postfix_available
    from postharden.sandbox.verify import done, verify

    if args.host and not args.done:
        raise UsageError("--host needs --done")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    reason = postfix_available()
    if reason:
        raise SandboxError(reason)
    if not args.config_dir.is_dir():
        raise SandboxError(f"{args.config_dir}: no such directory")
    if args.done:
        done_report = done(args.config_dir, host=args.host, workers=args.workers, dns=args.dns)
        document: dict[str, Any] = done_report.as_dict()
        if args.format == "json":
            emit(json.dumps(document, indent=2))
        else:
            lines = [f"Done criteria for {done_report.config_dir}"]
            for criterion in done_report.criteria:
                lines.append(f"  {criterion.status.upper():<8} {criterion.title}")
                lines.extend(f"           {line}" for line in criterion.evidence)
            emit("\n".join(lines))
        statuses = {c.status for c in done_report.criteria}
        if "fail" in statuses:
            return EXIT_FINDINGS
        return EXIT_UNEVALUATED if "unknown" in statuses else EXIT_OK
    report = verify(args.config_dir, workers=args.workers, dns=args.dns)
    if args.format == "json":
        emit(json.dumps(report.as_dict(), indent=2))
    else:
        emit(_text(report.as_dict(), report.elapsed))
    services = report.services
    if any(s.open_relay for s in services) or any(s.disagreements for s in services):
        return EXIT_FINDINGS
    if report.predictions is not None or any(not s.available for s in services):
        return EXIT_UNEVALUATED
    return EXIT_OK


def _text(document: dict[str, Any], elapsed: float) -> str:
    lines = [
        f"verify {document['config_dir']} with Postfix {document['postfix_version']} "
        f"({elapsed:.1f} s)"
    ]
    if not document["predictions"]:
        lines.append(f"no predictions: {document['predictions_missing_reason']}")
    check = document["postfix_check"]
    lines.append("postfix check: " + ("clean" if check["clean"] else "; ".join(check["messages"])))
    lines.append(
        "production configuration untouched (checksums)"
        if document["production_untouched"]
        else "WARNING: the production configuration changed during the run"
    )
    for service in document["services"]:
        relay = {True: "OPEN RELAY", False: "closed", None: "unknown"}[service["open_relay"]]
        state = "available" if service["available"] else f"UNAVAILABLE: {service['reason']}"
        lines.append("")
        lines.append(
            f"{service['name']}: {state}; relay {relay}; {service['disagreements']} disagreements"
        )
        for result in service["results"]:
            actual = result["actual"]
            predicted = result["predicted"]
            guess = f"{predicted['command']} {predicted['code']}" if predicted else "-"
            mark = "  DISAGREE" if result["disagrees"] else ""
            if predicted and predicted.get("depends_on_dns") and not mark:
                mark = "  (depends on DNS)"
            target = result["recipient"]
            lines.append(
                f"  {result['client']:<12} {target:<34} predicted {guess:<9} "
                f"actual {actual['command']} {actual['code']} {actual['text'][:60]}{mark}"
            )
    return "\n".join(lines)
