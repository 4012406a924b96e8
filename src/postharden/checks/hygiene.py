"""Access hygiene: HELO, envelope sanity, pipelining, DNS-based restrictions, RBLs,
policy services, and the SMTP smuggling protections."""

from __future__ import annotations

from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, readme_ref, rfc_ref
from postharden.checks.env import CheckEnv, ServiceView, is_loopback_host, yes
from postharden.checks.lists import (
    RESTRICTION_LISTS,
    find_restrictions,
    join_restrictions,
    list_tokens,
    pairs,
    with_added,
    without,
)
from postharden.checks.model import Category, Fix, Hit, NotApplicable, Reference, Severity
from postharden.config import split_list

RBL_RESTRICTIONS = frozenset(
    {
        "reject_rbl_client",
        "reject_rhsbl_client",
        "reject_rhsbl_sender",
        "reject_rhsbl_helo",
        "reject_rhsbl_recipient",
        "reject_rhsbl_reverse_client",
    }
)
# DNS blocklists that were shut down. Some answer "listed" for every query once the
# domain lapsed (ahbl.org did from 2015), which rejects all mail.
DEAD_RBLS = (
    "sorbs.net",
    "njabl.org",
    "ahbl.org",
    "dsbl.org",
    "spamcannibal.org",
    "rfc-ignorant.org",
    "dnsbl.ahbl.org",
    "blackholes.mail-abuse.org",
    "relays.mail-abuse.org",
    "ordb.org",
)


@check(
    "PH-ACC-001",
    "HELO/EHLO is not required",
    Category.ACCESS,
    Severity.MEDIUM,
    implements=("runbook:helo",),
    references=(postconf_ref("smtpd_helo_required"), rfc_ref(5321, "4.1.4")),
)
def helo_required(env: CheckEnv) -> Iterable[Hit]:
    """Without `smtpd_helo_required = yes` a client may skip HELO/EHLO.

    Spam software often does; and every HELO restriction is skipped when there is no
    HELO. The runbook requires it on every public service.
    """
    for view in env.public_services():
        if not yes(view.context.expanded("smtpd_helo_required")):
            yield Hit(
                f"{view.key} does not require HELO/EHLO",
                service=view.key,
                parameter="smtpd_helo_required",
                evidence=(env.evidence(view.context, "smtpd_helo_required"),),
                fix=env.set_fix(view.context, {"smtpd_helo_required": "yes"}, "require HELO/EHLO"),
                location=env.location(view.context, "smtpd_helo_required"),
            )


HELO_CHECKS = frozenset(
    {
        "reject_invalid_helo_hostname",
        "reject_non_fqdn_helo_hostname",
        "reject_invalid_hostname",
        "reject_non_fqdn_hostname",
    }
)


@check(
    "PH-ACC-002",
    "HELO host names are not validated",
    Category.ACCESS,
    Severity.LOW,
    implements=("checklist:helo-sender-checks",),
    references=(postconf_ref("smtpd_helo_restrictions"), readme_ref("SMTPD_ACCESS_README")),
)
def helo_validation(env: CheckEnv) -> Iterable[Hit]:
    """No `reject_invalid_helo_hostname` / `reject_non_fqdn_helo_hostname` on port 25.

    Malformed or unqualified HELO names (`HELO localhost`, `HELO [bad`) are a cheap and
    safe spam signal; these two restrictions need no DNS. The fix adds them to
    `smtpd_helo_restrictions` after the permits for your own and authenticated clients.
    (The pre-2.3 names `reject_invalid_hostname` / `reject_non_fqdn_hostname` still work.)
    """
    for view in env.mx_services():
        context = view.context
        if find_restrictions(context, HELO_CHECKS):
            continue
        current = list_tokens(context, "smtpd_helo_restrictions")
        base = current or ["permit_mynetworks", "permit_sasl_authenticated"]
        value = join_restrictions(base)
        if current:
            value = with_added(
                context,
                "smtpd_helo_restrictions",
                ["reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname"],
            )
        else:
            value += ", reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname"
        yield Hit(
            f"{view.key} accepts any HELO name",
            service=view.key,
            parameter="smtpd_helo_restrictions",
            evidence=(env.evidence(context, "smtpd_helo_restrictions"),),
            fix=env.set_fix(
                context,
                {"smtpd_helo_restrictions": value},
                "reject invalid and unqualified HELO names",
            ),
            location=env.location(context, "smtpd_helo_restrictions"),
        )


