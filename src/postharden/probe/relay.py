"""The relay attempts of the live probe (pure: builds address forms, judges replies).

nmap's smtp-open-relay script tries 16 address forms; these are those plus a few more
(postmaster sender, trailing dot, upper case, foreign IP literal). Each form is sent in its
own session and judged at RCPT: a 2xx means the server took responsibility for a foreign
recipient, a 5xx refusal is a pass, and a 4xx (greylisting, a dead policy service, rate
limits) is inconclusive, never a pass.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelayForm:
    """One relay attempt: the MAIL FROM and RCPT TO addresses and whether the recipient's
    last hop is the server itself (then a catch-all mailbox could explain a 2xx)."""

    id: str
    sender: str
    recipient: str
    ends_local: bool
    description: str


def relay_forms(
    *, server_name: str, server_ip: str, local_domain: str, foreign_domain: str, local_part: str
) -> list[RelayForm]:
    """The address forms; `server_name` is the name the server gave in its banner."""
    ip = f"[{server_ip}]"
    to = foreign_domain
    user = local_part
    spoof = f"postmaster@{local_domain}"
    forms = [
        ("null-sender", "", f"{user}@{to}", False, "null sender to a foreign domain"),
        ("local-sender", spoof, f"{user}@{to}", False, "spoofed local sender"),
        (
            "server-sender",
            f"{user}@{server_name}",
            f"{user}@{to}",
            False,
            "sender at the server's name",
        ),
        ("ip-sender", f"{user}@{ip}", f"{user}@{to}", False, "sender at the server's IP literal"),
        ("percent-ip", f"{user}@{ip}", f"{user}%{to}@{ip}", True, "%-hack through the IP literal"),
        (
            "percent-name",
            spoof,
            f"{user}%{to}@{server_name}",
            True,
            "%-hack through the server name",
        ),
        ("quoted", spoof, f'"{user}@{to}"', False, "quoted local part with @"),
        ("quoted-percent", spoof, f'"{user}%{to}"', False, "quoted local part with %"),
        ("double-at-ip", spoof, f"{user}@{to}@{ip}", True, "double @ through the IP literal"),
        (
            "quoted-at-ip",
            spoof,
            f'"{user}@{to}"@{ip}',
            True,
            "quoted foreign address at the IP literal",
        ),
        (
            "double-at-name",
            spoof,
            f"{user}@{to}@{server_name}",
            True,
            "double @ through the server name",
        ),
        (
            "source-route-ip",
            spoof,
            f"@{ip}:{user}@{to}",
            False,
            "source route through the IP literal",
        ),
        (
            "source-route-name",
            spoof,
            f"@{server_name}:{user}@{to}",
            False,
            "source route through the name",
        ),
        ("bang", spoof, f"{to}!{user}", False, "UUCP bang path"),
        ("bang-ip", spoof, f"{to}!{user}@{ip}", True, "bang path through the IP literal"),
        (
            "bang-name",
            spoof,
            f"{to}!{user}@{server_name}",
            True,
            "bang path through the server name",
        ),
        (
            "postmaster-sender",
            f"postmaster@{server_name}",
            f"{user}@{to}",
            False,
            "postmaster sender",
        ),
        ("trailing-dot", spoof, f"{user}@{to}.", False, "foreign domain with a trailing dot"),
        ("upper-case", spoof, f"{user}@{to.upper()}", False, "foreign domain in upper case"),
        ("foreign-ip-literal", spoof, f"{user}@[192.0.2.1]", False, "foreign IP literal"),
    ]
    return [RelayForm(f"relay.{i}", s, r, local, d) for i, s, r, local, d in forms]


def judge_rcpt(code: int, *, ends_local: bool, catch_all: bool) -> tuple[str, str]:
    """(status, reason) for the reply to RCPT TO of a relay form."""
    if 200 <= code < 300:
        if ends_local and catch_all:
            return (
                "inconclusive",
                "accepted, but the server also accepts a random local address (catch-all): "
                "this may be local delivery; --send would confirm relaying",
            )
        return (
            "fail",
            "the server accepted a foreign recipient (open relay unless it bounces later)",
        )
    if 400 <= code < 500:
        return (
            "inconclusive",
            "temporary refusal (greylisting, policy service, rate limit): not a pass",
        )
    if 500 <= code < 600:
        return "pass", "refused"
    return "inconclusive", f"unexpected reply code {code}"
