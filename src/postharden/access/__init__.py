"""What Postfix's smtpd answers any client, and every relay path per service.

Public interface (for audit, harden and verify):

    from postharden.config import load_config
    from postharden.access import ClientContext, decide, analyze_relay, Engine

    config = load_config("/etc/postfix")
    decision = decide(config, "smtp", ClientContext(
        address="203.0.113.9", name=None, helo="mx.example.net", sasl_user=None,
        sender="a@example.net", recipient="b@example.org"))
    decision.command   # "connect" | "helo" | "mail" | "rcpt" (where the first refusal is)
    decision.code      # 554; 250 when accepted; 0 when smtpd cannot run
    decision.decision  # "accept" | "reject" | "defer" | "unavailable"
    decision.trace     # TraceStep(stage, restriction, result, origin "main.cf:12", detail)
    decision.outside   # Outside(...) for DNS/policy-dependent restrictions: the other outcome

    engine = Engine(config)              # compiles each service once; use for many decisions
    engine.decide("submission", ctx)
    engine.startup_problem("smtp")       # None, or why smtpd refuses to run (fatal text, origin)

    report = analyze_relay(config)       # RelayReport
    for service in report.services:      # ServiceRelay
        service.verdict                  # "closed" | "open" | "unavailable" | "depends"
        service.summary                  # one line
        service.path                     # RelayPath(client, destination, rule, origin, example)
        service.risks                    # Risk(id, message, origin)
        service.matrix                   # MatrixCell(client, destination, decision, relays)

`service` is a master.cf service name or name/type (as `PostfixConfig.service`), or a
`Service`, or None for main.cf alone (a service without `-o` overrides).

Errors the user can cause (unknown service, unreadable table) raise AccessError (an
InputError). What Postfix itself would do with a broken configuration is a Decision, not
an exception: `decision == "unavailable"` with the reason in `text`.
"""

from postharden.access.engine import Engine, decide
from postharden.access.errors import AccessError
from postharden.access.model import (
    ClientClass,
    ClientContext,
    Decision,
    DestinationClass,
    MatrixCell,
    Outside,
    RelayPath,
    RelayReport,
    Risk,
    ServiceRelay,
    TraceStep,
)
from postharden.access.relay import analyze_relay

__all__ = [
    "AccessError",
    "ClientClass",
    "ClientContext",
    "Decision",
    "DestinationClass",
    "Engine",
    "MatrixCell",
    "Outside",
    "RelayPath",
    "RelayReport",
    "Risk",
    "ServiceRelay",
    "TraceStep",
    "analyze_relay",
    "decide",
]
