"""Value objects of the access engine: client contexts, decisions, traces, relay reports.

Everything here is immutable and has an `as_dict()` that is the JSON shape of
`postharden explain` and `postharden relay` (see the schemas in postharden/schemas/).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Command = Literal["connect", "helo", "mail", "rcpt", "vrfy", "expn", "etrn", "data", "end-of-data"]
Verb = Literal["RCPT", "VRFY", "EXPN", "ETRN", "DATA"]
VERBS: tuple[Verb, ...] = ("RCPT", "VRFY", "EXPN", "ETRN", "DATA")
Verdict = Literal["accept", "reject", "defer", "unavailable"]
StepResult = Literal[
    "permit",
    "reject",
    "defer",
    "dunno",
    "skipped",
    "warn",
    "defer_if_permit",
    "defer_if_reject",
    "outside",
    "error",
]
RelayVerdict = Literal["closed", "open", "unavailable", "depends"]


class ClientContext(NamedTuple):
    """Who talks to smtpd and what it asks for.

    `name` is the client host name Postfix verified (None: "unknown"); `helo` None means the
    client sends no HELO/EHLO; `sasl_user` None means not authenticated (the client logs in
    with AUTH, after STARTTLS when `tls`); `sender` "" is the null sender `<>`.

    `tls`: the client says STARTTLS (when the service offers it) right after EHLO, and
    presents no client certificate. `verb` is what the client tries after HELO:

    - RCPT: MAIL FROM:<sender>, RCPT TO:<recipient> (the default);
    - VRFY / EXPN: `VRFY recipient` / `EXPN recipient`, without MAIL;
    - ETRN: `ETRN recipient` (a domain, `@domain` or `[address]`);
    - DATA: MAIL, RCPT, DATA, an empty message and the end-of-data dot.
    """

    address: str
    name: str | None = None
    helo: str | None = None
    sasl_user: str | None = None
    sender: str = ""
    recipient: str = ""
    tls: bool = False
    verb: Verb = "RCPT"


class TraceStep(NamedTuple):
    """One restriction evaluated: which list, what it said, where it was configured.

    A NamedTuple: a decision builds a dozen of these, and tuples are cheap to make."""

    stage: str  # client | helo | sender | relay | recipient | builtin | startup
    restriction: str  # as written, with its argument: "check_client_access cidr:/x"
    result: StepResult
    origin: str  # main.cf:12, master.cf:30, default, or a table file:line
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "stage": self.stage,
            "restriction": self.restriction,
            "result": self.result,
            "origin": self.origin,
            "detail": self.detail,
        }


class Outside(NamedTuple):
    """A restriction whose answer comes from outside the configuration (DNS, a policy
    server, address verification): the decision is shown both ways."""

    restriction: str
    origin: str
    question: str  # what the outside answer decides, in words
    if_yes: Decision  # the decision when the outside answer is "listed / matches / fails"

    def as_dict(self) -> dict[str, object]:
        return {
            "restriction": self.restriction,
            "origin": self.origin,
            "question": self.question,
            "if_yes": self.if_yes.summary_dict(),
        }


class Decision(NamedTuple):
    """What Postfix answers one client on one service.

    `command` is where the first refusal happens (connect, helo, mail, rcpt), or "rcpt"
    with a 2xx code when the recipient is accepted. For the other verbs it is the verb's
    own reply (vrfy, expn, etrn) when nothing refused earlier; for DATA, "data" when the
    DATA command is refused, else "end-of-data" with the reply to the final dot. `code` is 0 when smtpd cannot run.
    When `outside` is non-empty the decision shown assumes every outside answer is "no"
    (not listed, lookup succeeded); each Outside gives the other outcome.
    """

    service: str
    command: Command
    code: int
    text: str
    decision: Verdict
    trace: tuple[TraceStep, ...] = ()
    outside: tuple[Outside, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.decision == "accept"

    @property
    def reply(self) -> str:
        return f"{self.code} {self.text}" if self.code else self.text

    def summary_dict(self) -> dict[str, object]:
        return {
            "command": self.command,
            "code": self.code,
            "text": self.text,
            "decision": self.decision,
        }

    def as_dict(self) -> dict[str, object]:
        result = self.summary_dict()
        result["service"] = self.service
        result["trace"] = [step.as_dict() for step in self.trace]
        result["outside"] = [item.as_dict() for item in self.outside]
        result["warnings"] = list(self.warnings)
        return result


class Risk(NamedTuple):
    """A runbook risk found in a service's relay configuration."""

    id: str  # stable: permit-shadows-reject, mynetworks-wide, mynetworks-style, ...
    message: str
    origin: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "message": self.message, "origin": self.origin}


class ClientClass(NamedTuple):
    """A kind of client the relay matrix asks about, with a representative context."""

    id: str  # outside, mynetworks, sasl, network:<cidr>, name:<domain>
    label: str
    address: str
    name: str | None = None
    sasl_user: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "address": self.address,
            "name": self.name,
            "sasl_user": self.sasl_user,
        }


class DestinationClass(NamedTuple):
    id: str  # local, virtual_alias, virtual_mailbox, relay, foreign
    label: str
    recipient: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "label": self.label, "recipient": self.recipient}


class MatrixCell(NamedTuple):
    client: str  # ClientClass.id
    destination: str  # DestinationClass.id
    decision: Decision
    relays: bool  # accepted for a destination this server does not own
    context: ClientContext  # the case asked (the sender and HELO that got furthest)

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "client": self.client,
            "destination": self.destination,
            "relays": self.relays,
            "sender": self.context.sender,
            "helo": self.context.helo,
        }
        result.update(self.decision.summary_dict())
        if self.decision.outside:
            result["outside"] = [item.as_dict() for item in self.decision.outside]
        return result


class RelayPath(NamedTuple):
    """The shortest way through an open relay: which client, which rule, where."""

    client: str
    destination: str
    rule: str
    origin: str
    example: ClientContext

    def as_dict(self) -> dict[str, object]:
        return {
            "client": self.client,
            "destination": self.destination,
            "rule": self.rule,
            "origin": self.origin,
            "example": {
                "client_address": self.example.address,
                "client_name": self.example.name,
                "sasl_user": self.example.sasl_user,
                "sender": self.example.sender,
                "recipient": self.example.recipient,
            },
        }


class ServiceRelay(NamedTuple):
    service: str
    origin: str  # master.cf:LINE of the service row
    listen: str
    verdict: RelayVerdict
    summary: str  # the one-line answer
    path: RelayPath | None = None
    unavailable: str | None = None  # the fatal message and where
    clients: tuple[ClientClass, ...] = ()
    destinations: tuple[DestinationClass, ...] = ()
    matrix: tuple[MatrixCell, ...] = ()
    risks: tuple[Risk, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "origin": self.origin,
            "listen": self.listen,
            "verdict": self.verdict,
            "summary": self.summary,
            "path": self.path.as_dict() if self.path else None,
            "unavailable": self.unavailable,
            "clients": [c.as_dict() for c in self.clients],
            "destinations": [d.as_dict() for d in self.destinations],
            "matrix": [cell.as_dict() for cell in self.matrix],
            "risks": [risk.as_dict() for risk in self.risks],
        }


class RelayReport(NamedTuple):
    config_dir: str
    postfix_version: str
    services: tuple[ServiceRelay, ...] = ()

    @property
    def open(self) -> bool:
        return any(s.verdict == "open" for s in self.services)

    def as_dict(self) -> dict[str, object]:
        return {
            "schema_version": 1,
            "config_dir": self.config_dir,
            "postfix_version": self.postfix_version,
            "services": [s.as_dict() for s in self.services],
        }
