"""Random Postfix configurations and client contexts for the differential tests.

One Postfix instance carries many configurations: each is an smtpd service in master.cf
whose restriction lists, mynetworks, delay/helo/relay-order settings and SASL switch are
`-o` overrides (the submission-style per-service configuration of real mail stacks).
Instance-wide: compatibility_level, the domain classes (mydestination, relay_domains,
virtual alias and mailbox domains), and the access maps, of every type.

Each service also draws its TLS settings (smtpd_tls_security_level none/may/encrypt, a
self-signed certificate made with openssl or none, smtpd_tls_auth_only, disable_vrfy_command,
smtpd_etrn/data/end_of_data_restrictions); each client identity draws STARTTLS or not, an
IPv4 or IPv6 address (XCLIENT ADDR=IPV6:..., every service runs with inet_protocols
ipv4,ipv6) and one verb (RCPT, VRFY, EXPN, ETRN or DATA) for all its cases.

Avoided because a loopback sandbox cannot answer them like the real world: DNS-based
restrictions (RBLs, reject_unknown_*_domain/helo, MX/NS/A checks), policy services,
permit_inet_interfaces (XCLIENT does not change the peer address smtpd compares),
reverse-client checks (XCLIENT NAME=[UNAVAILABLE] keeps the real reverse name).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from postharden.access import ClientContext

NETWORKS = {
    "lan": "10.1.0.0/16",
    "office": "192.168.7.0/24",
    "partner": "198.51.100.0/24",
    "host": "192.0.2.44/32",
    "wide": "0.0.0.0/0",
    "v6doc": "[2001:db8::]/32",
    "v6net": "[2001:db8:1::]/48",
    "v6host": "[2001:db8:7::9]",
}
ADDRESSES = [
    "10.1.2.3",
    "10.9.9.9",
    "192.168.7.20",
    "198.51.100.7",
    "198.51.100.200",
    "192.0.2.44",
    "192.0.2.45",
    "203.0.113.9",
    "203.0.113.200",
    "2001:db8::9",
    "2001:db8:1:2::3",
    "2001:db8:5::1",
    "2001:db8:7::9",
    "2001:dc8::1",
]
NAMES = [
    None,
    "mail.example.net",
    "host.spam.example",
    "client.example.com",
    "relay.partner.example",
]
HELOS = [
    None,
    "mail.example.net",
    "localhost",
    "nodots",
    "[192.0.2.1]",
    "[999.1.1.1]",
    "192.0.2.8",
    "trailing.example.",
    "bad_under.example",
    "-bad.example",
    "spam.example",
]
SENDERS = [
    "",
    "user@example.net",
    "root@example.com",
    "spammer@spam.example",
    "Boss@Example.COM",
    "user",
    "nobody@mx.example.com",
    "x@nodot",
    "friend@partner.example",
    "info@sub.spam.example",
]
RECIPIENTS = [
    "root@example.com",
    "nosuchuser@example.com",
    "postmaster@mx.example.com",
    "ROOT@MX.EXAMPLE.COM",
    "user@relay.example",
    "user@sub.relay.example",
    "x@foreign.example",
    "victim@spam.example",
    "alias@valias.example",
    "nobody@valias.example",
    "box@vmail.example",
    "unknown@vmail.example",
    "postmaster",
    "root",
    "root@localhost",
    "user@[127.0.0.1]",
    "a@nodot",
    "x@partner.example",
]

# name -> (type, content); referenced as type:$config_directory/name.
CLIENT_MAPS = {
    "clients.cidr": (
        "cidr",
        "10.1.0.0/16 OK\n198.51.100.7 REJECT go away\n192.0.2.44 DUNNO\n"
        "!198.51.100.0/24 DEFER_IF_PERMIT not partner\n198.51.100.0/25 450 4.7.1 slow down\n"
        "2001:db8:5::/48 REJECT v6 says no\n[2001:db8:1::]/48 OK\n!2001:db8::/32 DUNNO\n"
        "2001:db8::/33 DEFER_IF_PERMIT v6 half\n",
    ),
    "clients.hash": (
        "hash",
        "10.1 OK\n198.51.100 REJECT\n192.0.2.44 554 5.7.1 banned host\nspam.example REJECT spam\n"
        "partner.example OK\nmail.example.net WARN watched\n2001:db8:5 OK\n"
        "2001:db8:1:2::3 REJECT v6 host\n",
    ),
    "clients.lmdb": ("lmdb", "198.51.100.7 OK\n203.0.113 REJECT\nexample.com DUNNO\n"),
    "clients.texthash": ("texthash", "192.168.7 OK\n203.0.113.9 DEFER\n.spam.example REJECT\n"),
    "clients.regexp": ("regexp", "/^198\\.51\\.100\\.2/ REJECT regexp says no\n/spam/ 550 spam\n"),
    "clients.pcre": (
        "pcre",
        "/^10\\.9\\./ DEFER_IF_REJECT\n/^203\\.0\\.113\\.(\\d+)$/ PREPEND X-Client: $1\n",
    ),
}
HELO_MAPS = {
    "helo.hash": ("hash", "localhost REJECT you are not me\nspam.example REJECT\nexample.net OK\n"),
    "helo.regexp": ("regexp", "/^\\[/ 554 literal\n/^[^.]*$/ REJECT need dots\n"),
    "helo.pcre": ("pcre", "/\\.example\\.?$/ DUNNO\n/^nodots$/ OK\n"),
}
SENDER_MAPS = {
    "senders.hash": (
        "hash",
        "example.com OK\nspam.example REJECT spam sender\n<> 550 no bounces\nuser@ OK\n"
        "friend@partner.example DEFER_IF_PERMIT\n",
    ),
    "senders.texthash": ("texthash", "boss@example.com REJECT forged\nexample.net DUNNO\n"),
    "senders.regexp": ("regexp", "/^$/ OK\n/@nodot$/ REJECT\n"),
}
RECIPIENT_MAPS = {
    "recipients.hash": (
        "hash",
        "foreign.example OK\nrelay.example REJECT relay off\nroot@example.com DUNNO\n"
        "victim@spam.example 554 5.7.1 no\n",
    ),
    "recipients.lmdb": ("lmdb", "x@foreign.example REJECT\npostmaster@ OK\n"),
    "recipients.pcre": ("pcre", "/^box@/ OK\n/@partner\\.example$/ permit_mynetworks, reject\n"),
    "recipients.cidr": ("cidr", "10.0.0.0/8 OK\n"),
}
INLINE = {
    "client": "inline:{198.51.100.200=OK,192.0.2.45=REJECT}",
    "helo": "inline:{mail.example.net=OK,localhost=REJECT}",
    "sender": "inline:{spam.example=REJECT,example.net=OK}",
    "recipient": "inline:{foreign.example=REJECT,vmail.example=OK}",
}
ALL_MAPS = {**CLIENT_MAPS, **HELO_MAPS, **SENDER_MAPS, **RECIPIENT_MAPS}

SIMPLE = [
    "permit",
    "reject",
    "defer",
    "defer_if_permit",
    "defer_if_reject",
    "warn_if_reject",
    "permit_mynetworks",
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "permit_sasl_authenticated",
    "permit_sasl_authenticated",
    "reject_unauth_destination",
    "defer_unauth_destination",
    "permit_auth_destination",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_hostname",
    "reject_invalid_helo_hostname",
    "reject_invalid_hostname",
    "reject_non_fqdn_sender",
    "reject_non_fqdn_recipient",
    "reject_unlisted_recipient",
    "reject_unlisted_sender",
    "reject_unknown_client_hostname",
    "reject_unknown_client",
    "check_recipient_maps",
    "reject_plaintext_session",
    "permit_tls_clientcerts",
    "permit_tls_all_clientcerts",
    "reject_unauth_pipelining",
]
ETRN_MAP = "hash:$config_directory/etrn.hash"
ETRN_ARGUMENTS = [
    "relay.example",
    "sub.relay.example",
    "example.com",
    "@relay.example",
    "#example.com",
    "[192.0.2.1]",
    "bad..x",
    "nodots",
    "spam.example",
]
VERBS = ["RCPT"] * 9 + ["VRFY"] * 3 + ["ETRN"] * 2 + ["EXPN"] + ["DATA"] * 3
LATE = [
    "reject_unauth_pipelining",
    "reject",
    "defer",
    "permit",
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "reject_plaintext_session",
    "defer_if_permit",
    "warn_if_reject",
    "reject_unauth_destination",
    "permit_tls_clientcerts",
]


def _map_ref(name: str) -> str:
    kind = ALL_MAPS[name][0]
    return f"{kind}:$config_directory/{name}"


def _access(rng: random.Random, kind: str) -> list[str]:
    pool = {
        "client": CLIENT_MAPS,
        "helo": HELO_MAPS,
        "sender": SENDER_MAPS,
        "recipient": RECIPIENT_MAPS,
    }[kind]
    if rng.random() < 0.2:
        return [f"check_{kind}_access", INLINE[kind]]
    name = rng.choice(sorted(pool))
    return [f"check_{kind}_access", _map_ref(name)]


def random_list(rng: random.Random, relay_guard: bool, early: bool = False) -> str:
    """early: the client or helo list. There reject_unlisted_sender is left out: with
    smtpd_delay_reject = yes Postfix 3.7 reads a flag there that smtpd_state_init() never
    initialises (sender_rcptmap_checked), so its answer depends on the previous session."""
    items: list[list[str]] = []
    for _ in range(rng.randint(0, 5)):
        roll = rng.random()
        if roll < 0.45:
            items.append(_access(rng, rng.choice(["client", "helo", "sender", "recipient"])))
        elif roll < 0.5:
            # A bare table is an access map of the list's own kind.
            items.append([_map_ref(rng.choice(sorted(CLIENT_MAPS)))])
        elif roll < 0.51:
            # A table argument missing: Postfix answers 451 4.3.5 when it gets there.
            items.append(["check_client_access"])
        else:
            choice = rng.choice(SIMPLE)
            while early and choice == "reject_unlisted_sender":
                choice = rng.choice(SIMPLE)
            items.append([choice])
    if relay_guard and rng.random() < 0.9:
        guard = rng.choice(["reject_unauth_destination"] * 3 + ["defer_unauth_destination"])
        items.insert(rng.randint(0, len(items)), [guard])
    return ",".join(word for item in items for word in item)


def random_late_list(rng: random.Random, kind: str) -> str:
    """smtpd_etrn_restrictions, smtpd_data_restrictions, smtpd_end_of_data_restrictions."""
    items: list[list[str]] = []
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if kind == "etrn" and roll < 0.3:
            items.append(["check_etrn_access", ETRN_MAP] if roll < 0.2 else [ETRN_MAP])
        elif roll < 0.5:
            items.append(_access(rng, rng.choice(["client", "helo", "sender", "recipient"])))
        else:
            items.append([rng.choice(LATE)])
    return ",".join(word for item in items for word in item)


ANCHOR = [
    "smtpd_sasl_auth_enable=yes",
    "smtpd_tls_security_level=may",
    "smtpd_tls_auth_only=yes",
    "smtpd_relay_restrictions=permit_mynetworks,permit_sasl_authenticated,"
    "reject_unauth_destination",
    "mynetworks=127.0.0.0/8,[2001:db8:1::]/48,192.168.7.0/24",
    "smtpd_client_restrictions=check_client_access,cidr:$config_directory/clients.cidr",
    "smtpd_data_restrictions=reject_plaintext_session",
    "disable_vrfy_command=yes",
    "smtpd_delay_reject=yes",
    "smtpd_relay_before_recipient_restrictions=yes",
    "smtpd_helo_restrictions=",
    "smtpd_sender_restrictions=",
]
_ANCHOR_REPLACES = (
    *(option.partition("=")[0] + "=" for option in ANCHOR),
    "smtpd_tls_cert_file=",
    "mynetworks_style=",
)
ANCHOR_IDENTITIES = [
    ("203.0.113.9", "client.example.com", "mail.example.net", "alice", True, "RCPT"),
    ("203.0.113.9", "client.example.com", "mail.example.net", "alice", False, "RCPT"),
    ("2001:db8:1:2::3", None, "mail.example.net", None, False, "RCPT"),
    ("2001:db8:5::1", None, "mail.example.net", None, True, "RCPT"),
    ("192.0.2.45", None, "mail.example.net", None, True, "VRFY"),
    ("192.168.7.20", None, "mail.example.net", None, False, "DATA"),
    ("192.168.7.20", None, "mail.example.net", None, True, "DATA"),
]


@dataclass
class Instance:
    main_cf: str
    master_cf: str
    maps: dict[str, str]
    services: list[str] = field(default_factory=list)


def random_instance(
    rng: random.Random, services: int, tls_files: dict[str, str] | None = None
) -> Instance:
    compat = rng.choice(["0", "1", "2", "3.6"])
    main = [
        f"compatibility_level = {compat}",
        "myhostname = mx.example.com",
        "mydomain = example.com",
        rng.choice(
            [
                "mydestination = $myhostname, localhost, example.com",
                "mydestination = $myhostname, example.com, localhost.$mydomain",
                "mydestination = mx.example.com example.com",
            ]
        ),
        "alias_maps = texthash:$config_directory/aliases",
        "alias_database =",
        "smtpd_sasl_type = dovecot",
        "smtpd_sasl_path = private/auth",
        "smtpd_tls_cert_file = $config_directory/cert.pem",
        "smtpd_tls_key_file = $config_directory/key.pem",
        # DATA cases really queue mail: deliver nothing anywhere.
        "default_transport = discard",
        "local_transport = discard",
        "virtual_transport = discard",
        "relay_transport = discard",
    ]
    if rng.random() < 0.7:
        main.append(
            rng.choice(
                ["relay_domains = relay.example", "relay_domains = relay.example, .relay.example"]
            )
        )
    if rng.random() < 0.6:
        main.append("virtual_alias_domains = valias.example")
        main.append("virtual_alias_maps = texthash:$config_directory/valias")
    if rng.random() < 0.6:
        main.append("virtual_mailbox_domains = vmail.example")
        main.append("virtual_mailbox_maps = texthash:$config_directory/vmailbox")
    maps = {name: content for name, (_kind, content) in ALL_MAPS.items()}
    maps["aliases"] = "postmaster: root\nwebmaster: root\n"
    maps["valias"] = "alias@valias.example root@example.com\n"
    maps["vmailbox"] = "box@vmail.example vmail/box/\n"
    maps["etrn.hash"] = "relay.example OK\nexample.com REJECT no flush for you\nspam.example 450\n"
    maps.update(tls_files or {})
    master = ["smtp      inet  n       -       n       -       -       smtpd"]
    names = ["smtp"]
    rows: list[str] = [master[0]]
    for index in range(1, services):
        name = f"127.0.0.1:{20000 + index}"  # the sandbox replaces the address and port
        names.append(name)
        rows.append(f"{name} inet n - n - - smtpd")
    lines = []
    for index, row in enumerate(rows):
        lines.append(row)
        options = _random_overrides(rng)
        if index == 0:
            # An anchor every instance has: submission-style SASL behind STARTTLS, IPv6
            # mynetworks (random_queries gives it identities that reach each branch).
            options = [o for o in options if not o.startswith(_ANCHOR_REPLACES)] + ANCHOR
        for option in options:
            lines.append(f"  -o {option}")
    master_cf = "\n".join(lines) + "\n" + _SUPPORT_SERVICES
    return Instance("\n".join(main) + "\n", master_cf, maps, names)


def _random_overrides(rng: random.Random) -> list[str]:
    options = []
    for parameter, guard in (
        ("smtpd_client_restrictions", False),
        ("smtpd_helo_restrictions", False),
        ("smtpd_sender_restrictions", False),
        ("smtpd_relay_restrictions", True),
        ("smtpd_recipient_restrictions", True),
    ):
        if rng.random() < 0.85:
            value = random_list(rng, guard, parameter.split("_")[1] in ("client", "helo"))
            options.append(f"{parameter}={value}")
    if rng.random() < 0.5:
        options.append("smtpd_delay_reject=" + rng.choice(["yes", "no"]))
    if rng.random() < 0.3:
        options.append("smtpd_helo_required=yes")
    if rng.random() < 0.3:
        options.append("smtpd_relay_before_recipient_restrictions=" + rng.choice(["yes", "no"]))
    if rng.random() < 0.2:
        options.append("smtpd_reject_unlisted_sender=yes")
    if rng.random() < 0.15:
        options.append("smtpd_reject_unlisted_recipient=no")
    if rng.random() < 0.1:
        options.append("soft_bounce=yes")
    if rng.random() < 0.1:
        options.append("compatibility_level=" + rng.choice(["0", "3.6"]))
    if rng.random() < 0.5:
        options.append("smtpd_sasl_auth_enable=yes")
    options.append("inet_protocols=ipv4,ipv6")
    level = rng.choice(["none", "may", "may", "may", "encrypt"])
    options.append(f"smtpd_tls_security_level={level}")
    if rng.random() < 0.15:
        options.append("smtpd_tls_cert_file=")
    if rng.random() < 0.4:
        options.append("smtpd_tls_auth_only=yes")
    if rng.random() < 0.15:
        options.append("smtpd_tls_ask_ccert=yes")
    if rng.random() < 0.3:
        options.append("disable_vrfy_command=yes")
    for kind, parameter in (
        ("etrn", "smtpd_etrn_restrictions"),
        ("data", "smtpd_data_restrictions"),
        ("eod", "smtpd_end_of_data_restrictions"),
    ):
        if rng.random() < 0.5:
            options.append(f"{parameter}={random_late_list(rng, kind)}")
    roll = rng.random()
    if roll < 0.6:
        chosen = rng.sample(sorted(NETWORKS), rng.randint(1, 3))
        if "wide" in chosen and rng.random() < 0.7:
            chosen.remove("wide")
        entries = ["127.0.0.0/8"] + [NETWORKS[c] for c in chosen]
        if rng.random() < 0.2:
            entries.append("!192.168.7.20")
            entries.reverse()
        if rng.random() < 0.2:
            entries.append("cidr:$config_directory/clients.cidr")
        if rng.random() < 0.15:
            entries.append(rng.choice(["partner.example", ".spam.example", "mail.example.net"]))
        options.append("mynetworks=" + ",".join(entries))
    elif roll < 0.8:
        options.append("mynetworks_style=" + rng.choice(["host", "subnet"]))
    return options


_SUPPORT_SERVICES = """\
flush     unix  n       -       n       1000?   0       flush
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
"""


@dataclass(frozen=True)
class Query:
    service: str
    context: ClientContext


def random_queries(
    rng: random.Random, services: list[str], count: int, *, data: bool = False
) -> list[Query]:
    """Cases grouped in few client identities per service, so sessions carry many cases.

    DATA cases only with `data` (the sandbox's own `run` asks RCPT, VRFY, EXPN and ETRN;
    realpostfix.ask sends DATA itself)."""
    queries = []
    per_service = max(1, count // len(services))
    for service in services:
        identities = []
        for _ in range(max(2, per_service // 12)):
            sasl = rng.choice([None, "alice"])
            tls = rng.random() < 0.4
            # One verb per identity: Postfix carries state from one MAIL to a later VRFY
            # of the same session (defer_if_permit_sender), so verbs get sessions of their own.
            verb = rng.choice(VERBS)
            if verb == "DATA" and not data:
                verb = "RCPT"
            identities.append(
                (rng.choice(ADDRESSES), rng.choice(NAMES), rng.choice(HELOS), sasl, tls, verb)
            )
        if service == services[0]:
            identities[: len(ANCHOR_IDENTITIES)] = [
                i if data or i[5] != "DATA" else (*i[:5], "RCPT") for i in ANCHOR_IDENTITIES
            ]
        for index in range(per_service):
            if index < len(identities):
                address, name, helo, sasl, tls, verb = identities[index]
            else:
                address, name, helo, sasl, tls, verb = rng.choice(identities)
            target = rng.choice(ETRN_ARGUMENTS if verb == "ETRN" else RECIPIENTS)
            context = ClientContext(
                address, name, helo, sasl, rng.choice(SENDERS), target, tls, verb
            )
            queries.append(Query(service, context))
    return queries
