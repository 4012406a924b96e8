"""Restriction lists as checks read them, and list edits for fixes (pure functions)."""

from __future__ import annotations

import re

from postharden.config import Context, split_list

RESTRICTION_LISTS = (
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
)
TERMINAL = frozenset({"permit", "reject", "defer", "defer_if_permit", "defer_if_reject"})
# Restrictions followed by an argument (a table, a domain) or by another restriction.
_TAKES_ARGUMENT = re.compile(
    r"^(check_\w+|reject_rbl_client|reject_rhsbl_\w+|permit_dnswl_client|permit_rhswl_client"
    r"|warn_if_reject)$"
)


def join_restrictions(tokens: list[str]) -> str:
    """A list as people write it: `reject_rbl_client zen.spamhaus.org, permit`."""
    parts: list[str] = []
    pending = ""
    for token in tokens:
        pending = f"{pending} {token}" if pending else token
        if not _TAKES_ARGUMENT.match(token):
            parts.append(pending)
            pending = ""
    if pending:
        parts.append(pending)
    return ", ".join(parts)


def restriction_names(context: Context) -> dict[str, list[str]]:
    """Each smtpd restriction list of this service, split as Postfix splits it."""
    return {name: context.list_value(name) for name in RESTRICTION_LISTS}


def find_restrictions(context: Context, words: frozenset[str] | set[str]) -> list[tuple[str, str]]:
    """(list name, restriction) for every occurrence of one of `words` in the lists."""
    found: list[tuple[str, str]] = []
    for name, tokens in restriction_names(context).items():
        found.extend((name, token) for token in tokens if token in words)
    return found


def list_tokens(context: Context, name: str) -> list[str]:
    """The list as written (unexpanded: `$mynetworks` stays a reference)."""
    return split_list(context.raw(name) or "")


def with_added(
    context: Context, name: str, items: list[str], *, after: tuple[str, ...] = ()
) -> str:
    """The list with `items` added: right after the first of `after` when present,
    otherwise before a trailing permit/reject (where they would never be reached)."""
    tokens = list_tokens(context, name)
    items = [item for item in items if item not in tokens]
    position = len(tokens)
    for anchor in after:
        if anchor in tokens:
            position = tokens.index(anchor) + 1
            break
    else:
        while position > 0 and tokens[position - 1] in TERMINAL:
            position -= 1
    return join_restrictions(tokens[:position] + items + tokens[position:])


def without(
    context: Context,
    name: str,
    drop: set[str] | frozenset[str] = frozenset(),
    drop_pairs: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> str:
    """The list without the named restrictions, and without (restriction, argument) pairs
    such as (`reject_rbl_client`, `dnsbl.sorbs.net`)."""
    tokens = list_tokens(context, name)
    kept: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if index + 1 < len(tokens) and (token, tokens[index + 1]) in drop_pairs:
            index += 2
            continue
        if token not in drop:
            kept.append(token)
        index += 1
    return join_restrictions(kept)


def pairs(tokens: list[str], heads: frozenset[str]) -> list[tuple[str, str]]:
    """(restriction, argument) for restrictions that take one (`reject_rbl_client zen...`)."""
    return [(tokens[i], tokens[i + 1]) for i in range(len(tokens) - 1) if tokens[i] in heads]