@check(
    "PH-ACC-003",
    "Unqualified envelope addresses are accepted",
    Category.ACCESS,
    Severity.LOW,
    implements=("checklist:helo-sender-checks",),
    references=(postconf_ref("smtpd_recipient_restrictions"), readme_ref("SMTPD_ACCESS_README")),
)
def non_fqdn(env: CheckEnv) -> Iterable[Hit]:
    """No `reject_non_fqdn_sender` / `reject_non_fqdn_recipient` on port 25.

    Mail from or to `user@host` without a domain cannot be answered or delivered on the
    Internet; rejecting it needs no DNS.
    """
    for view in env.mx_services():
        context = view.context
        missing = [
            word
            for word in ("reject_non_fqdn_sender", "reject_non_fqdn_recipient")
            if not find_restrictions(context, {word})
        ]
        if not missing:
            continue
        settings = {
            "smtpd_recipient_restrictions": with_added(
                context,
                "smtpd_recipient_restrictions",
                missing,
                after=("reject_unauth_destination", "defer_unauth_destination"),
            )
        }
        yield Hit(
            f"{view.key} lacks {', '.join(missing)}",
            service=view.key,
            parameter="smtpd_recipient_restrictions",
            evidence=(env.evidence(context, "smtpd_recipient_restrictions"),),
            fix=env.set_fix(context, settings, "reject envelope addresses without a domain"),
            key=",".join(missing),
            location=env.location(context, "smtpd_recipient_restrictions"),
        )


@check(
    "PH-ACC-004",
    "Unauthorised pipelining is not refused",
    Category.ACCESS,
    Severity.MEDIUM,
    implements=("checklist:smuggling",),
    references=(
        postconf_ref("smtpd_forbid_unauth_pipelining"),
        postconf_ref("smtpd_data_restrictions"),
        rfc_ref(2920),
    ),
)
def pipelining(env: CheckEnv) -> Iterable[Hit]:
    """Clients that send commands before the server announced PIPELINING are accepted.

    Spamware and SMTP smuggling attempts talk ahead of the server. Postfix >= 3.9 (and
    the late-2023 stable releases, 3.7.9 and later) have `smtpd_forbid_unauth_pipelining =
    yes`, which disconnects them; older versions need `reject_unauth_pipelining` in
    `smtpd_data_restrictions`. Either passes this check.
    """
    has_forbid = "smtpd_forbid_unauth_pipelining" in env.config.defaults
    for view in env.public_services():
        context = view.context
        if has_forbid and yes(context.expanded("smtpd_forbid_unauth_pipelining")):
            continue
        if find_restrictions(context, {"reject_unauth_pipelining"}):
            continue
        if has_forbid:
            fix = env.set_fix(
                context,
                {"smtpd_forbid_unauth_pipelining": "yes"},
                "disconnect clients that pipeline without permission",
            )
            evidence = env.evidence(context, "smtpd_forbid_unauth_pipelining")
            parameter = "smtpd_forbid_unauth_pipelining"
        else:
            fix = env.set_fix(
                context,
                {
                    "smtpd_data_restrictions": with_added(
                        context, "smtpd_data_restrictions", ["reject_unauth_pipelining"]
                    )
                },
                "reject unauthorised pipelining at DATA",
            )
            evidence = env.evidence(context, "smtpd_data_restrictions")
            parameter = "smtpd_data_restrictions"
        yield Hit(
            f"{view.key} accepts clients that pipeline before EHLO allowed it",
            service=view.key,
            parameter=parameter,
            evidence=(evidence,),
            fix=fix,
            location=env.location(context, parameter),
        )


UNKNOWN_CLIENT = frozenset(
    {
        "reject_unknown_client_hostname",
        "reject_unknown_reverse_client_hostname",
        "reject_unknown_helo_hostname",
        "reject_unknown_client",
        "reject_unknown_hostname",
    }
)


