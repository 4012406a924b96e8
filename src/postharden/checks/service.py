"""Service layout (master.cf): where services listen, what is exposed, chroot, the
submission services, local-only interfaces, and the mailbox delivery boundary."""

from __future__ import annotations

from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, readme_ref, rfc_ref
from postharden.checks.env import (
    CheckEnv,
    interfaces_are_loopback,
    is_loopback_host,
    yes,
)
from postharden.checks.lists import RESTRICTION_LISTS
from postharden.checks.model import (
    Category,
    Evidence,
    Fix,
    Hit,
    MasterField,
    MasterSetting,
    NotApplicable,
    Reference,
    Severity,
)

# Daemons that must only be reached through unix sockets inside Postfix.
INTERNAL_PROGRAMS = frozenset(
    {
        "showq",
        "qmgr",
        "oqmgr",
        "pickup",
        "cleanup",
        "trivial-rewrite",
        "bounce",
        "flush",
        "proxymap",
        "verify",
        "smtp",
        "lmtp",
        "local",
        "virtual",
        "pipe",
        "anvil",
        "scache",
        "discard",
        "error",
        "postlogd",
        "tlsmgr",
        "dnsblog",
        "spawn",
    }
)
SUBMISSION_ENTRY = "submission inet n - y - - smtpd"


@check(
    "PH-SVC-001",
    "No submission service for authenticated users",
    Category.SERVICE,
    Severity.MEDIUM,
    implements=("checklist:submission",),
    references=(rfc_ref(6409), rfc_ref(8314), readme_ref("SASL_README")),
)
def submission_missing(env: CheckEnv) -> Iterable[Hit]:
    """Users need submission (587, STARTTLS required) or smtps (465, implicit TLS), with
    TLS and SASL forced through `-o`, rather than port 25.

    Flagged when the role expects submission, or when SASL is enabled on port 25 and no
    submission/smtps service exists (users then authenticate on the MX port). The fix
    adds `submission` with `-o smtpd_tls_security_level=encrypt`, `-o
    smtpd_sasl_auth_enable=yes`, `-o smtpd_tls_auth_only=yes` and client restrictions
    `permit_sasl_authenticated, reject`.
    """
    submission = env.services("submission", "smtps", public=True)
    if submission:
        return
    sasl_on_25 = [
        v
        for v in env.services("mx", public=True)
        if yes(v.context.expanded("smtpd_sasl_auth_enable"))
    ]
    if not env.role.expect("submission") and not sasl_on_25:
        raise NotApplicable(
            f"role {env.role.name} needs no submission service and port 25 has no AUTH"
        )
    key = "submission/inet"
    fix = Fix(
        "add a submission service (587) that requires TLS and SASL",
        master_entries=((key, SUBMISSION_ENTRY),),
        master_cf=(
            MasterSetting(key, "syslog_name", "postfix/submission"),
            MasterSetting(key, "smtpd_tls_security_level", "encrypt"),
            MasterSetting(key, "smtpd_sasl_auth_enable", "yes"),
            MasterSetting(key, "smtpd_tls_auth_only", "yes"),
            MasterSetting(key, "smtpd_client_restrictions", "permit_sasl_authenticated,reject"),
        ),
        caveat="needs a certificate and a SASL backend (smtpd_sasl_type, smtpd_sasl_path)",
    )
    yield Hit(
        "no public submission (587) or smtps (465) service"
        + (" while port 25 offers AUTH" if sasl_on_25 else ""),
        evidence=tuple(
            Evidence(
                origin=f"master.cf:{v.service.first_line}",
                text=f"{v.service.name} {v.service.type} ... {v.service.command}",
                note="listens on " + v.listen,
            )
            for v in env.smtpd
        )
        or (Evidence(origin="master.cf", text="no smtpd service"),),
        fix=fix,
        key="submission",
        location=(str(env.config.master_cf), None),
    )


@check(
    "PH-SVC-002",
    "An internal Postfix service listens on the network",
    Category.SERVICE,
    Severity.HIGH,
    implements=("checklist:services",),
    references=(readme_ref("master.5"), postconf_ref("inet_interfaces")),
)
def internal_exposed(env: CheckEnv) -> Iterable[Hit]:
    """A master.cf row runs an internal daemon (showq, qmgr, cleanup, ...) as an `inet`
    service beyond loopback.

    These talk Postfix's internal protocols and trust their peer: `showq` on TCP hands
    out the queue listing (senders, recipients) to anyone. Internal services are `unix`
    (or `fifo`) sockets. The fix comments the row out (`postconf -M#`).
    """
    main_loopback = interfaces_are_loopback(env.main.expanded("inet_interfaces"))
    for service in env.config.services:
        if service.type != "inet" or service.program not in INTERNAL_PROGRAMS:
            continue
        host = service.listen[0] if service.listen else None
        if (host is None and main_loopback) or (host is not None and is_loopback_host(host)):
            continue
        yield Hit(
            f"{service.key} runs {service.program} on TCP {service.name}",
            service=service.key,
            evidence=(
                Evidence(
                    origin=f"master.cf:{service.first_line}",
                    text=f"{service.name} {service.type} ... {service.command}",
                ),
            ),
            fix=Fix(f"remove the inet service {service.key}", disable_services=(service.key,)),
            key=service.key,
            location=(str(env.config.master_cf), service.first_line),
        )


