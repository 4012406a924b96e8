"""Exact decisions for DNS-dependent restrictions, given the DNS answers.

The engine reports RBLs, ``reject_unknown_*`` and the like as outside answers with both
outcomes. When the DNS answers are known - a zone a test or ``postharden verify`` serves
to the real Postfix through the sandbox's stub DNS server - this module decides exactly:

    from postharden.access.dns import DnsEngine, client_names
    engine = DnsEngine(config, zone)       # zone: anything with lookup(name, rrtype)
    names = client_names(zone, "127.54.0.9")   # what smtpd's reverse lookup finds
    decision = engine.decide("smtp", ClientContext(address, names.name, helo, ...))

``zone.lookup(name, rrtype)`` returns an object with ``status`` (``ok``, ``nodata``,
``nxdomain``, ``servfail``, ``timeout``) and ``records`` (texts): ``postharden.sandbox.dns.
Zone`` is one. Each outside question the engine asks is answered the way Postfix 3.7's
smtpd_check.c answers it:

- ``reject_rbl_client D[=filter]``: A records of the reversed address under D (a filter
  ``=127.0.0.[2..11]`` or ``=127.0.0.2`` must match one); a temporary failure is "not
  listed" (smtpd skips the list);
- ``reject_rhsbl_client/_reverse_client/_helo/_sender/_recipient D``: A records of the
  name (the address's domain) under D, same rules;
- ``permit_dnswl_client D``: listed permits, except at RCPT for a recipient the client
  may not relay to; a temporary failure is ``defer_if_reject`` 450 4.7.1;
- ``reject_unknown_helo_hostname``: A, AAAA, then MX of the HELO name; none is "unknown",
  a temporary failure with none found is ``defer_if_permit`` 450 4.7.1;
- ``reject_unknown_sender_domain`` / ``_recipient_domain``: MX, A, AAAA of the domain;
  same, ``defer_if_permit`` 450 4.1.8 / 4.1.2 on temporary failure;
- ``reject_unknown_reverse_client_hostname`` (asked for a client with a verified name):
  never "unknown", the verified name came from its PTR record (or XCLIENT NAME).

``client_names(zone, address)`` is smtpd_peer.c's lookup: the first PTR record, then the
forward confirmation (A records must list the address): ``ClientNames(name,
name_status, reverse_name, reverse_status)`` with statuses ``ok``, ``temp``, ``perm``,
``forged``. ``ClientContext.name`` is ``name`` (None unless verified).

Not modelled (the outside question keeps the engine's assumption "no"): nullMX,
``check_*_{mx,ns,a}_access``, policy services, address verification, ``permit_rhswl_client``,
``permit_mx_backup``, ``reject_maps_rbl``. The engine has no reverse name apart from the
verified one, so a client whose PTR is not forward-confirmed is "unknown" to the reverse-name
restrictions too (smtpd keeps the PTR name there): ``client_names(...).exact`` is False then.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Protocol

from postharden.access import engine as core
from postharden.access.engine import Engine
from postharden.access.model import ClientContext, Decision
from postharden.config import PostfixConfig


class DnsAnswer(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def records(self) -> tuple[str, ...]: ...


class Resolver(Protocol):
    def lookup(self, name: str, rrtype: str) -> DnsAnswer: ...


TEMPORARY = ("servfail", "timeout")


@dataclass(frozen=True)
class ClientNames:
    """smtpd's view of a real peer after its reverse and forward lookups."""

    name: str | None  # verified (forward-confirmed) name, or None ("unknown")
    name_status: str  # ok | temp | perm | forged
    reverse_name: str | None  # the PTR name, or None
    reverse_status: str  # ok | temp | perm

    @property
    def exact(self) -> bool:
        """The engine models this client exactly (no unconfirmed PTR name)."""
        return self.reverse_name == self.name