@check(
    "PH-ACC-005",
    "DNS-based client checks reject legitimate mail",
    Category.ACCESS,
    Severity.LOW,
    implements=("checklist:helo-sender-checks",),
    references=(postconf_ref("smtpd_client_restrictions"), readme_ref("SMTPD_ACCESS_README")),
)
def unknown_client(env: CheckEnv) -> Iterable[Hit]:
    """`reject_unknown_client_hostname` / `_helo_hostname` refuse real senders.

    They depend on the sender's DNS: many legitimate servers have no matching
    forward-confirmed reverse name or HELO an internal name, and a temporary DNS failure
    answers 450 to everyone. Use them only knowingly; `warn_if_reject` in front of them
    shows in the log what they would refuse. The fix removes them.
    """
    for view in env.public_services():
        context = view.context
        for list_name, word in find_restrictions(context, UNKNOWN_CLIENT):
            yield Hit(
                f"{view.key}: {word} in {list_name} rejects mail from hosts with incomplete DNS",
                service=view.key,
                parameter=list_name,
                evidence=(
                    env.evidence(
                        context, list_name, note="depends on the client's DNS; 450 on DNS failure"
                    ),
                ),
                fix=env.set_fix(
                    context,
                    {list_name: without(context, list_name, {word})},
                    f"remove {word}",
                    caveat="accepts mail from hosts whose DNS is incomplete",
                ),
                key=word,
                location=env.location(context, list_name),
            )


@check(
    "PH-ACC-006",
    "Sender domains that do not exist are accepted",
    Category.ACCESS,
    Severity.LOW,
    implements=("checklist:helo-sender-checks",),
    references=(
        postconf_ref("smtpd_sender_restrictions"),
        readme_ref("ADDRESS_VERIFICATION_README"),
    ),
)
def unknown_sender_domain(env: CheckEnv) -> Iterable[Hit]:
    """No `reject_unknown_sender_domain` on port 25.

    Mail from a domain with no DNS records cannot be answered (bounces go nowhere) and is
    almost always forged. This looks the domain up in DNS: a temporary DNS failure gives a
    450 (retry), not a rejection.
    """
    for view in env.mx_services():
        context = view.context
        if find_restrictions(context, {"reject_unknown_sender_domain"}):
            continue
        value = with_added(context, "smtpd_sender_restrictions", ["reject_unknown_sender_domain"])
        yield Hit(
            f"{view.key} accepts senders from domains that do not exist",
            service=view.key,
            parameter="smtpd_sender_restrictions",
            evidence=(env.evidence(context, "smtpd_sender_restrictions"),),
            fix=env.set_fix(
                context,
                {"smtpd_sender_restrictions": value},
                "reject sender domains without DNS records",
                caveat="needs a working resolver; 450 on DNS failure",
            ),
            location=env.location(context, "smtpd_sender_restrictions"),
        )


def _rbl_uses(view: ServiceView) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for list_name in (
        "smtpd_client_restrictions",
        "smtpd_helo_restrictions",
        "smtpd_sender_restrictions",
        "smtpd_relay_restrictions",
        "smtpd_recipient_restrictions",
        "smtpd_data_restrictions",
    ):
        for head, domain in pairs(view.context.list_value(list_name), RBL_RESTRICTIONS):
            found.append((list_name, head, domain))
    return found


@check(
    "PH-ACC-007",
    "No DNS blocklist on port 25",
    Category.ACCESS,
    Severity.LOW,
    implements=("checklist:rbl",),
    references=(postconf_ref("reject_rbl_client"), readme_ref("POSTSCREEN_README")),
)
def no_rbl(env: CheckEnv) -> Iterable[Hit]:
    """Port 25 consults no DNS blocklist (`reject_rbl_client`, `postscreen_dnsbl_sites`).

    Blocklists stop most botnet mail before DATA. They depend on DNS: Spamhaus refuses
    queries that come through large public resolvers, so run a local resolver. The fix
    adds `reject_rbl_client zen.spamhaus.org` right after `reject_unauth_destination`.
    """
    if not env.role.expect("rbl"):
        raise NotApplicable(f"role {env.role.name} receives no mail from the Internet")
    screen = [s for s in env.config.services if s.program == "postscreen"]
    if screen and env.main.list_value("postscreen_dnsbl_sites"):
        return
    for view in env.mx_services():
        if not _rbl_uses(view):
            yield _add_after_relay_check(
                env,
                view,
                ["reject_rbl_client", "zen.spamhaus.org"],
                f"{view.key} consults no DNS blocklist",
                "consult zen.spamhaus.org after reject_unauth_destination",
                "needs a local DNS resolver (Spamhaus blocks public ones)",
            )


