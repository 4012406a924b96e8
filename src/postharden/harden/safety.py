"""The safety proof of a plan: legitimate mail still flows, and no service relays.

Before anything is written, the decision engine (postharden.access) answers, for the old
and the new configuration and for every smtpd service, what these clients get:

- a stranger (outside mynetworks, no SASL) sending to each domain this server receives
  for (mydestination, virtual alias and mailbox domains, relay_domains);
- a host of each network the admin trusts (mynetworks entries the plan keeps, and
  loopback) relaying to a foreign domain and sending to our domains;
- a SASL-authenticated user (on services with smtpd_sasl_auth_enable = yes) relaying:
  over STARTTLS when the service offers TLS (smtpd_tls_security_level may or encrypt and a
  certificate), and on a plaintext session.

Clients that are not SASL users say STARTTLS when the service offers it (as MTAs do).

A flow that was accepted before and is not after is a broken flow: the plan says so and
apply refuses without --force. There is one exception: a flow from an outside address
(a stranger, or a SASL user connecting from outside) that was accepted
only because a mynetworks entry the plan removes trusted it (`0.0.0.0/0`, a /1 half,
a class-style network) was never legitimate; such a flow is reported as an intended
closure, with the reason. Likewise a plaintext SASL login that the plan stops by asking
for TLS first (smtpd_tls_auth_only = yes, smtpd_tls_security_level = encrypt) is intended
when the same user still gets through over STARTTLS after the plan. The relay analysis of
the new configuration must show no open service.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from postharden.config import Definition, PostfixConfig, Service, split_list

OUTSIDE = "203.0.113.7"
OUTSIDE_NAME = "client.example.net"
FOREIGN = "relay-test.example"
SASL_USER = "postharden-user"


@dataclass(frozen=True, slots=True)
class Flow:
    service: str
    client: str  # outside | mynetworks:<address> | sasl | sasl+tls (after STARTTLS)
    address: str
    sasl_user: str | None
    recipient: str
    destination: str  # local | virtual-alias | virtual-mailbox | relay | foreign
    tls: bool = False  # the client says STARTTLS

    @property
    def label(self) -> str:
        return f"{self.service}: {self.client} -> {self.destination} <{self.recipient}>"


@dataclass(frozen=True, slots=True)
class FlowResult:
    flow: Flow
    before: str  # "250 ...", "554 ...", "unavailable: ..."
    after: str
    worked_before: bool
    works_after: bool
    # Why a flow that stops is meant to stop (trust the plan removes), or None.
    intended: str | None = None

    @property
    def broken(self) -> bool:
        return self.worked_before and not self.works_after and self.intended is None

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.flow.service,
            "client": self.flow.client,
            "address": self.flow.address,
            "sasl_user": self.flow.sasl_user,
            "destination": self.flow.destination,
            "recipient": self.flow.recipient,
            "before": self.before,
            "after": self.after,
            "broken": self.broken,
            "intended": self.intended,
        }


@dataclass(frozen=True)
class Proof:
    flows: tuple[FlowResult, ...]
    relays: tuple[tuple[str, str, str], ...]  # (service, verdict, summary) after the plan
    error: str | None = None

    @property
    def broken(self) -> list[FlowResult]:
        return [flow for flow in self.flows if flow.broken]

    @property
    def open_services(self) -> list[tuple[str, str, str]]:
        return [relay for relay in self.relays if relay[1] == "open"]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.broken and not self.open_services

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "error": self.error,
            "flows": [flow.as_dict() for flow in self.flows],
            "broken": [flow.as_dict() for flow in self.broken],
            "relay": [
                {"service": service, "verdict": verdict, "summary": summary}
                for service, verdict, summary in self.relays
            ],
        }


def _first_domain(config: PostfixConfig, parameter: str) -> str | None:
    for token in split_list(config.main.expanded(parameter)):
        if ":" in token or token.startswith("/") or token.startswith("!"):
            continue  # a table or a file: no literal example
        return token.lower()
    return None


def _trusted_hosts(before: PostfixConfig, after: PostfixConfig) -> list[str]:
    """One address per network trusted both before and after (admin-named), loopback first."""

    def networks(config: PostfixConfig) -> set[str]:
        return {token.lower() for token in split_list(config.main.expanded("mynetworks"))}

    kept = networks(before) & networks(after)
    hosts = ["127.0.0.1"]
    for token in sorted(kept):
        text = token
        if text.startswith("["):
            address, _, rest = text[1:].partition("]")
            text = address + rest
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        host = (
            str(network.network_address + 1)
            if network.num_addresses > 2
            else str(network.network_address)
        )
        if host not in hosts:
            hosts.append(host)
    return hosts[:6]


def offers_tls(config: PostfixConfig, service: Service | None) -> bool:
    """STARTTLS that works: smtpd_tls_security_level may or encrypt and a certificate."""
    context = config.effective(service)
    level = context.expanded("smtpd_tls_security_level").strip().lower()
    if not level:
        if context.expanded("smtpd_enforce_tls").strip().lower() == "yes":
            level = "encrypt"
        elif context.expanded("smtpd_use_tls").strip().lower() == "yes":
            level = "may"
    has_cert = any(
        context.expanded(name).strip()
        for name in (
            "smtpd_tls_cert_file",
            "smtpd_tls_eccert_file",
            "smtpd_tls_dcert_file",
            "smtpd_tls_chain_files",
        )
    )
    return level in ("may", "encrypt") and has_cert


def legitimate_flows(before: PostfixConfig, after: PostfixConfig) -> list[Flow]:
    destinations: list[tuple[str, str]] = []
    for kind, parameter in (
        ("local", "mydestination"),
        ("virtual-alias", "virtual_alias_domains"),
        ("virtual-mailbox", "virtual_mailbox_domains"),
        ("relay", "relay_domains"),
    ):
        domain = _first_domain(before, parameter)
        if domain:
            destinations.append((kind, f"postmaster@{domain}"))
    foreign = ("foreign", f"user@{FOREIGN}")
    flows: list[Flow] = []
    hosts = _trusted_hosts(before, after)
    for service in before.smtpd_services():
        key = service.key
        tls = offers_tls(before, service)
        for kind, recipient in destinations:
            flows.append(Flow(key, "outside", OUTSIDE, None, recipient, kind, tls))
        for host in hosts:
            for kind, recipient in [*destinations, foreign]:
                flows.append(Flow(key, f"mynetworks:{host}", host, None, recipient, kind, tls))
        if before.effective(service).expanded("smtpd_sasl_auth_enable") == "yes":
            for kind, recipient in [*destinations, foreign]:
                if tls:
                    flows.append(Flow(key, "sasl+tls", OUTSIDE, SASL_USER, recipient, kind, True))
                flows.append(Flow(key, "sasl", OUTSIDE, SASL_USER, recipient, kind, False))
    return flows


def _tls_first(after: PostfixConfig, service: str) -> str | None:
    """Why the service after the plan wants TLS before AUTH or MAIL, or None."""
    context = after.effective(after.service(service))
    if context.expanded("smtpd_tls_auth_only").strip().lower() == "yes":
        return f"smtpd_tls_auth_only = yes ({context.origin('smtpd_tls_auth_only')})"
    if context.expanded("smtpd_tls_security_level").strip().lower() == "encrypt":
        where = context.origin("smtpd_tls_security_level")
        return f"smtpd_tls_security_level = encrypt ({where})"
    return None


def _with_mynetworks(config: PostfixConfig, value: str) -> PostfixConfig:
    """The configuration with main.cf's mynetworks replaced (the trust after the plan)."""
    definitions = [d for d in config.definitions if d.name != "mynetworks"]
    definitions.append(Definition("mynetworks", value, 0, 0))
    return PostfixConfig(
        config.config_dir,
        definitions,
        list(config.services),
        config.defaults,
        list(config.problems),
        config.master_cf_present,
    )


