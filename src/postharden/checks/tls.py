"""TLS: security levels per service and role, protocols, ciphers, certificate and key,
obsolete parameters, outbound TLS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, readme_ref, rfc_ref
from postharden.checks.env import CheckEnv, ServiceView, yes
from postharden.checks.facts import CERT_PAIRS, CertificateFact
from postharden.checks.model import (
    Category,
    Evidence,
    Fix,
    Hit,
    NotApplicable,
    Reference,
    Severity,
)
from postharden.config import Context

PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
OBSOLETE_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1")
EXPIRY_WARNING = dt.timedelta(days=14)


def tls_level(context: Context) -> str:
    """The effective smtpd TLS level, with the pre-2.3 parameters as Postfix reads them."""
    if yes(context.expanded("smtpd_tls_wrappermode")):
        return "encrypt"
    level = context.expanded("smtpd_tls_security_level").strip().lower()
    if level:
        return level
    if yes(context.expanded("smtpd_enforce_tls")):
        return "encrypt"
    if yes(context.expanded("smtpd_use_tls")):
        return "may"
    return "none"


def enabled_protocols(value: str) -> tuple[list[str], list[str]]:
    """What a `*_protocols` value enables (tls_protocol_mask()), and words it did not know.

    Plain names include (and exclude every name not listed), `!name` excludes,
    `>=name` / `<=name` bound the range; an empty value allows everything.
    """
    words = value.replace(",", " ").replace(":", " ").split()
    included: set[str] = set()
    excluded: set[str] = set()
    low, high = 0, len(PROTOCOLS) - 1
    unknown: list[str] = []
    for word in words:
        if word.startswith(">="):
            name = word[2:]
            if name in PROTOCOLS:
                low = max(low, PROTOCOLS.index(name))
            else:
                unknown.append(word)
        elif word.startswith("<="):
            name = word[2:]
            if name in PROTOCOLS:
                high = min(high, PROTOCOLS.index(name))
            else:
                unknown.append(word)
        elif word.startswith("!"):
            if word[1:] in PROTOCOLS:
                excluded.add(word[1:])
            else:
                unknown.append(word)
        elif word in PROTOCOLS:
            included.add(word)
        else:
            unknown.append(word)
    enabled = [
        p
        for i, p in enumerate(PROTOCOLS)
        if low <= i <= high and p not in excluded and (not included or p in included)
    ]
    return enabled, unknown


def tls_services(env: CheckEnv) -> list[tuple[ServiceView, str]]:
    views = [(v, tls_level(v.context)) for v in env.services(public=True)]
    views = [(v, level) for v, level in views if level not in ("none", "")]
    if not views:
        raise NotApplicable("no public smtpd service offers TLS")
    return views


@check(
    "PH-TLS-001",
    "No TLS on the public port 25",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-level",),
    references=(postconf_ref("smtpd_tls_security_level"), rfc_ref(3207), readme_ref("TLS_README")),
)
def mx_without_tls(env: CheckEnv) -> Iterable[Hit]:
    """Port 25 offers no STARTTLS (`smtpd_tls_security_level` empty or `none`).

    Mail from other servers then crosses the Internet in clear text; `may` offers
    STARTTLS without requiring it. Needs a certificate (PH-TLS-007).
    """
    views = env.mx_services()
    for view in views:
        if tls_level(view.context) == "none":
            yield Hit(
                f"{view.key} ({view.listen}) offers no STARTTLS",
                service=view.key,
                parameter="smtpd_tls_security_level",
                evidence=(env.evidence(view.context, "smtpd_tls_security_level"),),
                fix=env.set_fix(
                    view.context,
                    {"smtpd_tls_security_level": "may"},
                    "offer STARTTLS (opportunistic)",
                    caveat="needs smtpd_tls_cert_file/key_file or smtpd_tls_chain_files",
                ),
                location=env.location(view.context, "smtpd_tls_security_level"),
            )


@check(
    "PH-TLS-002",
    "TLS required on the public port 25",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-level",),
    references=(postconf_ref("smtpd_tls_security_level"), rfc_ref(3207, "4")),
)
def mx_encrypt(env: CheckEnv) -> Iterable[Hit]:
    """`smtpd_tls_security_level = encrypt` on a public MX's port 25.

    RFC 3207 forbids a publicly-referenced server to require TLS: servers that cannot
    speak TLS (or fail to) can then never deliver, and that mail is lost. Offer TLS
    (`may`) on port 25 and require it on submission. The fix sets `may` on this service
    only, through `-o`, so services that inherit `encrypt` from main.cf keep it.
    """
    views = env.mx_services()
    if not env.role.expect("public_smtp"):
        raise NotApplicable(f"role {env.role.name} does not receive mail from the Internet")
    for view in views:
        if tls_level(view.context) in ("encrypt", "dane", "verify", "secure"):
            name = "smtpd_tls_security_level"
            yield Hit(
                f"{view.key} refuses mail from servers that do not speak TLS",
                service=view.key,
                parameter=name,
                evidence=(
                    env.evidence(view.context, name),
                    env.evidence(view.context, "smtpd_enforce_tls"),
                ),
                fix=env.set_fix(
                    view.context, {name: "may"}, "offer TLS without requiring it", per_service=True
                ),
                location=env.location(view.context, name),
            )


@check(
    "PH-TLS-003",
    "Submission does not require TLS",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-level", "checklist:submission"),
    references=(
        postconf_ref("smtpd_tls_security_level"),
        postconf_ref("smtpd_tls_wrappermode"),
        rfc_ref(8314),
    ),
)
def submission_tls(env: CheckEnv) -> Iterable[Hit]:
    """Port 587 must require STARTTLS (`-o smtpd_tls_security_level=encrypt`); port 465
    must use implicit TLS (`-o smtpd_tls_wrappermode=yes`).

    Mail clients send passwords and whole messages; without required TLS a downgrade
    (stripping STARTTLS from the EHLO reply) exposes both. The fix sets it with `-o` on
    the service, like mail stacks do, so port 25 stays `may`.
    """
    views = env.services("submission", "smtps", public=True)
    if not views:
        raise NotApplicable("no public submission or smtps service")
    for view in views:
        context = view.context
        if view.kind == "smtps" and not yes(context.expanded("smtpd_tls_wrappermode")):
            yield Hit(
                f"{view.key} ({view.listen}) does not use implicit TLS",
                service=view.key,
                parameter="smtpd_tls_wrappermode",
                evidence=(env.evidence(context, "smtpd_tls_wrappermode"),),
                fix=env.set_fix(
                    context,
                    {"smtpd_tls_wrappermode": "yes"},
                    "speak TLS from the first byte",
                    per_service=True,
                ),
                location=env.location(context, "smtpd_tls_wrappermode"),
            )
        elif view.kind == "submission" and tls_level(context) != "encrypt":
            yield Hit(
                f"{view.key} ({view.listen}) does not require STARTTLS",
                service=view.key,
                parameter="smtpd_tls_security_level",
                evidence=(env.evidence(context, "smtpd_tls_security_level"),),
                fix=env.set_fix(
                    context,
                    {"smtpd_tls_security_level": "encrypt"},
                    "require STARTTLS",
                    per_service=True,
                ),
                location=env.location(context, "smtpd_tls_security_level"),
            )


def _protocol_parameter(level: str) -> str:
    return "smtpd_tls_mandatory_protocols" if level == "encrypt" else "smtpd_tls_protocols"


@check(
    "PH-TLS-004",
    "Obsolete TLS protocols are allowed",
    Category.TLS,
    Severity.MEDIUM,
    implements=("checklist:tls-protocols",),
    references=(
        postconf_ref("smtpd_tls_protocols"),
        postconf_ref("smtpd_tls_mandatory_protocols"),
        rfc_ref(8996),
    ),
)
def old_protocols(env: CheckEnv) -> Iterable[Hit]:
    """The protocol list in force allows SSLv2/SSLv3/TLS 1.0/TLS 1.1 (RFC 8996).

    Which list applies depends on the level: `smtpd_tls_mandatory_protocols` where TLS is
    required (`encrypt`, implicit TLS on 465), `smtpd_tls_protocols` for opportunistic
    `may`. Postfix's default `>=TLSv1` still allows 1.0 and 1.1. (OpenSSL's own settings
    may disable more; the audit judges the Postfix configuration.)
    """
    for view, level in tls_services(env):
        name = _protocol_parameter(level)
        enabled, _ = enabled_protocols(view.context.expanded(name))
        old = [p for p in enabled if p in OBSOLETE_PROTOCOLS]
        if not old:
            continue
        yield Hit(
            f"{view.key} ({level}) allows {', '.join(old)}",
            service=view.key,
            parameter=name,
            evidence=(
                env.evidence(
                    view.context, name, note="enables: " + (", ".join(enabled) or "nothing")
                ),
            ),
            fix=env.set_fix(
                view.context,
                {name: ">=TLSv1.2"},
                "allow TLS 1.2 and newer",
                caveat="peers that only speak TLS 1.0/1.1 fall back to plain "
                "text on port 25 (opportunistic TLS)"
                if level == "may"
                else None,
            ),
            location=env.location(view.context, name),
        )


@check(
    "PH-TLS-005",
    "TLS 1.3 is excluded",
    Category.TLS,
    Severity.MEDIUM,
    implements=("checklist:tls-protocols",),
    references=(postconf_ref("smtpd_tls_protocols"), rfc_ref(8446)),
)
def no_tls13(env: CheckEnv) -> Iterable[Hit]:
    """The protocol list in force does not enable TLS 1.3.

    Listing protocols to include (`TLSv1.2`) excludes every protocol not listed, TLS 1.3
    too; so does `!TLSv1.3` or `<=TLSv1.2`. `>=TLSv1.2` is the modern form.
    """
    for view, level in tls_services(env):
        name = _protocol_parameter(level)
        enabled, unknown = enabled_protocols(view.context.expanded(name))
        if "TLSv1.3" in enabled:
            continue
        yield Hit(
            f"{view.key} ({level}) cannot use TLS 1.3"
            + (f" (unknown words: {', '.join(unknown)})" if unknown else ""),
            service=view.key,
            parameter=name,
            evidence=(
                env.evidence(
                    view.context, name, note="enables: " + (", ".join(enabled) or "nothing")
                ),
            ),
            fix=env.set_fix(view.context, {name: ">=TLSv1.2"}, "allow TLS 1.2 and newer"),
            location=env.location(view.context, name),
        )


WEAK_GRADES = ("export", "low", "null")


@check(
    "PH-TLS-006",
    "Weak TLS cipher grade",
    Category.TLS,
    Severity.MEDIUM,
    implements=("checklist:tls-ciphers",),
    references=(
        postconf_ref("smtpd_tls_ciphers"),
        postconf_ref("smtpd_tls_mandatory_ciphers"),
        postconf_ref("smtpd_tls_exclude_ciphers"),
    ),
)
def weak_ciphers(env: CheckEnv) -> Iterable[Hit]:
    """The cipher grade in force is `export`, `low` or `null`.

    `smtpd_tls_mandatory_ciphers` applies where TLS is required, `smtpd_tls_ciphers`
    for opportunistic TLS. `medium` (the default) or `high` keep broken ciphers out;
    exclusions (`smtpd_tls_exclude_ciphers`) can remove more but cannot repair a weak grade.
    """
    for view, level in tls_services(env):
        name = "smtpd_tls_mandatory_ciphers" if level == "encrypt" else "smtpd_tls_ciphers"
        grade = view.context.expanded(name).strip().lower()
        if grade not in WEAK_GRADES:
            continue
        yield Hit(
            f"{view.key} ({level}) uses cipher grade '{grade}'",
            service=view.key,
            parameter=name,
            evidence=(env.evidence(view.context, name),),
            fix=env.set_fix(view.context, {name: "medium"}, "use the medium cipher grade"),
            location=env.location(view.context, name),
        )


def _service_certificates(view: ServiceView) -> list[tuple[str, str, str]]:
    """(cert, key, parameter) pairs this service would load."""
    found: list[tuple[str, str, str]] = []
    context = view.context
    for cert_name, key_name in CERT_PAIRS:
        cert = context.expanded(cert_name).strip()
        if cert:
            found.append((cert, context.expanded(key_name).strip() or cert, cert_name))
    for chain in context.list_value("smtpd_tls_chain_files"):
        found.append((chain, chain, "smtpd_tls_chain_files"))
    return found


def _certificates(env: CheckEnv) -> list[tuple[ServiceView, str, CertificateFact]]:
    result: list[tuple[ServiceView, str, CertificateFact]] = []
    for view, _level in tls_services(env):
        for cert, key, parameter in _service_certificates(view):
            fact = env.facts.certificates.get((cert, key))
            if fact is not None:
                result.append((view, parameter, fact))
    return result


@check(
    "PH-TLS-007",
    "TLS is enabled without a usable certificate",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-certificate",),
    references=(
        postconf_ref("smtpd_tls_cert_file"),
        postconf_ref("smtpd_tls_chain_files"),
        readme_ref("TLS_README", "server_cert_key"),
    ),
)
def missing_certificate(env: CheckEnv) -> Iterable[Hit]:
    """A service offers or requires TLS but names no certificate, or the file is missing
    or unreadable.

    Postfix then logs `cannot load certificate` and turns STARTTLS off (opportunistic) or
    refuses every client (required TLS). Set `smtpd_tls_chain_files` (key first, then the
    certificate chain) or `smtpd_tls_cert_file` / `smtpd_tls_key_file`.
    """
    for view, level in tls_services(env):
        pairs = _service_certificates(view)
        if not pairs:
            yield Hit(
                f"{view.key} ({level}) names no certificate",
                service=view.key,
                parameter="smtpd_tls_cert_file",
                evidence=(
                    env.evidence(view.context, "smtpd_tls_cert_file"),
                    env.evidence(view.context, "smtpd_tls_chain_files"),
                ),
                fix=Fix(
                    "install a certificate for myhostname (e.g. from Let's Encrypt) and "
                    "set smtpd_tls_chain_files = /etc/postfix/KEY.pem, /etc/postfix/CHAIN.pem"
                ),
                location=env.location(view.context, "smtpd_tls_cert_file"),
            )
            continue
        for cert, key, parameter in pairs:
            fact = env.facts.certificates.get((cert, key))
            problem = None
            if fact is None:
                problem = "was not examined"
            elif fact.error:
                problem = fact.error
            elif fact.key_error:
                problem = f"key {key}: {fact.key_error}"
            if problem is None:
                continue
            yield Hit(
                f"{view.key}: certificate {cert}: {problem}",
                service=view.key,
                parameter=parameter,
                evidence=(env.evidence(view.context, parameter),),
                fix=Fix(
                    f"install a readable PEM certificate and key at {cert}"
                    + (f" / {key}" if key != cert else "")
                ),
                key=cert,
                location=env.location(view.context, parameter),
            )


@check(
    "PH-TLS-008",
    "TLS private key readable by others than root",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-certificate", "checklist:files"),
    references=(readme_ref("TLS_README", "server_cert_key"),),
)
def key_permissions(env: CheckEnv) -> Iterable[Hit]:
    """The private key file is not owned by root or can be read by group or others.

    Anyone who reads the key can impersonate the server or decrypt recorded sessions
    that did not use forward secrecy. Postfix reads it as root before dropping privileges:
    `root:root`, mode 0600 (or 0400) is enough.
    """
    seen: set[str] = set()
    for view, _level in tls_services(env):
        for _cert, key, parameter in _service_certificates(view):
            if key in seen:
                continue
            seen.add(key)
            fact = env.facts.file(key)
            if not fact.exists:
                continue  # PH-TLS-007 reports it
            if fact.uid == 0 and not fact.mode & 0o077:
                continue
            yield Hit(
                f"private key {key}: owner {fact.owner}, mode {fact.mode:04o}",
                parameter=parameter,
                evidence=(
                    Evidence(
                        origin=key, text=fact.describe(), note="should be owner root, mode 0600"
                    ),
                ),
                fix=Fix(
                    f"make {key} readable by root only",
                    commands=(f"chown root:root {key}", f"chmod 0600 {key}"),
                ),
                key=key,
                location=(key, None),
            )


@check(
    "PH-TLS-009",
    "TLS private key does not match the certificate",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-certificate",),
    references=(readme_ref("TLS_README", "server_cert_key"),),
)
def key_mismatch(env: CheckEnv) -> Iterable[Hit]:
    """The key named for a certificate is not the certificate's key.

    Postfix logs `private key ... does not match public key in certificate` and cannot
    use TLS; after a certificate renewal this is the usual mistake (new certificate, old
    key path).
    """
    for view, parameter, fact in _certificates(env):
        if fact.key_matches is False:
            yield Hit(
                f"{view.key}: {fact.key_file} is not the key of {fact.cert_file}",
                service=view.key,
                parameter=parameter,
                evidence=(env.evidence(view.context, parameter),),
                fix=Fix("point the key parameter at the certificate's own key"),
                key=f"{fact.cert_file}|{fact.key_file}",
                location=env.location(view.context, parameter),
            )


@check(
    "PH-TLS-010",
    "TLS certificate expired or about to expire",
    Category.TLS,
    Severity.HIGH,
    implements=("checklist:tls-certificate",),
    references=(rfc_ref(5280, "4.1.2.5"),),
)
def certificate_expiry(env: CheckEnv) -> Iterable[Hit]:
    """The certificate is expired, not yet valid, or expires within 14 days.

    Senders that verify (DANE, MTA-STS, every mail client on submission) stop
    delivering or warn users. Expiring within 14 days is medium; expired is high.
    """
    now = env.facts.now
    seen: set[str] = set()
    for view, parameter, fact in _certificates(env):
        if fact.not_after is None or fact.not_before is None or fact.cert_file in seen:
            continue
        seen.add(fact.cert_file)
        severity: Severity | None = None
        if now > fact.not_after:
            problem = f"expired on {fact.not_after:%Y-%m-%d}"
        elif now < fact.not_before:
            problem = f"not valid before {fact.not_before:%Y-%m-%d}"
        elif fact.not_after - now < EXPIRY_WARNING:
            problem = f"expires on {fact.not_after:%Y-%m-%d}"
            severity = Severity.MEDIUM
        else:
            continue
        yield Hit(
            f"certificate {fact.cert_file} ({fact.subject}) {problem}",
            service=view.key,
            parameter=parameter,
            evidence=(
                Evidence(
                    origin=fact.cert_file,
                    text=f"notBefore {fact.not_before:%Y-%m-%d}, "
                    f"notAfter {fact.not_after:%Y-%m-%d}",
                ),
            ),
            fix=Fix("renew the certificate (certbot renew) and reload Postfix"),
            key=fact.cert_file,
            severity=severity,
            location=(fact.cert_file, None),
        )


def name_matches(pattern: str, hostname: str) -> bool:
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


@check(
    "PH-TLS-011",
    "TLS certificate is not issued for myhostname",
    Category.TLS,
    Severity.MEDIUM,
    implements=("checklist:tls-certificate",),
    references=(postconf_ref("myhostname"), rfc_ref(7672), rfc_ref(8461)),
)
def certificate_name(env: CheckEnv) -> Iterable[Hit]:
    """The certificate names do not include `myhostname` (the name in the banner and the
    MX record).

    Mail clients refuse it; MTA-STS and DANE senders that verify names refuse to deliver.
    """
    for view, parameter, fact in _certificates(env):
        hostname = view.context.expanded("myhostname").strip()
        if fact.error or not fact.dns_names:
            continue
        if any(name_matches(n, hostname) for n in fact.dns_names):
            continue
        yield Hit(
            f"{view.key}: {fact.cert_file} is for {', '.join(fact.dns_names)}, not {hostname}",
            service=view.key,
            parameter=parameter,
            evidence=(
                env.evidence(view.context, "myhostname"),
                Evidence(origin=fact.cert_file, text="names: " + ", ".join(fact.dns_names)),
            ),
            fix=Fix(f"obtain a certificate that names {hostname}"),
            key=fact.cert_file,
            location=env.location(view.context, parameter),
        )


OBSOLETE_TLS = {
    "smtpd_use_tls": "smtpd_tls_security_level = may",
    "smtpd_enforce_tls": "smtpd_tls_security_level = encrypt",
    "smtp_use_tls": "smtp_tls_security_level = may",
    "smtp_enforce_tls": "smtp_tls_security_level = encrypt",
    "smtpd_tls_dh512_param_file": "nothing (export ciphers are gone)",
    "smtpd_tls_eecdh_grade": "nothing (tls_eecdh_auto_curves, Postfix >= 3.6)",
    "smtp_tls_enforce_peername": "smtp_tls_security_level",
    "smtpd_tls_cipherlist": "smtpd_tls_ciphers",
}
_REPLACEMENT_LEVEL = {
    "smtpd_use_tls": ("smtpd_tls_security_level", "may"),
    "smtpd_enforce_tls": ("smtpd_tls_security_level", "encrypt"),
    "smtp_use_tls": ("smtp_tls_security_level", "may"),
    "smtp_enforce_tls": ("smtp_tls_security_level", "encrypt"),
}


@check(
    "PH-TLS-012",
    "Obsolete TLS parameters are set",
    Category.TLS,
    Severity.LOW,
    implements=("checklist:tls-obsolete",),
    references=(
        readme_ref("TLS_README"),
        postconf_ref("smtpd_tls_dh1024_param_file"),
        Reference("Postfix TLS_LEGACY_README", "https://www.postfix.org/TLS_LEGACY_README.html"),
    ),
)
def obsolete_tls(env: CheckEnv) -> Iterable[Hit]:
    """Pre-2.3 TLS switches (`smtpd_use_tls`, `smtpd_enforce_tls`, ...) or obsolete tuning
    (`smtpd_tls_dh512_param_file`, `smtpd_tls_eecdh_grade`) are set.

    The legacy switches are ignored once `*_tls_security_level` is set, so they mislead;
    a 512-bit DH file served export ciphers that no longer exist: hardening guides that
    still ask for one give obsolete advice. The fix removes them, setting the security
    level that replaces a legacy switch when that level is not already set.
    """
    contexts: list[Context] = [env.main, *(view.context for view in env.smtpd)]
    for context in contexts:
        service = context.service
        names = [o.name for o in service.overrides] if service else list(env.config.winning)
        for name in names:
            if name not in OBSOLETE_TLS:
                continue
            if service is not None:
                fix = Fix(f"drop -o {name}", master_remove=((service.key, name),))
                replacement = _REPLACEMENT_LEVEL.get(name)
                if (
                    replacement
                    and yes(context.expanded(name))
                    and not context.is_set(replacement[0])
                ):
                    fix = Fix(
                        fix.summary,
                        master_remove=fix.master_remove,
                        master_cf=env.set_fix(
                            context, {replacement[0]: replacement[1]}, "", per_service=True
                        ).master_cf,
                    )
            else:
                replacement = _REPLACEMENT_LEVEL.get(name)
                settings: tuple[tuple[str, str], ...] = ()
                if (
                    replacement
                    and yes(context.expanded(name))
                    and not context.is_set(replacement[0])
                ):
                    settings = ((replacement[0], replacement[1]),)
                fix = Fix(
                    f"remove {name}"
                    + (
                        f", set {replacement[0]} = {replacement[1]}"
                        if settings and replacement
                        else ""
                    ),
                    remove=(name,),
                    main_cf=settings,
                )
            yield Hit(
                f"{name} is obsolete (use {OBSOLETE_TLS[name]})",
                service=service.key if service else None,
                parameter=name,
                evidence=(env.evidence(context, name),),
                fix=fix,
                location=env.location(context, name),
            )


@check(
    "PH-TLS-013",
    "Outbound mail does not use TLS",
    Category.TLS,
    Severity.LOW,
    implements=("checklist:tls-outbound",),
    references=(postconf_ref("smtp_tls_security_level"), readme_ref("TLS_README", "client_tls")),
)
def outbound_tls(env: CheckEnv) -> Iterable[Hit]:
    """`smtp_tls_security_level` is empty or `none`: mail this server sends goes in clear
    text even to servers that offer STARTTLS.

    `may` uses TLS whenever the peer offers it. With a relayhost (a null client, a relay
    hub's upstream), `encrypt` protects the SASL password sent to it.
    """
    context = env.main
    level = context.expanded("smtp_tls_security_level").strip().lower()
    if not level:
        level = (
            "encrypt"
            if yes(context.expanded("smtp_enforce_tls"))
            else ("may" if yes(context.expanded("smtp_use_tls")) else "none")
        )
    if level != "none":
        return
    yield Hit(
        "outbound SMTP never uses TLS",
        parameter="smtp_tls_security_level",
        evidence=(env.evidence(context, "smtp_tls_security_level"),),
        fix=Fix("use TLS when the peer offers it", main_cf=(("smtp_tls_security_level", "may"),)),
        location=env.location(context, "smtp_tls_security_level"),
    )
