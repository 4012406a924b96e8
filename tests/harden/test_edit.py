"""The edit engine: minimal, byte-preserving edits that Postfix reads as intended."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from postharden.config import parse_main_cf, parse_master_cf, split_list
from postharden.harden import edit
from postharden.harden.restrictions import group_items, items_of, repair_relay

MAIN = b"""# Admin's header \xe9 (latin-1 byte kept as is)
myhostname = mx.example.test

# relay control, one per line
smtpd_relay_restrictions =
    permit
    # the partner's map
    permit_mynetworks,
    check_sender_access inline:{ friend@example.net=OK }
    reject_unauth_destination
    reject_rbl_client zen.example.org
disable_vrfy_command=no
message_size_limit = 25600000  # 25MB
disable_vrfy_command = no
smtpd_etrn_restrictions =
"""


def test_set_main_edits_the_winning_definition_only() -> None:
    text = edit.decode(MAIN)
    definitions = parse_main_cf(text, "main.cf", [])
    winning = [d for d in definitions if d.name == "disable_vrfy_command"][-1]
    new = edit.encode(edit.set_main(text, winning, "disable_vrfy_command", "yes"))
    old_lines, new_lines = MAIN.split(b"\n"), new.split(b"\n")
    assert len(old_lines) == len(new_lines)
    differing = [i + 1 for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b]
    assert differing == [winning.first_line]
    assert new_lines[winning.first_line - 1] == b"disable_vrfy_command = yes"
    # the losing definition (line 12) and the non-UTF-8 byte stay
    assert b"disable_vrfy_command=no" in new and b"\xe9" in new


def test_set_main_appends_when_undefined_and_fills_empty_values() -> None:
    text = edit.decode(MAIN)
    new = edit.set_main(text, None, "smtpd_helo_required", "yes")
    assert new == text + "smtpd_helo_required = yes\n"
    empty = next(d for d in parse_main_cf(text, "m", []) if d.name == "smtpd_etrn_restrictions")
    assert edit.set_main(text, empty, "smtpd_etrn_restrictions", "a, b").endswith(
        "smtpd_etrn_restrictions = a, b\n"
    )
    assert edit.set_main("a = 1", None, "b", "2") == "a = 1\nb = 2\n"


def test_relay_repair_keeps_layout_comments_and_the_admins_maps() -> None:
    text = edit.decode(MAIN)
    definition = next(
        d for d in parse_main_cf(text, "m", []) if d.name == "smtpd_relay_restrictions"
    )
    region = edit.main_region(text, definition)
    tokens = region.token_texts(text)
    repair = repair_relay(items_of(tokens), insert=True)
    new = edit.rewrite_list(text, region, group_items(tokens), repair.operations)
    after = next(d for d in parse_main_cf(new, "m", []) if d.name == "smtpd_relay_restrictions")
    items = items_of(split_list(after.value))
    assert [i.text() for i in items] == [
        "permit_mynetworks",
        "reject_unauth_destination",
        "permit",
        "check_sender_access inline:{ friend@example.net=OK }",
        "reject_rbl_client zen.example.org",
    ]
    # the comment line inside the value and every other line are untouched
    assert "    # the partner's map\n" in new
    assert new.count("\n") == text.count("\n")
    before_lines, after_lines = text.split("\n"), new.split("\n")
    outside = [
        i
        for i in range(len(before_lines))
        if not definition.first_line <= i + 1 <= definition.last_line
    ]
    assert all(before_lines[i] == after_lines[i] for i in outside)


MASTER = """smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_relay_restrictions=permit,reject_unauth_destination
# comment lines inside a service are skipped by Postfix

  -o { smtpd_recipient_restrictions = permit_mynetworks, permit }
  -o disable_vrfy_command=no
pickup    unix  n       -       y       60      1       pickup
"""


def test_override_edits_add_and_remove() -> None:
    service = parse_master_cf(MASTER, "master.cf", [])[1]
    new = edit.set_override(MASTER, service, service.override("disable_vrfy_command"), "yes")
    assert "  -o disable_vrfy_command=yes\n" in new
    service = parse_master_cf(new, "m", [])[1]
    new = edit.add_override(new, service, "smtpd_helo_required", "yes")
    service = parse_master_cf(new, "m", [])[1]
    assert service.overrides_dict()["smtpd_helo_required"] == "yes"
    assert new.index("smtpd_helo_required") < new.index("pickup")
    new = edit.set_override(
        new, service, service.override("smtpd_recipient_restrictions"), "permit_mynetworks, reject"
    )
    service = parse_master_cf(new, "m", [])[1]
    assert service.overrides_dict()["smtpd_recipient_restrictions"] == "permit_mynetworks, reject"
    removed = edit.remove_override(new, service, service.override("smtpd_helo_required"))
    service = parse_master_cf(removed, "m", [])[1]
    assert "smtpd_helo_required" not in service.overrides_dict()
    assert removed.count("\n") == new.count("\n") - 1
    # a value with spaces in an unbraced -o becomes a braced one
    spaced = edit.set_override(
        MASTER,
        parse_master_cf(MASTER, "m", [])[1],
        parse_master_cf(MASTER, "m", [])[1].override("syslog_name"),
        "a b",
    )
    assert parse_master_cf(spaced, "m", [])[1].overrides_dict()["syslog_name"] == "a b"


@pytest.mark.skipif(
    shutil.which("postconf", path="/usr/sbin:/usr/bin") is None, reason="postconf is not installed"
)
def test_postfix_reads_edited_files_as_intended(tmp_path: Path) -> None:
    """Randomised edits; the real postconf must see exactly the values the model sees."""
    rng = random.Random(5)
    postconf = shutil.which("postconf", path="/usr/sbin:/usr/bin")
    assert postconf
    for round_ in range(3):
        text = edit.decode(MAIN)
        master = MASTER
        names = [
            "disable_vrfy_command",
            "smtpd_relay_restrictions",
            "smtpd_etrn_restrictions",
            "smtpd_helo_restrictions",
            "new_param_x",
        ]
        expected: dict[str, str] = {}
        for _ in range(4):
            name = rng.choice(names)
            value = rng.choice(["yes", "a, b  c", "permit_mynetworks, reject", "x.example.test"])
            definition = next(
                (d for d in reversed(parse_main_cf(text, "m", [])) if d.name == name), None
            )
            if name == "new_param_x":
                name, definition = "smtpd_banner", definition
            text = edit.set_main(text, definition, name, value)
            expected[name] = value
        service = parse_master_cf(master, "m", [])[1]
        vrfy = rng.choice(["yes", "no"])
        master = edit.set_override(master, service, service.override("disable_vrfy_command"), vrfy)
        directory = tmp_path / f"r{round_}"
        directory.mkdir()
        (directory / "main.cf").write_bytes(edit.encode(text))
        (directory / "master.cf").write_text(master)
        names_seen = list(expected)
        shown = subprocess.run(
            [postconf, "-c", str(directory), "-h", *names_seen],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        for name, line in zip(names_seen, shown, strict=True):
            assert " ".join(line.split()) == " ".join(expected[name].split()), name
        shown_p = subprocess.run(
            [postconf, "-c", str(directory), "-P", "submission/inet/disable_vrfy_command"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert shown_p == f"submission/inet/disable_vrfy_command = {vrfy}"
