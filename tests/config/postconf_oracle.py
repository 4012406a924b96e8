"""Compare postharden's configuration model with the real `postconf` on one directory.

`compare(directory)` runs postconf (-n, -nx, -x, -d, -P, -Px, -M) on the directory and
returns a list of human-readable mismatches; an empty list means full agreement. Values are
compared with whitespace folded as postconf prints them (normalize_space).

Skipped, and why:
- process_id, process_name: per-process values of the postconf run itself; so is every
  value whose expansion goes through them.
- config_directory: postconf sets it from -c (`.` or the path given).
- services with a bundled option word (`-osyslog_name=x`, `-o{ a = b }`): postconf's
  pcf_normalize_daemon_args() splits such a word before every letter `o`
  (`-o sysl -o g_name=x`), while the daemon's getopt() reads `-o` with the value
  `syslog_name=x`. postharden models the daemon; those services' -P, -Px, -M rows and
  master.cf warnings are a postconf display quirk and are not compared
  (test_bundled_o_is_a_postconf_display_quirk shows it).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from postharden.config import PostfixConfig, load_config, normalize_space
from postharden.config.defaults import (
    LEGACY_PARAMETERS,
    READ_ONLY_PARAMETERS,
    find_postfix_tool,
    installed_defaults,
)
from postharden.config.known import analyse_names
from postharden.config.master import split_fields
from postharden.config.syntax import logical_lines, split_nameval

POSTCONF = find_postfix_tool("postconf")
SKIPPED = frozenset({"process_id", "process_name", "config_directory"})
_PER_PROCESS = frozenset({"process_id", "process_name"})
_WARNING = re.compile(r"^\S*postconf: warning: (?:.*/)?(main\.cf|master\.cf): (.*)$")


def age_files(directory: Path) -> None:
    """Date the files a minute back: Postfix waits (300 ms at a time, for seconds) while a
    configuration file is younger than a second or two, as if an editor were still
    writing it."""
    past = time.time() - 60
    for path in directory.iterdir():
        os.utime(path, (past, past))


def run_postconf(directory: Path, *args: str) -> tuple[str, str]:
    assert POSTCONF is not None
    age_files(directory)
    completed = subprocess.run(
        [POSTCONF, "-c", str(directory), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert completed.returncode == 0, f"postconf {' '.join(args)} failed: {completed.stderr}"
    return completed.stdout, completed.stderr


def _printable(text: str) -> str:
    """Postfix logs a value through printable(): every byte outside ASCII 32..126 is `?`
    (so a tab inside a continued value reads `x,y?2` in a warning)."""
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in text.encode("utf-8"))


def parse_parameters(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip():
            name, value = split_nameval(line)
            values[name] = value
    return values


def parse_service_parameters(text: str) -> dict[tuple[str, str], str]:
    """-P output: `service/type/name = value` -> {("service/type", name): value}."""
    values: dict[tuple[str, str], str] = {}
    for key, value in parse_parameters(text).items():
        service, name = key.rsplit("/", 1)
        values[(service, name)] = value
    return values


@dataclass
class Warnings:
    unused: set[tuple[str, str]] = field(default_factory=set)  # (file, "name=value")
    undefined: set[tuple[str, str]] = field(default_factory=set)  # (file, name)


def parse_warnings(stderr: str) -> Warnings:
    found = Warnings()
    for line in stderr.splitlines():
        match = _WARNING.match(line)
        if not match:
            continue
        file, message = match.groups()
        if message.startswith("unused parameter: "):
            setting = message.removeprefix("unused parameter: ")
            name, _, value = setting.partition("=")
            found.unused.add((file, f"{name}={normalize_space(value)}"))
        elif message.startswith("undefined parameter: "):
            found.undefined.add((file, message.removeprefix("undefined parameter: ")))
    return found


def _per_process(config: PostfixConfig, name: str) -> bool:
    try:
        references = config.main.expansion(name).references
    except Exception:
        return False
    return bool(references & _PER_PROCESS) or name in SKIPPED


def _diff_values(
    label: str, theirs: dict[str, str], ours: dict[str, str], mismatches: list[str]
) -> None:
    for name in sorted(set(theirs) | set(ours)):
        if name not in theirs:
            mismatches.append(f"{label}: {name} only in postharden ({ours[name]!r})")
        elif name not in ours:
            mismatches.append(f"{label}: {name} only in postconf ({theirs[name]!r})")
        elif normalize_space(theirs[name]) != normalize_space(ours[name]):
            mismatches.append(
                f"{label}: {name}: postconf {normalize_space(theirs[name])!r} "
                f"!= postharden {normalize_space(ours[name])!r}"
            )


def _normalise_argument(word: str) -> str:
    """postconf -M prints `-o { a = b c }` as `-o {a=b c}` and `-o { a = b }` as `-o a=b`."""
    if word.startswith("{") and word.endswith("}"):
        inner = word[1:-1].strip()
        try:
            name, value = split_nameval(inner)
        except ValueError:
            return word
        word = f"{name}={value}"
    return "{" + word + "}" if any(ch.isspace() for ch in word) else word


def has_bundled_o(arguments: tuple[str, ...]) -> bool:
    """`-oname=value` or `-o{...}`: a daemon option word longer than `-o`."""
    for word in arguments:
        if not word.startswith("-") or word == "--":
            return False
        if len(word) > 2 and "o" in word[1:]:
            return True
    return False


def _quirky_services(directory: Path) -> set[str]:
    """name/type of the master.cf rows whose options postconf splits wrongly."""
    found: set[str] = set()
    master = directory / "master.cf"
    if not master.exists():
        return found
    for logical in logical_lines(master.read_text(encoding="utf-8", errors="replace")):
        words = [w for _, w in split_fields(logical.text)]
        if len(words) >= 8 and has_bundled_o(tuple(words[8:])):
            found.add(f"{words[0]}/{words[1]}")
    return found


def compare(directory: Path) -> list[str]:
    """Every disagreement between postconf and postharden on this directory."""
    config = load_config(directory, "installed")
    installed = installed_defaults()
    assert installed is not None and config.defaults is installed
    mismatches: list[str] = []
    analysis = analyse_names(config)
    quirky = _quirky_services(directory)
    unused_main = {u.name for u in analysis.unused if u.file == "main.cf"}

    # Warnings: unused and undefined names, compared in both directions.
    stdout_n, stderr_n = run_postconf(directory, "-n")
    warnings = parse_warnings(stderr_n)
    ours_unused = {
        (u.file, f"{u.name}={normalize_space(_printable(u.value))}")
        for u in analysis.unused
        if u.service is None or u.service.key not in quirky
    }
    if quirky:
        plain = {
            f"{o.name}={normalize_space(_printable(o.value))}"
            for s in config.services
            if s.key not in quirky
            for o in s.overrides
        }
        warnings.unused = {
            item for item in warnings.unused if item[0] == "main.cf" or item[1] in plain
        }
    for item in sorted(warnings.unused ^ ours_unused):
        side = "postconf" if item in warnings.unused else "postharden"
        mismatches.append(f"unused parameter {item} only in {side}")
    ours_undefined = {(u.file, u.name) for u in analysis.undefined}
    for item in sorted(warnings.undefined ^ ours_undefined):
        side = "postconf" if item in warnings.undefined else "postharden"
        mismatches.append(f"undefined parameter {item} only in {side}")

    # -n / -nx: main.cf settings that Postfix uses, raw and expanded.
    set_names = [n for n in config.main.set_names() if n not in unused_main and n not in SKIPPED]
    theirs_n = {k: v for k, v in parse_parameters(stdout_n).items() if k not in SKIPPED}
    _diff_values("-n", theirs_n, {n: config.main.raw(n) or "" for n in set_names}, mismatches)
    theirs_nx = {
        k: v
        for k, v in parse_parameters(run_postconf(directory, "-nx")[0]).items()
        if not _per_process(config, k)
    }
    ours_nx = {n: config.main.expanded(n) for n in set_names if not _per_process(config, n)}
    _diff_values("-nx", theirs_nx, ours_nx, mismatches)

    # -x: every parameter postconf knows, expanded.
    theirs_x = {
        k: v
        for k, v in parse_parameters(run_postconf(directory, "-x")[0]).items()
        if not _per_process(config, k)
    }
    ours_x = {
        n: config.main.expanded(n)
        for n in config.main.names()
        if n not in unused_main and not _per_process(config, n)
    }
    # Display quirk: postconf -x also lists a legacy parameter (virtual_maps, fallback_relay)
    # that only an -o sets, with its main.cf value (empty when main.cf has none).
    for service in config.services:
        for name in service.overrides_dict():
            if name in LEGACY_PARAMETERS:
                ours_x.setdefault(name, config.main.expanded(name))
    _diff_values("-x", theirs_x, ours_x, mismatches)

    # -d: defaults (built-in and service-defined) of this master.cf.
    theirs_d = {
        k: v
        for k, v in parse_parameters(run_postconf(directory, "-d")[0]).items()
        if k not in SKIPPED
    }
    ours_d = {
        k: v
        for k, v in {**config.defaults.values, **config.service_defaults}.items()
        if k not in SKIPPED
    }
    for name in ("mydomain", "mynetworks"):
        # Computed by postconf from the defaults of their inputs; postharden computes them
        # in context (compared by -x above).
        theirs_d.pop(name, None)
        ours_d.pop(name, None)
    _diff_values("-d", theirs_d, ours_d, mismatches)

    # -P / -Px: every service override, raw and expanded in the service's context.
    theirs_p = {
        k: v
        for k, v in parse_service_parameters(run_postconf(directory, "-P")[0]).items()
        if k[0] not in quirky
    }
    theirs_px = {
        k: v
        for k, v in parse_service_parameters(run_postconf(directory, "-Px")[0]).items()
        if k[0] not in quirky
    }
    ours_p: dict[tuple[str, str], str] = {}
    ours_px: dict[tuple[str, str], str] = {}
    for service in config.services:
        if service.key in quirky:
            continue
        context = config.effective(service)
        for name, value in service.overrides_dict().items():
            if name in READ_ONLY_PARAMETERS:
                continue
            ours_p[(service.key, name)] = value
            references = context.expansion(name).references
            if not references & _PER_PROCESS:
                ours_px[(service.key, name)] = context.expanded(name)
    _diff_values(
        "-P",
        {"/".join(k): v for k, v in theirs_p.items()},
        {"/".join(k): v for k, v in ours_p.items()},
        mismatches,
    )
    _diff_values(
        "-Px",
        {"/".join(k): v for k, v in theirs_px.items() if k in ours_px or k not in ours_p},
        {"/".join(k): v for k, v in ours_px.items()},
        mismatches,
    )

    # -M: every service row, its 8 fields and its arguments.
    theirs_m = [
        [_normalise_argument(w) for _, w in split_fields(line)]
        for line in run_postconf(directory, "-M")[0].splitlines()
        if line.strip()
    ]
    theirs_m = [row for row in theirs_m if f"{row[0]}/{row[1]}" not in quirky]
    ours_m = [
        [
            s.name,
            s.type,
            s.private,
            s.unpriv,
            s.chroot,
            s.wakeup,
            s.maxproc,
            s.command,
            *(_normalise_argument(a) for a in s.arguments),
        ]
        for s in config.services
        if s.key not in quirky
    ]
    if theirs_m != ours_m:
        for index in range(max(len(theirs_m), len(ours_m))):
            left = theirs_m[index] if index < len(theirs_m) else None
            right = ours_m[index] if index < len(ours_m) else None
            if left != right:
                mismatches.append(f"-M row {index + 1}: postconf {left} != postharden {right}")
    return mismatches