def _add_after_relay_check(
    env: CheckEnv, view: ServiceView, tokens: list[str], message: str, why: str, caveat: str
) -> Hit:
    """A hit whose fix adds tokens to smtpd_recipient_restrictions after the relay check."""
    context = view.context
    value = with_added(
        context,
        "smtpd_recipient_restrictions",
        tokens,
        after=("reject_unauth_destination", "defer_unauth_destination"),
    )
    return Hit(
        message,
        service=view.key,
        parameter="smtpd_recipient_restrictions",
        evidence=(env.evidence(context, "smtpd_recipient_restrictions"),),
        fix=env.set_fix(context, {"smtpd_recipient_restrictions": value}, why, caveat=caveat),
        location=env.location(context, "smtpd_recipient_restrictions"),
    )


@check(
    "PH-ACC-008",
    "A DNS blocklist that was shut down is consulted",
    Category.ACCESS,
    Severity.HIGH,
    implements=("checklist:rbl",),
    references=(
        postconf_ref("reject_rbl_client"),
        Reference("AHBL shutdown: lists every address", "https://www.ahbl.org/"),
    ),
)
def dead_rbl(env: CheckEnv) -> Iterable[Hit]:
    """A blocklist domain that no longer operates (SORBS, NJABL, AHBL, DSBL, ...).

    At best every query costs a DNS timeout; at worst the lapsed domain answers "listed"
    for every address and all mail is rejected (AHBL did this on purpose in 2015).
    """
    for view in env.public_services():
        context = view.context
        for list_name, head, domain in _rbl_uses(view):
            name = domain.split("=", 1)[0].lower().rstrip(".")
            dead = next((d for d in DEAD_RBLS if name == d or name.endswith("." + d)), None)
            if dead is None:
                continue
            yield Hit(
                f"{view.key}: {head} {domain} in {list_name}: {dead} no longer operates",
                service=view.key,
                parameter=list_name,
                evidence=(env.evidence(context, list_name),),
                fix=env.set_fix(
                    context,
                    {list_name: without(context, list_name, drop_pairs={(head, domain)})},
                    f"stop consulting {domain}",
                ),
                key=f"{head}:{name}",
                location=env.location(context, list_name),
            )


def _policy_targets(view: ServiceView) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for list_name in RESTRICTION_LISTS:
        tokens = view.context.list_value(list_name)
        for _head, target in pairs(tokens, frozenset({"check_policy_service"})):
            found.append((list_name, target))
    return found


@check(
    "PH-ACC-009",
    "No greylisting or policy service on port 25",
    Category.ACCESS,
    Severity.LOW,
    implements=("runbook:policy-service",),
    references=(readme_ref("SMTPD_POLICY_README"), postconf_ref("smtpd_recipient_restrictions")),
)
def no_policy_service(env: CheckEnv) -> Iterable[Hit]:
    """The runbook adds a policy service (postgrey greylisting) on port 25.

    Greylisting answers the first delivery attempt from an unknown triplet with 450;
    real MTAs retry, most spamware does not. The fix adds `check_policy_service
    inet:127.0.0.1:10023` (Debian's postgrey) after `reject_unauth_destination`: the
    service must run before the change, or every delivery gets `451 4.3.5 Server
    configuration problem`.
    """
    if not env.role.expect("greylisting"):
        raise NotApplicable(f"role {env.role.name} does not greylist")
    for view in env.mx_services():
        if not _policy_targets(view):
            yield _add_after_relay_check(
                env,
                view,
                ["check_policy_service", "inet:127.0.0.1:10023"],
                f"{view.key} has no policy service (greylisting)",
                "greylist with postgrey on 127.0.0.1:10023",
                "postgrey must be running first: a dead policy service "
                "answers 451 4.3.5 to every delivery",
            )