def _valid_hostname(name: str) -> bool:
    return core.valid_hostname(name) and not _is_address(name)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def client_names(resolver: Resolver, address: str) -> ClientNames:
    """smtpd_peer.c: PTR (first record), then A records must contain the address."""
    ptr = resolver.lookup(ipaddress.ip_address(address).reverse_pointer, "PTR")
    if ptr.status != "ok" or not ptr.records:
        status = "temp" if ptr.status in TEMPORARY else "perm"
        return ClientNames(None, status, None, status)
    name = ptr.records[0].rstrip(".").lower()
    if not _valid_hostname(name):
        return ClientNames(None, "perm", None, "perm")
    rrtype = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
    forward = resolver.lookup(name, rrtype)
    if forward.status in TEMPORARY:
        return ClientNames(None, "temp", name, "ok")
    if forward.status != "ok":
        return ClientNames(None, "forged", name, "ok")
    addresses = {ipaddress.ip_address(r) for r in forward.records if _is_address(r)}
    if ipaddress.ip_address(address) not in addresses:
        return ClientNames(None, "forged", name, "ok")
    return ClientNames(name, "ok", name, "ok")


def lookup_status(resolver: Resolver, name: str, types: tuple[str, ...]) -> str:
    """dns_lookup_l() with DNS_REQ_FLAG_STOP_OK: ``ok``, ``notfound`` or ``retry`` (the
    best status over the types tried)."""
    best = "notfound"
    for rrtype in types:
        answer = resolver.lookup(name, rrtype)
        if answer.status == "ok" and answer.records:
            return "ok"
        if answer.status in TEMPORARY:
            best = "retry"
    return best


def _octet_matches(pattern: str, value: int) -> bool:
    if pattern.startswith("[") and pattern.endswith("]"):
        for part in pattern[1:-1].split(";"):
            low, sep, high = part.partition("..")
            if sep and int(low) <= value <= int(high):
                return True
            if not sep and part and int(part) == value:
                return True
        return False
    return pattern.isdigit() and int(pattern) == value


def filter_matches(byte_codes: str, address: str) -> bool:
    """An RBL reply address against a `=127.0.0.[2..11]` style filter (ip_match)."""
    patterns = re.findall(r"\[[^\]]*\]|\d+", byte_codes)
    try:
        octets = ipaddress.IPv4Address(address).packed
    except ValueError:
        return False
    return len(patterns) == 4 and all(
        _octet_matches(p, o) for p, o in zip(patterns, octets, strict=True)
    )


def dnsxl_listed(resolver: Resolver, query: str, argument: str) -> str:
    """``listed``, ``not listed`` or ``temp`` for `query` under a `domain[=filter]` list."""
    domain, _, byte_codes = argument.partition("=")
    answer = resolver.lookup(f"{query}.{domain}", "A")
    if answer.status in TEMPORARY:
        return "temp"
    if answer.status != "ok" or not answer.records:
        return "not listed"
    if byte_codes and not any(filter_matches(byte_codes, r) for r in answer.records):
        return "not listed"
    return "listed"


def _reversed_address(address: str) -> str | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 4:
        return ".".join(reversed(address.split(".")))
    return ip.reverse_pointer.removesuffix(".ip6.arpa")


def _domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].rstrip(".").lower() or None


