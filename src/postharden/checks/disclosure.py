"""Disclosure: what the server tells strangers (VRFY, ETRN, banner, XCLIENT/XFORWARD)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from postharden.checks.catalog import check, postconf_ref, readme_ref, rfc_ref
from postharden.checks.env import CheckEnv, is_loopback_host, yes
from postharden.checks.model import Category, Evidence, Hit, Severity


@check(
    "PH-DIS-001",
    "VRFY is enabled",
    Category.DISCLOSURE,
    Severity.MEDIUM,
    implements=("runbook:vrfy",),
    references=(postconf_ref("disable_vrfy_command"), rfc_ref(5321, "3.5.3")),
)
def vrfy_enabled(env: CheckEnv) -> Iterable[Hit]:
    """VRFY lets anyone test which addresses exist.

    With VRFY on, Postfix answers `252 2.0.0` for a known address and `550 5.1.1 User
    unknown` for an unknown one: the difference is the address-harvesting leak, so a 252
    is no proof of safety. `disable_vrfy_command = yes` answers `502 5.5.1` to every VRFY.
    Checked on every smtpd service reachable from outside loopback, with its -o overrides.
    """
    for view in env.public_services():
        if not yes(view.context.expanded("disable_vrfy_command")):
            yield Hit(
                f"{view.key} ({view.listen}) answers VRFY",
                service=view.key,
                parameter="disable_vrfy_command",
                evidence=(env.evidence(view.context, "disable_vrfy_command"),),
                fix=env.set_fix(view.context, {"disable_vrfy_command": "yes"}, "disable VRFY"),
                location=env.location(view.context, "disable_vrfy_command"),
            )


@check(
    "PH-DIS-002",
    "ETRN is open to any client",
    Category.DISCLOSURE,
    Severity.LOW,
    implements=("checklist:etrn-expn",),
    references=(
        postconf_ref("smtpd_etrn_restrictions"),
        postconf_ref("smtpd_discard_ehlo_keywords"),
        rfc_ref(1985),
    ),
)
def etrn_open(env: CheckEnv) -> Iterable[Hit]:
    """ETRN lets any client make the server flush its deferred queue.

    With `smtpd_etrn_restrictions` empty (the default) any client may send `ETRN domain`
    for a domain in `fast_flush_domains` (default `$relay_domains`) and trigger delivery
    attempts. Hiding the keyword with `smtpd_discard_ehlo_keywords = etrn` does not disable
    the command; restrict it instead. Postfix's smtpd does not implement EXPN at all (it
    answers `502 5.5.2 Error: command not recognized`), so EXPN needs no setting.
    """
    for view in env.public_services():
        context = view.context
        if context.list_value("smtpd_etrn_restrictions"):
            continue
        if not context.list_value("fast_flush_domains"):
            continue  # ETRN has nothing to flush: "554 5.7.1 <domain>: Relay access denied"
        yield Hit(
            f"{view.key} accepts ETRN from any client (fast_flush_domains: "
            f"{' '.join(context.list_value('fast_flush_domains'))})",
            service=view.key,
            parameter="smtpd_etrn_restrictions",
            evidence=(
                env.evidence(context, "smtpd_etrn_restrictions"),
                env.evidence(context, "fast_flush_domains"),
            ),
            fix=env.set_fix(
                context,
                {"smtpd_etrn_restrictions": "permit_mynetworks, reject"},
                "allow ETRN only from mynetworks",
            ),
            location=env.location(context, "smtpd_etrn_restrictions"),
        )


_SOFTWARE = re.compile(r"postfix|debian|ubuntu|centos|red ?hat|\d+\.\d+\.\d+", re.IGNORECASE)


@check(
    "PH-DIS-003",
    "SMTP banner reveals the software or its version",
    Category.DISCLOSURE,
    Severity.LOW,
    implements=("checklist:banner",),
    references=(postconf_ref("smtpd_banner"), postconf_ref("mail_name")),
)
def banner_software(env: CheckEnv) -> Iterable[Hit]:
    """The greeting names the MTA (`$mail_name`, `$mail_version`) or the distribution.

    The default `$myhostname ESMTP $mail_name` says `Postfix` to every scanner; Debian's
    adds `(Debian/GNU)`. Naming the software and version helps attackers pick exploits.
    The goal is to hide them, not a particular string: `$myhostname ESMTP` is enough.
    """
    for view in env.public_services():
        context = view.context
        raw = context.raw("smtpd_banner") or ""
        banner = context.expanded("smtpd_banner")
        mail_name = context.expanded("mail_name").strip()
        leaks = [
            ref
            for ref in (
                "$mail_name",
                "${mail_name}",
                "$(mail_name)",
                "$mail_version",
                "${mail_version}",
                "$(mail_version)",
            )
            if ref in raw
        ]
        found = _SOFTWARE.search(banner)
        if not leaks and not found and not (mail_name and mail_name.lower() in banner.lower()):
            continue
        shown = ", ".join(leaks) if leaks else (found.group(0) if found else mail_name)
        yield Hit(
            f"{view.key} greets with '220 {banner}' (reveals {shown})",
            service=view.key,
            parameter="smtpd_banner",
            evidence=(env.evidence(context, "smtpd_banner"),),
            fix=env.set_fix(
                context, {"smtpd_banner": "$myhostname ESMTP"}, "greet with the host name only"
            ),
            location=env.location(context, "smtpd_banner"),
        )


@check(
    "PH-DIS-004",
    "SMTP banner does not start with the host's FQDN",
    Category.DISCLOSURE,
    Severity.MEDIUM,
    implements=("checklist:banner",),
    references=(postconf_ref("smtpd_banner"), rfc_ref(5321, "4.2")),
)
def banner_fqdn(env: CheckEnv) -> Iterable[Hit]:
    """RFC 5321 requires the 220 greeting to start with the server's fully qualified name.

    A banner hidden behind a fake name or a bare word breaks this and makes some senders
    and spam filters distrust the server. The first word of `smtpd_banner` must be
    `$myhostname`, and `myhostname` must contain a dot.
    """
    for view in env.public_services():
        context = view.context
        banner = context.expanded("smtpd_banner").split()
        hostname = context.expanded("myhostname").strip()
        first = banner[0] if banner else ""
        if first == hostname and "." in hostname.strip("."):
            continue
        problem = (
            f"myhostname '{hostname}' is not fully qualified"
            if first == hostname
            else f"the banner starts with '{first or '(nothing)'}', not myhostname '{hostname}'"
        )
        fix = (
            env.set_fix(
                context, {"smtpd_banner": "$myhostname ESMTP"}, "start the banner with $myhostname"
            )
            if first != hostname
            else None
        )
        yield Hit(
            f"{view.key}: {problem}",
            service=view.key,
            parameter="smtpd_banner" if first != hostname else "myhostname",
            evidence=(env.evidence(context, "smtpd_banner"), env.evidence(context, "myhostname")),
            fix=fix,
            location=env.location(context, "smtpd_banner"),
        )


def _broad_entries(value: list[str]) -> list[str]:
    broad: list[str] = []
    for entry in value:
        if (
            ":" in entry
            and not entry.startswith("[")
            and entry.split(":", 1)[0].isalpha()
            and "/" in entry.split(":", 1)[1]
        ):
            broad.append(entry)  # a table: its contents decide, treat as not loopback
            continue
        text = entry.strip("[]").replace("]/", "/")
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            if not is_loopback_host(entry):
                broad.append(entry)  # a host or domain name: every address it resolves to
            continue
        if network.is_loopback:
            continue
        limit = 24 if network.version == 4 else 64
        if network.prefixlen < limit:
            broad.append(entry)
    return broad


@check(
    "PH-DIS-005",
    "XCLIENT or XFORWARD authorised for broad networks",
    Category.DISCLOSURE,
    Severity.HIGH,
    implements=("checklist:etrn-expn",),
    references=(
        postconf_ref("smtpd_authorized_xclient_hosts"),
        postconf_ref("smtpd_authorized_xforward_hosts"),
        readme_ref("XCLIENT_README"),
    ),
)
def xclient_broad(env: CheckEnv) -> Iterable[Hit]:
    """XCLIENT lets an authorised client claim any address, name, HELO and SASL login.

    A host in `smtpd_authorized_xclient_hosts` can impersonate any client, mynetworks and
    authenticated users included: it is a relay key. XFORWARD only changes what is logged
    and passed to filters, but also lies to them. Authorise single hosts (a proxy, a
    content filter), never networks wider than a /24 (IPv6 /64), names or tables whose
    contents are unknown to the audit.
    """
    for view in env.public_services():
        context = view.context
        for name, severity in (
            ("smtpd_authorized_xclient_hosts", None),
            ("smtpd_authorized_xforward_hosts", Severity.MEDIUM),
        ):
            broad = _broad_entries(context.list_value(name))
            if not broad:
                continue
            yield Hit(
                f"{view.key}: {name} authorises {', '.join(broad)}",
                service=view.key,
                parameter=name,
                evidence=(
                    env.evidence(context, name, note="every address listed may use the command"),
                ),
                fix=env.set_fix(
                    context,
                    {name: ""},
                    f"authorise no network for {name.split('_')[2]} "
                    "(name the single proxy or filter host instead)",
                ),
                key=name,
                severity=severity,
                location=env.location(context, name),
            )


__all__ = ["Evidence"]
