"""Relay analysis: for every smtpd service, who can send mail to whom, and the way in.

The matrix asks the decision engine about client classes (outside and unauthenticated,
inside mynetworks, SASL-authenticated, and each network or host name that an access map
or mynetworks singles out) against destination classes (local, virtual alias, virtual
mailbox, relay_domains, foreign). A service is OPEN when a client that is neither in
mynetworks nor authenticated gets a foreign recipient accepted; the path names the client,
the sender that worked, and the rule that let it through with its file:line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from postharden.access.engine import Engine, ServicePolicy
from postharden.access.lists import MatchList
from postharden.access.model import (
    ClientClass,
    ClientContext,
    Decision,
    DestinationClass,
    MatrixCell,
    RelayPath,
    RelayReport,
    RelayVerdict,
    Risk,
    ServiceRelay,
)
from postharden.access.tables import Table
from postharden.config import PostfixConfig, Service

OUTSIDE_ADDRESS = "203.0.113.7"  # TEST-NET-3: nobody's network
FOREIGN_DOMAIN = "relay-test.example"
_TRUSTED_CLASSES = ("mynetworks", "sasl")
_PRIVATE = [
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
]


def analyze_relay(config: PostfixConfig, engine: Engine | None = None) -> RelayReport:
    """The relay verdict, path, matrix and risks of every smtpd service."""
    engine = engine or Engine(config)
    services = tuple(_analyze_service(engine, service) for service in config.smtpd_services())
    return RelayReport(str(config.config_dir), config.postfix_version, services)


def _listen(service: Service) -> str:
    listen = service.listen
    if listen is None:
        return service.type
    host, port = listen
    return f"{host}:{port}" if host else port


def _analyze_service(engine: Engine, service: Service) -> ServiceRelay:
    policy = engine.policy(service)
    origin = f"master.cf:{service.first_line}"
    listen = _listen(service)
    if policy.startup_problem is not None:
        message, where = policy.startup_problem
        summary = f"unavailable: smtpd refuses to run ({where}): {message}"
        return ServiceRelay(
            service.key,
            origin,
            listen,
            "unavailable",
            summary,
            unavailable=f"{where}: {message}",
            risks=tuple(_risks(policy, service)),
        )
    clients = _client_classes(policy)
    destinations = _destination_classes(policy)
    senders = _sender_variants(policy)
    helos = _helo_variants(policy)
    tls_works = policy.tls_offered and policy.tls_has_cert
    matrix: list[MatrixCell] = []
    path: RelayPath | None = None
    depends: RelayPath | None = None
    for client in clients:
        for destination in destinations:
            best: Decision | None = None
            best_context: ClientContext | None = None
            # A SASL client logs in after STARTTLS when it can; other clients are asked
            # without and with STARTTLS (reject_plaintext_session, TLS-only paths).
            tls_options = (
                [True]
                if client.sasl_user and tls_works
                else ([False, True] if tls_works else [False])
            )
            variants = [(s, h, t) for t in tls_options for s in senders for h in helos]
            for sender, helo, tls in variants:
                context = ClientContext(
                    client.address,
                    client.name,
                    helo,
                    client.sasl_user,
                    sender,
                    destination.recipient,
                    tls,
                )
                decision = engine.decide(service, context)
                if best is None or (decision.accepted and not best.accepted):
                    best, best_context = decision, context
                if decision.accepted:
                    break
                if (
                    destination.id == "foreign"
                    and client.id not in _TRUSTED_CLASSES
                    and depends is None
                    and any(o.if_yes.accepted for o in decision.outside)
                ):
                    item = next(o for o in decision.outside if o.if_yes.accepted)
                    depends = RelayPath(
                        client.label,
                        destination.label,
                        f"{item.restriction} ({item.question})",
                        item.origin,
                        context,
                    )
            assert best is not None and best_context is not None
            relays = destination.id == "foreign" and best.accepted
            matrix.append(MatrixCell(client.id, destination.id, best, relays, best_context))
            if relays and client.id not in _TRUSTED_CLASSES and path is None:
                rule, rule_origin = _deciding_rule(best)
                path = RelayPath(client.label, destination.label, rule, rule_origin, best_context)
    risks = tuple(_risks(policy, service))
    verdict: RelayVerdict
    if path is not None:
        verdict = "open"
        summary = (
            f"OPEN: {path.client} ({path.example.address}"
            f"{', sender <' + path.example.sender + '>' if path.example.sender else ''}) "
            f"relays to {path.destination} through {path.rule} at {path.origin}"
        )
    elif depends is not None:
        verdict = "depends"
        path = depends
        summary = (
            f"closed unless an outside answer says yes: {depends.client} relays when "
            f"{depends.rule} at {depends.origin}"
        )
    else:
        verdict = "closed"
        summary = (
            "closed: only trusted clients (mynetworks, SASL) relay"
            if any(cell.relays for cell in matrix)
            else "closed: no client relays"
        )
    return ServiceRelay(
        service.key,
        origin,
        listen,
        verdict,
        summary,
        path,
        None,
        tuple(clients),
        tuple(destinations),
        tuple(matrix),
        risks,
    )


def _deciding_rule(decision: Decision) -> tuple[str, str]:
    for step in reversed(decision.trace):
        if step.result == "permit" and step.stage in (
            "relay",
            "recipient",
            "client",
            "helo",
            "sender",
        ):
            detail = f" ({step.detail})" if step.detail else ""
            return f"{step.restriction}{detail} in {_stage_parameter(step.stage)}", step.origin
    relay = [s for s in decision.trace if s.stage in ("relay", "recipient")]
    where = relay[-1].origin if relay else "default"
    return "no restriction rejects the recipient", where


def _stage_parameter(stage: str) -> str:
    return {
        "relay": "smtpd_relay_restrictions",
        "recipient": "smtpd_recipient_restrictions",
        "client": "smtpd_client_restrictions",
        "helo": "smtpd_helo_restrictions",
        "sender": "smtpd_sender_restrictions",
    }.get(stage, stage)


# -- classes --------------------------------------------------------------------------


# Documentation addresses (RFC 5737, RFC 3849) make the best examples: they say "some
# stranger" and Postfix accepts them in XCLIENT, which refuses 0.0.0.0/8 ("Bad ADDR syntax").
_EXAMPLE_ADDRESSES = tuple(
    ipaddress.ip_address(text)
    for text in ("203.0.113.9", "198.51.100.9", "192.0.2.9", "2001:db8::9")
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")


def _representative(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    if network.num_addresses == 1:
        return str(network.network_address)
    for example in _EXAMPLE_ADDRESSES:
        if example.version == network.version and example in network:
            return str(example)
    candidate = network.network_address + 1
    if isinstance(network, ipaddress.IPv4Network) and candidate in _THIS_NETWORK:
        candidate = ipaddress.IPv4Address("1.0.0.1")
        if candidate not in network:
            return str(network.network_address + 1)
    return str(candidate)


def _list_networks(lst: MatchList) -> Iterator[tuple[str, str]]:
    """(address, entry) for every network or address a match list names."""
    for item in lst.items:
        if item.negate:
            continue
        if item.network is not None:
            version, net, mask = item.network
            prefix = bin(mask).count("1")
            network = (
                ipaddress.ip_network((net, prefix))
                if version == 4
                else ipaddress.IPv6Network((net, prefix))
            )
            yield _representative(network), item.text
        elif item.table is not None:
            yield from _table_networks(item.table)
        else:
            try:
                yield str(ipaddress.ip_address(item.pattern.strip("[]"))), item.text
            except ValueError:
                continue


def _table_networks(table: Table) -> Iterator[tuple[str, str]]:
    for key, hit in table.cidr_rules():
        if key.startswith("!"):
            continue
        yield _representative(ipaddress.ip_network(key)), f"{key} ({hit.where})"
    for key, hit in table.entries():
        text = key
        try:
            yield str(ipaddress.ip_address(text)), f"{key} ({hit.where})"
            continue
        except ValueError:
            pass
        parts = text.split(".")
        if 1 <= len(parts) < 4 and all(p.isdigit() and int(p) < 256 for p in parts):
            padded = ".".join(parts + ["1"] * (4 - len(parts)))
            yield padded, f"{key} ({hit.where})"


def _client_tables(policy: ServicePolicy) -> list[Table]:
    tables: list[Table] = []
    for stage in ("client", "helo", "sender", "relay", "recipient"):
        words = policy.lists[stage].words
        default = stage in ("client",)
        for i, word in enumerate(words):
            lowered = word.lower()
            if lowered in ("check_client_access", "check_reverse_client_access") and i + 1 < len(
                words
            ):
                tables.append(policy.tables.get(words[i + 1]))
            elif (
                ":" in word
                and default
                and (i == 0 or not words[i - 1].lower().startswith("check_"))
            ):
                tables.append(policy.tables.get(word))
    for name, lst in policy.classes.items():
        del name
        for i, word in enumerate(lst.words):
            if word.lower() == "check_client_access" and i + 1 < len(lst.words):
                tables.append(policy.tables.get(lst.words[i + 1]))
    return tables


def _client_classes(policy: ServicePolicy) -> list[ClientClass]:
    classes = [ClientClass("outside", "outside client, not authenticated", OUTSIDE_ADDRESS)]
    seen = {OUTSIDE_ADDRESS}
    for address, entry in _list_networks(policy.mynetworks):
        if address in seen:
            continue
        seen.add(address)
        classes.append(ClientClass("mynetworks", f"mynetworks client ({entry})", address))
        break
    for table in _client_tables(policy):
        for address, entry in _table_networks(table):
            if address in seen:
                continue
            seen.add(address)
            classes.append(ClientClass(f"network:{entry}", f"client {address} ({entry})", address))
        for key, hit in table.entries():
            if any(ch.isalpha() for ch in key) and "." in key and "@" not in key:
                name = key.lstrip(".")
                host = name if key.startswith(".") is False else f"host.{name}"
                classes.append(
                    ClientClass(
                        f"name:{key}", f"client named {host} ({hit.where})", OUTSIDE_ADDRESS, host
                    )
                )
    classes.append(
        ClientClass("sasl", "SASL-authenticated client", OUTSIDE_ADDRESS, None, "relay-test-user")
    )
    return classes


def _domain_example(lst: MatchList) -> str | None:
    for item in lst.items:
        if item.negate:
            continue
        if item.table is not None:
            keys = [k for k in item.table.entry_keys if "@" not in k]
            if keys:
                return keys[0].lstrip(".")
            continue
        pattern = item.pattern
        if pattern.startswith("."):
            return "sub" + pattern
        if pattern and "/" not in pattern:
            return pattern
    return None


def _destination_classes(policy: ServicePolicy) -> list[DestinationClass]:
    result: list[DestinationClass] = []
    for klass, label, lst in (
        ("local", "local domain (mydestination)", policy.mydestination),
        ("virtual_alias", "virtual alias domain", policy.virtual_alias_domains),
        ("virtual_mailbox", "virtual mailbox domain", policy.virtual_mailbox_domains),
        ("relay", "relay_domains", policy.relay_domains),
    ):
        domain = _domain_example(lst)
        if domain:
            result.append(DestinationClass(klass, label, f"postmaster@{domain}"))
    foreign = FOREIGN_DOMAIN
    result.append(DestinationClass("foreign", "foreign domain", f"someone@{foreign}"))
    return result


def _sender_variants(policy: ServicePolicy) -> list[str]:
    senders = ["sender@example.org", ""]
    for stage in ("client", "helo", "sender", "relay", "recipient"):
        words = policy.lists[stage].words
        for i, word in enumerate(words):
            if word.lower() == "check_sender_access" and i + 1 < len(words):
                table = policy.tables.get(words[i + 1])
                for key, _hit in table.entries():
                    if key.endswith("@"):
                        senders.append(key + "example.org")
                    elif "@" in key:
                        senders.append(key)
                    elif "." in key:
                        senders.append("someone@" + key.lstrip("."))
    for domain in (_domain_example(policy.mydestination),):
        if domain:
            senders.append(f"postmaster@{domain}")
    return list(dict.fromkeys(senders))[:12]


def _helo_variants(policy: ServicePolicy) -> list[str | None]:
    helos: list[str | None] = ["mail.example.net"]
    for stage in ("client", "helo", "sender", "relay", "recipient"):
        words = policy.lists[stage].words
        for i, word in enumerate(words):
            if word.lower() == "check_helo_access" and i + 1 < len(words):
                table = policy.tables.get(words[i + 1])
                helos.extend(k.lstrip(".") for k, _ in table.entries() if "@" not in k)
    return list(dict.fromkeys(helos))[:8]


# -- risks ----------------------------------------------------------------------------


def _risks(policy: ServicePolicy, service: Service) -> Iterator[Risk]:
    context = policy.context
    for stage in ("relay", "recipient"):
        lst = policy.lists[stage]
        words = [w.lower() for w in lst.words]
        guard = next(
            (
                i
                for i, w in enumerate(words)
                if w in ("reject_unauth_destination", "defer_unauth_destination")
            ),
            None,
        )
        for i, word in enumerate(words[: guard if guard is not None else len(words)]):
            if word == "permit":
                following = lst.words[i + 1] if i + 1 < len(words) else None
                if following is not None:
                    yield Risk(
                        "permit-shadows-reject",
                        f"{lst.parameter}: `permit' before `{following}': every later "
                        f"restriction is ignored (Postfix: restriction `{following}' after "
                        "`permit' is ignored)",
                        lst.origin,
                    )
            elif word == "permit_mx_backup":
                yield Risk(
                    "permit-mx-backup",
                    f"{lst.parameter}: permit_mx_backup relays for any domain whose MX "
                    "lists this host (DNS decides, not this configuration)",
                    lst.origin,
                )
            elif guard is not None and (
                word.startswith("check_") and word.endswith("_access") and i + 1 < len(words)
            ):
                table = policy.tables.get(lst.words[i + 1])
                for key, hit in table.entries() + table.cidr_rules():
                    action = hit.value.split(None, 1)[0].upper() if hit.value else "OK"
                    if action in ("OK", "RELAY") or action.isdigit():
                        yield Risk(
                            "access-ok-before-reject",
                            f"{lst.parameter}: {lst.words[i]} {table.spec} answers {action} "
                            f"for {key} ({hit.where}) ahead of reject_unauth_destination",
                            lst.origin,
                        )
    yield from _mynetworks_risks(policy)
    listen = service.listen
    port = listen[1] if listen else ""
    if port in ("25", "smtp") and policy.sasl_enabled:
        uses_sasl = any(
            "permit_sasl_authenticated" in (w.lower() for w in policy.lists[s].words)
            for s in ("relay", "recipient")
        )
        tls_only = context.expanded("smtpd_tls_auth_only").strip().lower() == "yes"
        if uses_sasl and not tls_only:
            yield Risk(
                "sasl-port25-plaintext",
                "permit_sasl_authenticated on port 25 with smtpd_tls_auth_only = no: "
                "passwords may cross the network in clear and port 25 becomes a "
                "password-guessing target",
                str(context.origin("smtpd_sasl_auth_enable")),
            )


def _own_addresses() -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    from postharden.config.defaults import machine_addresses

    return frozenset(entry.address.ip for entry in machine_addresses())


def _mynetworks_risks(policy: ServicePolicy) -> Iterator[Risk]:
    context = policy.context
    origin = str(context.origin("mynetworks"))
    if not context.is_set("mynetworks"):
        style = context.expanded("mynetworks_style").strip().lower()
        if style in ("subnet", "class"):
            yield Risk(
                "mynetworks-style",
                f"mynetworks is not set and mynetworks_style = {style}: every host on this "
                "machine's networks may relay (a cloud VM or docker bridge trusts strangers)",
                str(context.origin("mynetworks_style")),
            )
    uses = any(
        "permit_mynetworks" in (w.lower() for w in policy.lists[s].words)
        for s in ("client", "helo", "sender", "relay", "recipient")
    )
    total = 0
    for item in policy.mynetworks.items:
        if item.negate or item.network is None:
            continue
        version, net, mask = item.network
        prefix = bin(mask).count("1")
        network = (
            ipaddress.ip_network((net, prefix))
            if version == 4
            else ipaddress.IPv6Network((net, prefix))
        )
        if network.prefixlen == 0:
            yield Risk(
                "mynetworks-everything",
                f"mynetworks contains {item.text}: every client on the Internet is trusted"
                + (" (and permit_mynetworks lets it relay)" if uses else ""),
                origin,
            )
            continue
        if any(network.subnet_of(p) for p in _PRIVATE if p.version == network.version):  # type: ignore[arg-type]
            continue
        if network.num_addresses == 1 and network.network_address in _own_addresses():
            # The server's own address (mynetworks_style = host lists it): trusting
            # yourself is how local programs submit over SMTP, not a relay risk.
            continue
        total += network.num_addresses
        yield Risk(
            "mynetworks-wide",
            f"mynetworks entry {item.text} trusts {network.num_addresses} public addresses",
            origin,
        )
    del total