@check(
    "PH-SVC-003",
    "A content-filter reinjection listener is reachable from outside",
    Category.SERVICE,
    Severity.HIGH,
    implements=("checklist:services",),
    references=(readme_ref("FILTER_README"), postconf_ref("content_filter")),
)
def reinjection_public(env: CheckEnv) -> Iterable[Hit]:
    """An smtpd service with `-o content_filter=` (the return port of amavis, spamassassin
    and other filters) listens beyond loopback.

    Such a listener skips the content filter by design and usually trusts its client
    (`-o smtpd_recipient_restrictions=permit_mynetworks,reject`, `-o
    mynetworks=127.0.0.0/8`, or empty lists): reachable from outside it bypasses
    filtering and, with permissive restrictions, relays. Bind it to 127.0.0.1.
    """
    views = env.services("reinjection")
    if not views:
        raise NotApplicable("no content-filter reinjection listener")
    for view in views:
        if not view.public:
            continue
        lists = {name: view.context.list_value(name) for name in RESTRICTION_LISTS}
        permissive = all(not tokens or tokens[0] == "permit" for tokens in lists.values())
        port = view.service.listen[1] if view.service.listen else view.service.name
        yield Hit(
            f"{view.key} (reinjection, content_filter empty) listens on {view.listen}"
            + (" with no restrictions" if permissive else ""),
            service=view.key,
            evidence=(
                Evidence(
                    origin=f"master.cf:{view.service.first_line}",
                    text=f"{view.service.name} {view.service.type} ... smtpd",
                    note="listens on " + view.listen,
                ),
                env.evidence(view.context, "content_filter"),
            ),
            fix=Fix(f"listen on 127.0.0.1:{port} only: rename the row to 127.0.0.1:{port}"),
            severity=Severity.CRITICAL if permissive else None,
            key=view.key,
            location=(str(env.config.master_cf), view.service.first_line),
        )


@check(
    "PH-SVC-004",
    "A public smtpd service runs outside chroot",
    Category.SERVICE,
    Severity.INFO,
    implements=("checklist:services",),
    references=(readme_ref("BASIC_CONFIGURATION_README", "chroot_setup"),),
)
def chroot(env: CheckEnv) -> Iterable[Hit]:
    """The chroot column of a public smtpd row is `n` (or `-`: `n` since Postfix 3.0).

    A chrooted smtpd limits what a compromised process sees to the queue directory.
    Debian's packaging runs smtpd chrooted and copies the files it needs; elsewhere the
    chroot needs setting up (resolver files, SASL socket path), so this is information,
    not a requirement.
    """
    views = env.services(public=True)
    if not views:
        raise NotApplicable("no public smtpd service")
    for view in views:
        if view.service.chroot == "y":
            continue
        yield Hit(
            f"{view.key} runs without chroot (column: {view.service.chroot})",
            service=view.key,
            evidence=(
                Evidence(
                    origin=f"master.cf:{view.service.first_line}",
                    text=f"{view.service.name} {view.service.type} {view.service.private} "
                    f"{view.service.unpriv} {view.service.chroot} ...",
                ),
            ),
            fix=Fix(
                "run smtpd chrooted",
                master_fields=(MasterField(view.key, "chroot", "y"),),
                caveat="files smtpd reads at run time (resolv.conf, SASL socket) must "
                "exist inside the queue directory",
            ),
            key=view.key,
            location=(str(env.config.master_cf), view.service.first_line),
        )


