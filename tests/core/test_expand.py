"""The `$` expander against the real postconf -x, on the forms that other tools get wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from postharden.config import ExpansionError, expand, load_config, normalize_space
from postharden.config.defaults import find_postfix_tool

POSTCONF = find_postfix_tool("postconf")
needs_postconf = pytest.mark.skipif(
    POSTCONF is None, reason="postconf (Debian package postfix) is not installed"
)

BASE = """\
myhostname = mx.example.com
smtpd_reject_footer = footer for $myhostname
mailbox_command = /usr/bin/deliver -a $recipient
empty_one =
full_one = yes
compatibility_level = 3.6
number = 10
"""

CASES = [
    "$myhostname",
    "${myhostname}",
    "$(myhostname)",
    "a$$b",
    "${full_one?{yes $myhostname}:{no}}",
    "${empty_one?{yes}:{no}}",
    "${empty_one:fallback}",
    "${full_one:fallback}",
    "${full_one?plain text}",
    "${ full_one ? {spaced} : {other} }",
    "${{$number} == {10} ? {ten} : {other}}",
    "${{$number} < {9} ? {less} : {more}}",
    "${{$number} < {9a} ? {less} : {more}}",
    "${{$compatibility_level} <level {3.6} ? {old} : {new}}",
    "${{$compatibility_level} >=level {2} ? {new} : {old}}",
    "${{$compatibility_level} <level {3.10} ? {old} : {new}}",
    "${{abc} != {abd}}",
    "$relay_domains",
    "$smtpd_relay_restrictions",
    "$mydomain and $myorigin",
    "nested ${full_one?{${empty_one:{inner}}}}",
    "$undefined_name_here",
    "$smtpd_reject_footer",
    "$mailbox_command",
]


def postconf_value(directory: Path, name: str) -> str:
    assert POSTCONF is not None
    completed = subprocess.run(
        [POSTCONF, "-c", str(directory), "-xh", name],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.rstrip("\n")


@needs_postconf
@pytest.mark.postfix
def test_expansion_agrees_with_postconf(tmp_path: Path) -> None:
    # postconf only shows user-defined names that a used parameter references.
    lines = [BASE] + [f"case_{i} = {value}\n" for i, value in enumerate(CASES)]
    lines.append(
        "smtpd_recipient_restrictions = " + " ".join(f"$case_{i}" for i in range(len(CASES))) + "\n"
    )
    (tmp_path / "main.cf").write_text("".join(lines))
    (tmp_path / "master.cf").write_text("")
    config = load_config(tmp_path)
    for i, value in enumerate(CASES):
        ours = normalize_space(config.main.expanded(f"case_{i}"))
        theirs = normalize_space(postconf_value(tmp_path, f"case_{i}"))
        assert ours == theirs, f"{value!r}: postharden {ours!r} != postconf {theirs!r}"


@needs_postconf
@pytest.mark.postfix
def test_loop_is_an_error_like_postconf(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("a = $b\nb = x $a\n")
    (tmp_path / "master.cf").write_text("")
    assert POSTCONF is not None
    completed = subprocess.run(
        [POSTCONF, "-c", str(tmp_path), "-xh", "a"], capture_output=True, text=True, timeout=30
    )
    assert completed.returncode != 0
    assert "nesting" in completed.stderr
    config = load_config(tmp_path)
    with pytest.raises(ExpansionError, match="nesting"):
        config.main.expanded("a")


@pytest.mark.parametrize(
    "value",
    [
        "${unterminated",
        "${a?{x}:{y}junk}",
        "${{a} =~ {b} ? {x} : {y}}",
        "${{1} <level {x.y} ? {a}:{b}}",
        "$",
    ],
)
def test_syntax_errors_raise(value: str) -> None:
    with pytest.raises(ExpansionError):
        expand(value, lambda name, test: "v")


def test_references_are_transitive() -> None:
    values = {"a": "$b", "b": "${c?{x}}", "c": "1"}
    result = expand("$a", lambda name, test: values.get(name))
    assert result.value == "x"
    assert result.references == {"a", "b", "c"}
    assert result.undefined == frozenset()
    assert expand("$zz", lambda name, test: None).undefined == {"zz"}


@needs_postconf
@pytest.mark.postfix
def test_raw_parameters_are_not_expanded(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(BASE)
    (tmp_path / "master.cf").write_text("")
    config = load_config(tmp_path)
    for name in ("smtpd_reject_footer", "mailbox_command"):
        assert config.main.expanded(name) == postconf_value(tmp_path, name)
        assert "$" in config.main.expanded(name)
