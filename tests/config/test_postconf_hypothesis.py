"""Hypothesis-generated main.cf/master.cf pairs, compared with the real postconf.

Random user-defined and built-in names, values with every `$` form, continuation lines
(after blank and comment lines too), `#` after values, duplicates, `-o name=value`,
`-o { name = value with spaces }` and `-o name=$other` overrides. A generated file may
contain an expansion loop: then postconf -x must die and postharden must refuse too.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from postconf_oracle import POSTCONF, age_files, compare

from postharden.config import ConfigError, load_config
from postharden.config.known import analyse_names

pytestmark = [
    pytest.mark.postfix,
    pytest.mark.skipif(
        POSTCONF is None, reason="postconf (Debian package postfix) is not installed"
    ),
]

# Built-in names whose values postconf does not validate (no interface or protocol
# lookups), so that any text is acceptable to it.
BUILTIN = (
    "smtpd_banner",
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_restriction_classes",
    "alias_maps",
    "transport_maps",
    "relay_domains",
    "mydestination",
    "header_checks",
    "syslog_name",
    "smtp_helo_name",
    "relayhost",
    "content_filter",
    "masquerade_domains",
    "compatibility_level",
    "smtpd_reject_footer",
    "mailbox_command",
    "virtual_maps",
)
USER = ("alpha", "beta", "gamma", "delta", "mua_client", "my_list", "cls_a", "cls_b")
NAMES = BUILTIN + USER
SERVICES = (
    ("smtp", "inet", "smtpd"),
    ("submission", "inet", "smtpd"),
    ("127.0.0.1:10025", "inet", "smtpd"),
    ("[::1]:2525", "inet", "smtpd"),
    ("relay", "unix", "smtp"),
    ("slow", "unix", "smtp"),
    ("filter", "unix", "pipe"),
    ("cleanup", "unix", "cleanup"),
)

words = st.sampled_from(
    ["permit", "reject", "hash:/etc/x", "3.6", "2", "yes", "", "a b", "x,y", "10", "#note"]
)
names = st.sampled_from(NAMES)


@st.composite
def macro(draw: st.DrawFn) -> str:
    name = draw(names | st.sampled_from(("undefined_one", "myhostname")))
    form = draw(st.integers(0, 8))
    a, b = draw(words), draw(words)
    return [
        f"${name}",
        f"${{{name}}}",
        f"$({name})",
        f"${{{name}?{{{a}}}:{{{b}}}}}",
        f"${{{name}?{a}}}",
        f"${{{name}:{b}}}",
        f"${{{{${name}}} == {{{a}}} ? {{eq}} : {{ne}}}}",
        f"${{{{${name}}} <level {{3.6}} ? {{old}} : {{new}}}}",
        "$$",
    ][form]


value_parts = st.lists(words | macro(), min_size=0, max_size=4)


def join(parts: list[str], separator: str) -> str:
    return separator.join(p for p in parts if p)


@st.composite
def main_cf(draw: st.DrawFn) -> str:
    # Without myhostname, postconf asks the resolver for this machine's name (seconds
    # per call here); the name itself is not what is being tested.
    lines: list[str] = ["myhostname = generated.example.com"]
    for _ in range(draw(st.integers(1, 12))):
        name = draw(names)
        parts = draw(value_parts)
        spacing = draw(st.sampled_from([" = ", "=", " =", "= ", "\t=\t"]))
        if draw(st.booleans()) and len(parts) > 1:
            # A continued value, possibly with blank and comment lines inside.
            lines.append(f"{name}{spacing}{parts[0]}")
            for part in parts[1:]:
                if draw(st.booleans()):
                    lines.append(draw(st.sampled_from(["", "# inner comment", "   # indented"])))
                lines.append(draw(st.sampled_from([" ", "\t", "    "])) + (part or "x"))
        else:
            lines.append(f"{name}{spacing}{join(parts, draw(st.sampled_from([' ', ', ', ','])))}")
        if draw(st.integers(0, 5)) == 0:
            lines.append("# a comment line")
    return "\n".join(lines) + "\n"


@st.composite
def override(draw: st.DrawFn) -> str:
    name = draw(names)
    value = join(draw(value_parts), draw(st.sampled_from([",", "_"])))
    if draw(st.booleans()):
        return f"-o {{ {name} = {value} with spaces }}"
    value = value.replace(" ", "").replace("{", "").replace("}", "") or "v"
    return f"-o {name}={value}"


@st.composite
def master_cf(draw: st.DrawFn) -> str:
    chosen = draw(st.lists(st.sampled_from(SERVICES), min_size=0, max_size=5, unique=True))
    lines: list[str] = []
    for service, kind, command in chosen:
        row = f"{service} {kind} n - n - - {command}"
        if command == "pipe":
            row += " flags=R user=nobody argv=/bin/true ${sender}"
            lines.append(row)
            continue
        lines.append(row)
        for option in draw(st.lists(override(), max_size=4)):
            if draw(st.integers(0, 3)) == 0:
                lines.append(draw(st.sampled_from(["", "# comment between -o lines"])))
            lines.append("  " + option)
    return "\n".join(lines) + "\n"


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    # Each example runs postconf seven times: report the failing example as generated
    # instead of spending minutes shrinking it.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(main=main_cf(), master=master_cf())
def test_generated_configurations_agree_with_postconf(main: str, master: str) -> None:
    with tempfile.TemporaryDirectory(prefix="postharden-hypothesis-") as name:
        directory = Path(name)
        (directory / "main.cf").write_text(main)
        (directory / "master.cf").write_text(master)
        age_files(directory)
        config = load_config(directory, "installed")
        try:
            config.check_expansions()
        except ConfigError:
            # A loop, nesting beyond 100, or a malformed compatibility level: postconf -x
            # must die as well, unless only values it ignores (unused parameters) fail.
            died = subprocess.run(
                [str(POSTCONF), "-c", name, "-x"], capture_output=True, text=True, timeout=60
            )
            if died.returncode != 0:
                # "fatal: macro processing error", or a crash: postconf 3.7 recurses
                # without limit through a relational operand that names its own
                # parameter (`a = ${{$a} == {x} ? {y}}`) and dies of SIGSEGV.
                assert "macro processing error" in died.stderr or died.returncode in (
                    -11,
                    139,
                ), died.stderr
                return
            # postconf -x expands main.cf's view of every parameter, but in a service only
            # the -o values (-Px); a service whose -o breaks a default (`-o
            # compatibility_level=v`) makes that daemon die, which postconf does not show.
            unused = {u.name for u in analyse_names(config).unused}
            checks = [(config.main, config.main.names())]
            checks += [(config.effective(s), list(s.overrides_dict())) for s in config.services]
            for context, parameters in checks:
                for parameter in parameters:
                    try:
                        context.expansion(parameter)
                    except ValueError:
                        assert parameter in unused, f"postconf accepts {parameter}"
            return
        mismatches = compare(directory)
        assert not mismatches, "\n".join(
            [*mismatches, "--- main.cf", main, "--- master.cf", master]
        )