@check(
    "PH-SVC-005",
    "A local-only server listens on public interfaces",
    Category.SERVICE,
    Severity.HIGH,
    implements=("checklist:services",),
    references=(
        postconf_ref("inet_interfaces"),
        readme_ref("STANDARD_CONFIGURATION_README", "null_client"),
    ),
)
def local_only_interfaces(env: CheckEnv) -> Iterable[Hit]:
    """A null client (role `local-only`) needs no listener beyond loopback:
    `inet_interfaces = loopback-only`.

    Anything else exposes smtpd to the network for no purpose.
    """
    if env.role.expect("public_smtp") or not env.role.expect("loopback_only"):
        raise NotApplicable(f"role {env.role.name} listens publicly on purpose")
    value = env.main.expanded("inet_interfaces")
    if interfaces_are_loopback(value):
        return
    yield Hit(
        f"inet_interfaces = {value}: listens beyond loopback",
        parameter="inet_interfaces",
        evidence=(env.evidence(env.main, "inet_interfaces"),),
        fix=Fix(
            "listen on loopback only",
            main_cf=(("inet_interfaces", "loopback-only"),),
            caveat="takes effect after 'postfix stop; postfix start', not reload",
        ),
        location=env.location(env.main, "inet_interfaces"),
    )


def _dovecot_in_use(env: CheckEnv) -> bool:
    main = env.main
    if main.expanded("smtpd_sasl_type").strip() == "dovecot":
        return True
    return any(view.context.expanded("smtpd_sasl_type").strip() == "dovecot" for view in env.smtpd)


@check(
    "PH-SVC-006",
    "Mailbox delivery boundary is unclear or crosses the network",
    Category.SERVICE,
    Severity.LOW,
    implements=("checklist:mailbox",),
    references=(
        postconf_ref("mailbox_transport"),
        postconf_ref("virtual_transport"),
        Reference(
            "Dovecot LMTP", "https://doc.dovecot.org/configuration_manual/protocols/lmtp_server/"
        ),
    ),
)
def mailbox_boundary(env: CheckEnv) -> Iterable[Hit]:
    """Who writes the mailboxes the POP/IMAP server reads.

    Flags LMTP delivery (`mailbox_transport`/`virtual_transport = lmtp:inet:HOST:PORT`)
    to another host (mail in clear text on the network, medium), and Postfix's own local
    delivery writing mailboxes on a server whose IMAP server is Dovecot (SASL through
    Dovecot): two programs then own the mailbox format, locking and indexes. Hand
    delivery to Dovecot: `mailbox_transport = lmtp:unix:private/dovecot-lmtp` (or
    Dovecot's LDA as `mailbox_command`).
    """
    main = env.main
    found = False
    for name in ("mailbox_transport", "virtual_transport", "local_transport"):
        value = main.expanded(name).strip()
        if value.startswith("lmtp:inet:") or (
            value.startswith("lmtp:") and not value.startswith("lmtp:unix:")
        ):
            target = value.removeprefix("lmtp:").removeprefix("inet:")
            host = target.rpartition(":")[0] or target
            if host.startswith("["):
                host = host.strip("[]")
            if not is_loopback_host(host):
                found = True
                yield Hit(
                    f"{name} = {value}: mail crosses the network in clear text",
                    parameter=name,
                    evidence=(env.evidence(main, name),),
                    fix=Fix(
                        "deliver over a unix socket, or require TLS "
                        "(lmtp_tls_security_level = encrypt)"
                    ),
                    severity=Severity.MEDIUM,
                    key=name,
                    location=env.location(main, name),
                )
    # Mail for the host name itself (root, postmaster) is local(8)'s job anyway; user
    # domains in mydestination are what ends up in mailboxes Dovecot also serves.
    hostname = main.expanded("myhostname").strip()
    local_domains = [
        d
        for d in main.list_value("mydestination")
        if not d.startswith("localhost") and d != hostname
    ]
    uses_local = (
        main.expanded("local_transport").strip().startswith("local")
        and not main.expanded("mailbox_transport").strip()
        and not main.expanded("mailbox_command").strip()
    )
    if _dovecot_in_use(env) and uses_local and local_domains:
        found = True
        yield Hit(
            "Postfix's local(8) writes mailboxes that Dovecot serves",
            parameter="mailbox_transport",
            evidence=(
                env.evidence(main, "mailbox_transport"),
                env.evidence(main, "home_mailbox"),
                env.evidence(main, "smtpd_sasl_type"),
            ),
            fix=Fix(
                "deliver through Dovecot's LMTP",
                main_cf=(("mailbox_transport", "lmtp:unix:private/dovecot-lmtp"),),
                caveat="Dovecot's lmtp service must listen on "
                "/var/spool/postfix/private/dovecot-lmtp",
            ),
            key="local-vs-dovecot",
            location=env.location(main, "mailbox_transport"),
        )
    if not found and not local_domains and not main.expanded("virtual_mailbox_domains").strip():
        raise NotApplicable("this server delivers no mail to mailboxes")


__all__ = ["Evidence"]
