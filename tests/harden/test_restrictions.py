"""The relay repair: closes every list, keeps every item, changes nothing twice."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from postharden.harden.restrictions import Item, is_closed, items_of, repair_relay

ITEMS = [
    ("permit",),
    ("permit_mynetworks",),
    ("permit_sasl_authenticated",),
    ("check_sender_access", "hash:/etc/postfix/senders"),
    ("check_client_access", "cidr:/etc/postfix/clients"),
    ("check_recipient_access", "inline:{ a@b=OK }"),
    ("reject_unauth_destination",),
    ("defer_unauth_destination",),
    ("reject_rbl_client", "zen.example.org"),
    ("permit_dnswl_client", "list.example.org"),
    ("warn_if_reject", "reject_unknown_client_hostname"),
    ("permit_mx_backup",),
    ("my_restriction_class",),
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(ITEMS), max_size=8))
def test_repair_closes_keeps_items_and_is_idempotent(words: list[tuple[str, ...]]) -> None:
    items = [Item(w) for w in words]
    repair = repair_relay(items, insert=True)
    repaired = repair.apply(items)
    assert is_closed(repaired)

    # every item the admin wrote is still there (defer_unauth_destination may become reject)
    def names(seq: list[Item]) -> Counter[tuple[str, ...]]:
        return Counter(
            ("reject_unauth_destination",) if i.words == ("defer_unauth_destination",) else i.words
            for i in seq
        )

    extra = names(repaired) - names(items)
    assert sum(extra.values()) <= 1 and set(extra) <= {("reject_unauth_destination",)}
    assert not names(items) - names(repaired)
    # items that cannot let a stranger through keep their order
    safe = [i for i in items if not i.may_permit_stranger()]
    safe_after = [i for i in repaired if not i.may_permit_stranger() and i in safe]
    assert [
        i.words
        for i in safe_after
        if i.name not in ("reject_unauth_destination", "defer_unauth_destination")
    ] == [
        i.words
        for i in safe
        if i.name not in ("reject_unauth_destination", "defer_unauth_destination")
    ]
    assert repair_relay(repaired, insert=True).operations == ()


def test_grouping_of_arguments_and_warn_if_reject() -> None:
    items = items_of(
        [
            "warn_if_reject",
            "reject_unknown_helo_hostname",
            "check_policy_service",
            "inet:127.0.0.1:10030",
            "reject_rbl_client",
            "zen.example.org",
            "permit",
        ]
    )
    assert [i.text() for i in items] == [
        "warn_if_reject reject_unknown_helo_hostname",
        "check_policy_service inet:127.0.0.1:10030",
        "reject_rbl_client zen.example.org",
        "permit",
    ]
    assert not items[0].may_permit_stranger()
    assert items[3].may_permit_stranger()
