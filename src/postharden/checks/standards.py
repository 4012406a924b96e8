"""The runbook's "Done" criteria and the security checklist's items, and the checks that
implement each. A criterion passes when every check behind it passed (or did not apply);
it fails when one failed; it is unknown when one could not be evaluated.

The runbook is the manual hardening procedure (back up, order the restriction lists, limit
mynetworks, disable VRFY, require HELO, add the policy service, `postfix check`, verify);
the checklist is the longer list of what a hardened server has. IDs in `implements=` of a
check are `runbook:<step>` or `checklist:<item>`.
"""

from __future__ import annotations

from typing import NamedTuple


class Criterion(NamedTuple):
    id: str  # runbook:<step> / checklist:<item>
    title: str
    done: bool = False  # one of the runbook's "Done" criteria


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "runbook:relay-order",
        "reject_unauth_destination ahead of any permit on every service",
        done=True,
    ),
    Criterion(
        "runbook:mynetworks",
        "mynetworks limited to loopback and the networks the admin names",
        done=True,
    ),
    Criterion("runbook:vrfy", "VRFY disabled", done=True),
    Criterion(
        "runbook:postfix-check",
        "configuration is clean (postfix check, no ignored or broken settings)",
        done=True,
    ),
    Criterion(
        "runbook:no-relay", "an outside relay attempt is refused on every service", done=True
    ),
    Criterion("runbook:helo", "smtpd_helo_required = yes"),
    Criterion(
        "runbook:policy-service", "greylisting / policy service configured where mail comes in"
    ),
    Criterion(
        "checklist:banner", "banner starts with the FQDN and does not reveal software or version"
    ),
    Criterion(
        "checklist:etrn-expn", "ETRN/EXPN not offered to strangers; XCLIENT/XFORWARD not open"
    ),
    Criterion("checklist:helo-sender-checks", "HELO and envelope sanity restrictions"),
    Criterion("checklist:rbl", "DNS blocklists in use, none that are shut down"),
    Criterion("checklist:tls-level", "TLS offered on port 25, required on submission"),
    Criterion(
        "checklist:tls-protocols", "TLS protocols: no SSLv2/3, TLS 1.0/1.1; TLS 1.3 not excluded"
    ),
    Criterion("checklist:tls-ciphers", "TLS ciphers: no export/low grades"),
    Criterion(
        "checklist:tls-certificate",
        "certificate and key present, private, matching, valid, named for the host",
    ),
    Criterion("checklist:tls-obsolete", "no obsolete TLS settings (smtpd_use_tls, DH 512, ...)"),
    Criterion("checklist:tls-outbound", "outbound TLS (smtp_tls_security_level)"),
    Criterion("checklist:auth-tls-only", "AUTH only after STARTTLS (smtpd_tls_auth_only)"),
    Criterion("checklist:sasl-options", "SASL security options: noanonymous"),
    Criterion("checklist:sender-login", "authenticated senders may only use their own addresses"),
    Criterion("checklist:submission", "submission/smtps force TLS and SASL through -o"),
    Criterion(
        "checklist:header-checks",
        "header/body checks configured, valid, not refusing legitimate mail",
    ),
    Criterion("checklist:limits", "size, recipient, connection and rate limits"),
    Criterion("checklist:smuggling", "SMTP smuggling and pipelining protections"),
    Criterion(
        "checklist:services",
        "master.cf services: nothing internal exposed, reinjection on loopback",
    ),
    Criterion("checklist:files", "file ownership and modes; maps rebuilt after edits"),
    Criterion("checklist:mailbox", "mailbox delivery boundary (LMTP/LDA to the IMAP server)"),
)
