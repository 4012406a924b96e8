"""Authentication: SASL where it is needed (and not where it invites guessing), AUTH only
after TLS, SASL security options, sender login maps."""

from __future__ import annotations

from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, readme_ref, rfc_ref
from postharden.checks.env import CheckEnv, ServiceView, yes
from postharden.checks.lists import find_restrictions, with_added
from postharden.checks.model import Category, Evidence, Fix, Hit, NotApplicable, Severity
from postharden.checks.tls import tls_level

LOGIN_MISMATCH = frozenset(
    {
        "reject_sender_login_mismatch",
        "reject_authenticated_sender_login_mismatch",
        "reject_known_sender_login_mismatch",
    }
)


def sasl_services(env: CheckEnv) -> list[ServiceView]:
    views = [
        v for v in env.services(public=True) if yes(v.context.expanded("smtpd_sasl_auth_enable"))
    ]
    if not views:
        raise NotApplicable("no public smtpd service offers SASL AUTH")
    return views


@check(
    "PH-AUT-001",
    "Submission service without SASL authentication",
    Category.AUTH,
    Severity.HIGH,
    implements=("checklist:submission",),
    references=(postconf_ref("smtpd_sasl_auth_enable"), readme_ref("SASL_README"), rfc_ref(6409)),
)
def submission_sasl(env: CheckEnv) -> Iterable[Hit]:
    """A submission (587) or smtps (465) service does not offer SASL AUTH.

    Submission is for the server's own users: without AUTH they cannot log in, and the
    service either refuses them or (with permissive restrictions) accepts anyone. Mail
    stacks enable it only there, with `-o smtpd_sasl_auth_enable=yes`.
    """
    views = env.services("submission", "smtps", public=True)
    if not views:
        raise NotApplicable("no public submission or smtps service")
    for view in views:
        if yes(view.context.expanded("smtpd_sasl_auth_enable")):
            continue
        yield Hit(
            f"{view.key} ({view.listen}) offers no AUTH",
            service=view.key,
            parameter="smtpd_sasl_auth_enable",
            evidence=(env.evidence(view.context, "smtpd_sasl_auth_enable"),),
            fix=env.set_fix(
                view.context,
                {"smtpd_sasl_auth_enable": "yes"},
                "enable SASL AUTH on this service",
                per_service=True,
                caveat="needs a SASL backend (smtpd_sasl_type, smtpd_sasl_path)",
            ),
            location=env.location(view.context, "smtpd_sasl_auth_enable"),
        )


@check(
    "PH-AUT-002",
    "AUTH is offered before STARTTLS",
    Category.AUTH,
    Severity.HIGH,
    implements=("checklist:auth-tls-only",),
    references=(postconf_ref("smtpd_tls_auth_only"), readme_ref("SASL_README")),
)
def auth_before_tls(env: CheckEnv) -> Iterable[Hit]:
    """SASL AUTH is announced on a connection that is not (yet) encrypted.

    With PLAIN or LOGIN the password then crosses the network in clear text.
    `smtpd_tls_auth_only = yes` announces AUTH only after STARTTLS. Services that require
    TLS (`encrypt`, implicit TLS on 465) are safe already.
    """
    for view in sasl_services(env):
        context = view.context
        if tls_level(context) == "encrypt" or yes(context.expanded("smtpd_tls_auth_only")):
            continue
        yield Hit(
            f"{view.key} ({view.listen}) offers AUTH before STARTTLS",
            service=view.key,
            parameter="smtpd_tls_auth_only",
            evidence=(
                env.evidence(context, "smtpd_tls_auth_only"),
                env.evidence(context, "smtpd_tls_security_level"),
            ),
            fix=env.set_fix(
                context, {"smtpd_tls_auth_only": "yes"}, "offer AUTH only after STARTTLS"
            ),
            location=env.location(context, "smtpd_tls_auth_only"),
        )