@check(
    "PH-ACC-010",
    "A policy service is reached over the network",
    Category.ACCESS,
    Severity.MEDIUM,
    implements=("runbook:policy-service",),
    references=(readme_ref("SMTPD_POLICY_README"),),
)
def remote_policy(env: CheckEnv) -> Iterable[Hit]:
    """`check_policy_service inet:HOST:PORT` with HOST beyond loopback.

    Each request carries client address, HELO, sender and recipients in clear text, and
    when that host is unreachable Postfix answers `451 4.3.5 Server configuration
    problem` to every client: an outage outside this machine. Run the policy service
    locally (or over a unix socket).
    """
    views = env.services()
    if not views:
        raise NotApplicable("no smtpd service")
    found_any = False
    for view in views:
        for list_name, target in _policy_targets(view):
            found_any = True
            kind, _, rest = target.partition(":")
            if kind != "inet":
                continue
            host = rest.rpartition(":")[0] or rest
            if is_loopback_host(host):
                continue
            yield Hit(
                f"{view.key}: policy service {target} in {list_name} is on another host",
                service=view.key,
                parameter=list_name,
                evidence=(env.evidence(view.context, list_name),),
                fix=Fix(
                    f"run the policy service on this host and point {list_name} at "
                    "inet:127.0.0.1:PORT or a unix socket"
                ),
                key=target,
                location=env.location(view.context, list_name),
            )
    if not found_any:
        raise NotApplicable("no check_policy_service configured")


@check(
    "PH-ACC-011",
    "SMTP smuggling: bare newlines are accepted",
    Category.ACCESS,
    Severity.MEDIUM,
    implements=("checklist:smuggling",),
    references=(
        postconf_ref("smtpd_forbid_bare_newline"),
        Reference(
            "Postfix SMTP smuggling (CVE-2023-51764)", "https://www.postfix.org/smtp-smuggling.html"
        ),
    ),
)
def bare_newline(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_forbid_bare_newline` is off: SMTP smuggling (CVE-2023-51764) is possible.

    A message whose end is `<LF>.<CR><LF>` (a bare newline) can smuggle a second message
    past SPF/DMARC checks of the sending side. The parameter came with the stable releases
    of late 2023 / early 2024 (3.5.23, 3.6.13, 3.7.9, 3.8.4) with default `no`; 3.9 changed
    the default to `normalize`. On an older Postfix the only fix is an upgrade.
    """
    has_parameter = "smtpd_forbid_bare_newline" in env.config.defaults
    for view in env.public_services():
        context = view.context
        if not has_parameter:
            yield Hit(
                f"Postfix {env.config.postfix_version} has no smtpd_forbid_bare_newline",
                service=view.key,
                parameter="smtpd_forbid_bare_newline",
                fix=Fix("upgrade Postfix to 3.5.23, 3.6.13, 3.7.9, 3.8.4 or later"),
                severity=Severity.HIGH,
            )
            continue
        value = context.expanded("smtpd_forbid_bare_newline").strip().lower()
        if value in ("yes", "normalize", "reject"):
            continue
        yield Hit(
            f"{view.key} accepts bare newlines (smtpd_forbid_bare_newline = {value or 'no'})",
            service=view.key,
            parameter="smtpd_forbid_bare_newline",
            evidence=(env.evidence(context, "smtpd_forbid_bare_newline"),),
            fix=env.set_fix(
                context,
                {"smtpd_forbid_bare_newline": "yes"},
                "refuse bare newlines (mynetworks excepted by default)",
                caveat="clients in smtpd_forbid_bare_newline_exclusions "
                "($mynetworks) are exempt; other broken clients are refused",
            ),
            location=env.location(context, "smtpd_forbid_bare_newline"),
        )


__all__ = ["split_list"]