class _Oracle:
    """The `answers` of one evaluation: each outside question answered from the zone."""

    def __init__(self, resolver: Resolver, forced: dict[int, bool]) -> None:
        self.resolver = resolver
        self.forced = forced
        self.ev: Any = None
        self.unmodelled: list[str] = []

    def get(self, index: int, default: bool = False) -> bool:
        if index in self.forced:
            return self.forced[index]
        ev = self.ev
        shown, _origin, question = ev.questions[index]
        words = shown.split()
        kind = core.ALIASES.get(words[0].lower(), words[0].lower())
        argument = words[1] if len(words) > 1 else ""
        answer = self._answer(ev, kind, shown, argument)
        if answer is None:
            self.unmodelled.append(f"{shown}: {question}")
            return default
        return answer

    def _answer(self, ev: Any, kind: str, shown: str, argument: str) -> bool | None:
        r = self.resolver
        if kind == "reject_rbl_client":
            query = _reversed_address(ev.addr)
            return query is not None and dnsxl_listed(r, query, argument) == "listed"
        if kind.startswith("reject_rhsbl_"):
            subject = {
                "reject_rhsbl_client": ev.name if ev.name != "unknown" else None,
                "reject_rhsbl_reverse_client": ev.name if ev.name != "unknown" else None,
                "reject_rhsbl_helo": ev.helo_name,
                "reject_rhsbl_sender": _domain(ev.sender),
                "reject_rhsbl_recipient": _domain(ev.recipient),
            }.get(kind)
            if subject is None:
                return False
            return dnsxl_listed(r, subject.rstrip(".").lower(), argument) == "listed"
        if kind == "permit_dnswl_client":
            if ev.recipient is not None and not ev.auth_destination(ev.recipient)[0]:
                return False  # smtpd never allowlists an unauthorized recipient
            query = _reversed_address(ev.addr)
            if query is None:
                return False
            listed = dnsxl_listed(r, query, argument)
            if listed == "temp":
                ev.defer_if(
                    ev.defer_if_reject,
                    450,
                    "4.7.1",
                    f"<{ev.addr}>: Client host rejected: Service unavailable",
                    shown,
                    "temporary DNS failure",
                )
            return listed == "listed"
        if kind == "reject_unknown_helo_hostname":
            helo = (ev.helo_name or "").rstrip(".")
            status = lookup_status(r, helo, ("A", "AAAA", "MX"))
            if status == "retry":
                ev.defer_if(
                    ev.defer_if_permit,
                    450,
                    "4.7.1",
                    f"<{ev.helo_name}>: Helo command rejected: Host not found",
                    shown,
                    "temporary DNS failure",
                )
            return status == "notfound"
        if kind in ("reject_unknown_sender_domain", "reject_unknown_recipient_domain"):
            is_sender = kind == "reject_unknown_sender_domain"
            address = ev.sender if is_sender else ev.recipient
            resolved = ev.p.resolve(address)
            status = lookup_status(r, resolved.domain.rstrip("."), ("MX", "A", "AAAA"))
            if status == "retry":
                klass = "Sender address" if is_sender else "Recipient address"
                ev.defer_if(
                    ev.defer_if_permit,
                    450,
                    "4.1.8" if is_sender else "4.1.2",
                    f"<{address}>: {klass} rejected: Domain not found",
                    shown,
                    "temporary DNS failure",
                )
            return status == "notfound"
        if kind == "reject_unknown_reverse_client_hostname":
            # Asked only for a client with a verified name, which came from a PTR record
            # (or from XCLIENT NAME, which sets the reverse name too).
            return False
        return None


class DnsEngine(Engine):
    """The decision engine with every DNS question answered from `resolver`.

    ``decide()`` returns the decision under the zone's answers; ``Decision.outside`` still
    lists each question, with the outcome had it been answered "yes" regardless."""

    def __init__(self, config: PostfixConfig, resolver: Resolver) -> None:
        super().__init__(config)
        self.resolver = resolver
        self.unmodelled: list[str] = []

    def _evaluate(
        self, policy: core.ServicePolicy, client: ClientContext, answers: dict[int, bool]
    ) -> tuple[Decision, list[tuple[str, str, str]]]:
        oracle = _Oracle(self.resolver, dict(answers))
        # Engine._evaluate, with the oracle as the answers (it reads each question and the
        # session state from the _Eval when asked). Keep in step with Engine._evaluate.
        ev = core._Eval(policy, client, oracle)  # type: ignore[arg-type]
        oracle.ev = ev
        outcome = core._run_session(ev)
        if policy.soft_bounce and outcome.code >= 500:
            outcome = core._Outcome(
                outcome.command,
                outcome.code - 100,
                "4" + outcome.text[1:] if outcome.text[:1] == "5" else outcome.text,
            )
        result = (
            Decision(
                policy.key,
                outcome.command,  # type: ignore[arg-type]
                outcome.code,
                outcome.text,
                core._verdict(outcome.code),  # type: ignore[arg-type]
                tuple(ev.trace),
                (),
                self._warnings(policy),
            ),
            ev.questions,
        )
        if not answers:
            self.unmodelled.extend(oracle.unmodelled)
        return result


__all__ = [
    "ClientNames",
    "DnsEngine",
    "Resolver",
    "client_names",
    "dnsxl_listed",
    "filter_matches",
    "lookup_status",
]