def prove(before: PostfixConfig, after: PostfixConfig) -> Proof:
    """Run the decision engine on both configurations (see the module docstring)."""
    try:
        from postharden.access import ClientContext, Engine, analyze_relay
    except ImportError as error:  # pragma: no cover - the package ships access
        return Proof((), (), f"the decision engine is not available: {error}")
    try:
        engine_before, engine_after = Engine(before), Engine(after)
        after_trust = after.main.expanded("mynetworks")
        engine_untrusted: Engine | None = None
        if before.main.expanded("mynetworks") != after_trust:
            engine_untrusted = Engine(_with_mynetworks(before, after_trust))
        results: list[FlowResult] = []
        for flow in legitimate_flows(before, after):
            context = ClientContext(
                address=flow.address,
                name=OUTSIDE_NAME if flow.address == OUTSIDE else "localhost",
                helo=OUTSIDE_NAME,
                sasl_user=flow.sasl_user,
                sender=f"sender@{OUTSIDE_NAME}",
                recipient=flow.recipient,
                tls=flow.tls,
            )
            old = engine_before.decide(flow.service, context)
            try:
                after.service(flow.service)
            except Exception:
                results.append(FlowResult(flow, old.reply, "service removed", old.accepted, False))
                continue
            new = engine_after.decide(flow.service, context)
            intended = None
            if (
                flow.address == OUTSIDE
                and old.accepted
                and not new.accepted
                and engine_untrusted is not None
                and not engine_untrusted.decide(flow.service, context).accepted
            ):
                intended = (
                    "accepted before only because mynetworks trusted this outside address; "
                    f"the plan limits mynetworks to: {after_trust}"
                )
            if (
                intended is None
                and flow.sasl_user is not None
                and not flow.tls
                and old.accepted
                and not new.accepted
                and offers_tls(after, after.service(flow.service))
            ):
                reason = _tls_first(after, flow.service)
                over_tls = engine_after.decide(flow.service, context._replace(tls=True))
                if reason is not None and over_tls.accepted:
                    intended = (
                        f"the plan asks for TLS before a login ({reason}): this SASL user "
                        "still gets through after STARTTLS, not on a plaintext session"
                    )
            results.append(
                FlowResult(flow, old.reply, new.reply, old.accepted, new.accepted, intended)
            )
        report = analyze_relay(after, engine_after)
        relays = tuple((s.service, s.verdict, s.summary) for s in report.services)
    except Exception as error:  # the engine is a library: report, never crash the plan
        return Proof((), (), f"the decision engine failed: {type(error).__name__}: {error}")
    return Proof(tuple(results), relays)