@check(
    "PH-AUT-003",
    "Anonymous SASL mechanisms allowed",
    Category.AUTH,
    Severity.HIGH,
    implements=("checklist:sasl-options",),
    references=(postconf_ref("smtpd_sasl_security_options"), readme_ref("SASL_README")),
)
def sasl_options(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_sasl_security_options` lacks `noanonymous`.

    An anonymous mechanism "authenticates" anyone, and `permit_sasl_authenticated` then
    relays for them: an open relay. (`noplaintext` is for servers without TLS; with
    `smtpd_tls_auth_only = yes`, PLAIN/LOGIN run inside TLS.)
    """
    for view in sasl_services(env):
        context = view.context
        options = context.list_value("smtpd_sasl_security_options")
        if "noanonymous" in options:
            continue
        value = ", ".join(["noanonymous", *options])
        yield Hit(
            f"{view.key} allows anonymous SASL ({' '.join(options) or 'no options'})",
            service=view.key,
            parameter="smtpd_sasl_security_options",
            evidence=(env.evidence(context, "smtpd_sasl_security_options"),),
            fix=env.set_fix(
                context, {"smtpd_sasl_security_options": value}, "refuse anonymous SASL mechanisms"
            ),
            location=env.location(context, "smtpd_sasl_security_options"),
        )


@check(
    "PH-AUT-004",
    "Authenticated users may send as anyone",
    Category.AUTH,
    Severity.MEDIUM,
    implements=("checklist:sender-login",),
    references=(
        postconf_ref("smtpd_sender_login_maps"),
        postconf_ref("reject_sender_login_mismatch"),
        readme_ref("SASL_README"),
    ),
)
def sender_login(env: CheckEnv) -> Iterable[Hit]:
    """A SASL service has no `reject_sender_login_mismatch` in a restriction list.

    Without it (and `smtpd_sender_login_maps`, which says who owns which address) any
    user, or a stolen password, sends mail in anyone's name. The restriction must be in a
    restriction list: written as a parameter (`reject_sender_login_mismatch = yes`, as
    some checklists do) it is an unused parameter that does nothing.
    """
    misplaced = [d for d in env.config.definitions if d.name in LOGIN_MISMATCH]
    for view in sasl_services(env):
        context = view.context
        if find_restrictions(context, LOGIN_MISMATCH):
            continue
        evidence = [
            env.evidence(context, "smtpd_sender_restrictions"),
            env.evidence(context, "smtpd_sender_login_maps"),
        ]
        evidence += [
            Evidence(
                origin=f"main.cf:{d.first_line}",
                text=f"{d.name} = {d.value}",
                note="a restriction name is not a parameter: this line does nothing",
            )
            for d in misplaced
        ]
        has_maps = bool(context.expanded("smtpd_sender_login_maps").strip())
        if has_maps:
            value = with_added(
                context, "smtpd_sender_restrictions", ["reject_sender_login_mismatch"]
            )
            settings = env.set_fix(
                context,
                {"smtpd_sender_restrictions": value},
                "",
                per_service=view.kind in ("submission", "smtps"),
            )
            fix = Fix(
                "reject senders the login does not own"
                + (" and remove the parameter that did nothing" if misplaced else ""),
                main_cf=settings.main_cf,
                master_cf=settings.master_cf,
                remove=tuple(d.name for d in misplaced),
            )
        else:
            fix = Fix(
                "create smtpd_sender_login_maps (address -> login) and add "
                "reject_sender_login_mismatch to smtpd_sender_restrictions"
            )
        yield Hit(
            f"{view.key}: authenticated users may use any sender address"
            + (" (reject_sender_login_mismatch is written as a parameter)" if misplaced else ""),
            service=view.key,
            parameter="smtpd_sender_restrictions",
            evidence=tuple(evidence),
            fix=fix,
            location=env.location(context, "smtpd_sender_restrictions"),
        )


@check(
    "PH-AUT-005",
    "SASL AUTH offered on the public port 25",
    Category.AUTH,
    Severity.MEDIUM,
    implements=("checklist:submission",),
    references=(postconf_ref("smtpd_sasl_auth_enable"), rfc_ref(6409), readme_ref("SASL_README")),
)
def auth_on_mx(env: CheckEnv) -> Iterable[Hit]:
    """Port 25 announces AUTH: password-guessing bots find it there.

    Users submit on 587/465; other servers never authenticate on 25. Enabling SASL in
    main.cf turns it on for port 25 as well; mail stacks enable it per service with `-o`.
    The fix turns it off on this service only.
    """
    views = env.mx_services()
    for view in views:
        if not yes(view.context.expanded("smtpd_sasl_auth_enable")):
            continue
        yield Hit(
            f"{view.key} ({view.listen}) offers AUTH",
            service=view.key,
            parameter="smtpd_sasl_auth_enable",
            evidence=(env.evidence(view.context, "smtpd_sasl_auth_enable"),),
            fix=env.set_fix(
                view.context,
                {"smtpd_sasl_auth_enable": "no"},
                "no AUTH on port 25 (users submit on 587/465)",
                per_service=True,
                caveat="clients configured to authenticate on port 25 must move to 587 or 465",
            ),
            location=env.location(view.context, "smtpd_sasl_auth_enable"),
        )
