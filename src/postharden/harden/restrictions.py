"""Restriction lists as items, and the repair that closes a relay without replacing a list.

Postfix evaluates `smtpd_relay_restrictions` and `smtpd_recipient_restrictions` item by
item; the first permit, reject or defer ends that list (smtpd_check.c). A `permit`, or any
item that can answer OK for a client we do not know, placed before
`reject_unauth_destination` lets that client relay although the reject is still in the
list. The repair moves such items to just after `reject_unauth_destination` (where they
still whitelist mail for our own domains), keeps everything else where the admin put it,
and inserts `reject_unauth_destination` only where a list has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Restrictions that take the next list element as their argument (smtpd_check.c).
_ONE_ARGUMENT = frozenset(
    {
        "check_policy_service",
        "reject_rbl_client",
        "reject_rhsbl_client",
        "reject_rhsbl_reverse_client",
        "reject_rhsbl_helo",
        "reject_rhsbl_sender",
        "reject_rhsbl_recipient",
        "permit_dnswl_client",
        "permit_rhswl_client",
        "sleep",
    }
)

# Items that cannot permit a client outside mynetworks without SASL or a listed
# certificate: safe anywhere before reject_unauth_destination.
_SAFE_BEFORE = frozenset(
    {
        "permit_mynetworks",
        "permit_sasl_authenticated",
        "permit_tls_clientcerts",
        "permit_auth_destination",
        "permit_inet_interfaces",
        "check_client_access",
        "check_ccert_access",
        "check_sasl_access",
        "check_policy_service",
        "reject_unauth_destination",
        "defer_unauth_destination",
        "sleep",
        "dunno",
    }
)

RELAY_CLOSERS = frozenset({"reject_unauth_destination", "defer_unauth_destination"})


def takes_argument(name: str) -> bool:
    return name in _ONE_ARGUMENT or (name.startswith("check_") and name.endswith("_access"))


@dataclass(frozen=True, slots=True)
class Item:
    """One restriction with its argument: `reject_rbl_client zen.example`, `permit`.

    `warn_if_reject` is kept together with the restriction it modifies.
    """

    words: tuple[str, ...]

    @property
    def name(self) -> str:
        if self.words[0] == "warn_if_reject" and len(self.words) > 1:
            return self.words[1]
        return self.words[0]

    @property
    def warn_only(self) -> bool:
        return self.words[0] == "warn_if_reject"

    def may_permit_stranger(self) -> bool:
        """True when this item can end the list with OK for an unknown client.

        Sender, recipient and HELO are chosen by the client; DNS-based whitelists and
        certificate-any permits vouch for clients we never named; an unknown name is a
        restriction class that may hold a permit.
        """
        if self.warn_only:
            return False
        name = self.name
        if name in _SAFE_BEFORE:
            return False
        return not name.startswith(("reject", "defer", "warn_if_"))

    def text(self, joiner: str = " ") -> str:
        return joiner.join(self.words)


def group_items(tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Token index ranges [start, end) of each item of a split restriction list."""
    ranges: list[tuple[int, int]] = []
    index = 0
    while index < len(tokens):
        start = index
        name = tokens[index]
        index += 1
        if name == "warn_if_reject" and index < len(tokens):
            name = tokens[index]
            index += 1
        if takes_argument(name) and index < len(tokens):
            index += 1
        ranges.append((start, index))
    return ranges


def items_of(tokens: Sequence[str]) -> list[Item]:
    return [Item(tuple(tokens[a:b])) for a, b in group_items(tokens)]


@dataclass(frozen=True, slots=True)
class Move:
    """Take the item at `source` and put it at `target` (indices in the list after removal)."""

    source: int
    target: int


@dataclass(frozen=True, slots=True)
class Insert:
    position: int
    item: Item


@dataclass(frozen=True, slots=True)
class Replace:
    position: int
    item: Item


Operation = Move | Insert | Replace


@dataclass(frozen=True, slots=True)
class Repair:
    """Operations that close the relay in one list, with a sentence per operation."""

    operations: tuple[Operation, ...]
    reasons: tuple[str, ...]

    def apply(self, items: Sequence[Item]) -> list[Item]:
        result = list(items)
        for operation in self.operations:
            result = apply_operation(result, operation)
        return result


def apply_operation(items: list[Item], operation: Operation) -> list[Item]:
    result = list(items)
    if isinstance(operation, Move):
        item = result.pop(operation.source)
        result.insert(operation.target, item)
    elif isinstance(operation, Insert):
        result.insert(operation.position, operation.item)
    else:
        result[operation.position] = operation.item
    return result


def closer_index(items: Sequence[Item], *, reject_only: bool) -> int | None:
    names = {"reject_unauth_destination"} if reject_only else RELAY_CLOSERS
    for index, item in enumerate(items):
        if not item.warn_only and item.name in names:
            return index
    return None


def is_closed(items: Sequence[Item], *, reject_only: bool = True) -> bool:
    """No item that may permit a stranger comes before a relay closer (or a plain reject)."""
    for item in items:
        if item.warn_only:
            continue
        if item.name in ("reject", "defer") or (
            item.name in RELAY_CLOSERS
            and (not reject_only or item.name == "reject_unauth_destination")
        ):
            return True
        if item.may_permit_stranger():
            return False
    return False


def repair_relay(items: Sequence[Item], *, insert: bool, reject: bool = True) -> Repair:
    """Close the relay in this list, changing as little as possible.

    - `defer_unauth_destination` becomes `reject_unauth_destination` when `reject` (a 4xx
      keeps strangers retrying and is not a refusal);
    - items that may permit a stranger and stand before the closer move to just after it,
      in their order;
    - with no closer and `insert`, `reject_unauth_destination` goes before the first such
      item (or at the end).
    """
    operations: list[Operation] = []
    reasons: list[str] = []
    current = list(items)
    closer = closer_index(current, reject_only=False)
    if closer is not None and reject and current[closer].name == "defer_unauth_destination":
        operation: Operation = Replace(closer, Item(("reject_unauth_destination",)))
        operations.append(operation)
        reasons.append(
            "defer_unauth_destination answers strangers 454 (retry later); "
            "reject_unauth_destination refuses with 554"
        )
        current = apply_operation(current, operation)
    if closer is None:
        if not insert:
            return Repair((), ())
        position = next(
            (i for i, item in enumerate(current) if item.may_permit_stranger()), len(current)
        )
        operation = Insert(position, Item(("reject_unauth_destination",)))
        operations.append(operation)
        reasons.append("no reject_unauth_destination: added ahead of any permit")
        return Repair(tuple(operations), tuple(reasons))
    early = [i for i in range(closer) if current[i].may_permit_stranger()]
    # Move from the last early item backwards so earlier indices stay valid; each lands
    # right after the closer, which keeps their relative order.
    for index in reversed(early):
        closer_now = closer_index(current, reject_only=False)
        assert closer_now is not None
        item = current[index]
        operation = Move(index, closer_now)
        current = apply_operation(current, operation)
        operations.append(operation)
        reasons.append(
            f"{item.text()} stood before {current[closer_now - 1].name}: "
            "it let strangers relay; moved after it"
        )
    return Repair(tuple(operations), tuple(reasons))
