"""postharden's configuration model against the real postconf, on the corpus and on
hypothesis-generated configurations.

For every directory: postconf -n, -nx, -x (every parameter it knows, expanded), -d, -P,
-Px and -M, and its "unused parameter" / "undefined parameter" warnings, must agree with
postharden (see postconf_oracle.compare for what is skipped and why).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from postconf_oracle import POSTCONF, age_files, compare, parse_parameters, run_postconf

from postharden.config import load_config
from postharden.config.defaults import (
    LEGACY_PARAMETERS,
    RAW_PARAMETERS,
    bundled_defaults,
    installed_defaults,
)
from postharden.config.known import macro_names

CORPUS = Path(__file__).parent / "corpus"
CORPUS_DIRS = sorted(p for p in CORPUS.iterdir() if p.is_dir())

pytestmark = [
    pytest.mark.postfix,
    pytest.mark.skipif(
        POSTCONF is None, reason="postconf (Debian package postfix) is not installed"
    ),
]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS_DIRS) >= 40
    for directory in CORPUS_DIRS:
        assert (directory / "main.cf").is_file(), directory
        assert (directory / "master.cf").is_file(), directory


@pytest.mark.parametrize("directory", CORPUS_DIRS, ids=[p.name for p in CORPUS_DIRS])
def test_corpus_agrees_with_postconf(directory: Path, tmp_path: Path) -> None:
    # A copy, so that postconf and postharden read exactly the same bytes under a path
    # without surprises, and the test never writes into the repository.
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy)
    age_files(copy)
    mismatches = compare(copy)
    assert not mismatches, "\n".join(mismatches)


def test_bundled_snapshot_matches_installed_postconf() -> None:
    installed = installed_defaults()
    assert installed is not None
    bundled = bundled_defaults()
    if bundled.version != installed.version:
        pytest.skip(f"installed Postfix {installed.version}, snapshot {bundled.version}")
    # myhostname (and what derives from it) is this machine's; all else must be identical.
    machine = {"myhostname", "mydomain", "mynetworks"}
    differing = {
        name
        for name in set(installed.values) | set(bundled.values)
        if name not in machine and installed.values.get(name) != bundled.values.get(name)
    }
    assert not differing


def test_raw_parameters_are_the_ones_postconf_leaves_unexpanded(tmp_path: Path) -> None:
    installed = installed_defaults()
    assert installed is not None
    names = [n for n in installed.values if n not in {"myhostname", "config_directory"}]
    (tmp_path / "master.cf").write_text("")
    (tmp_path / "main.cf").write_text(
        "myhostname = host.example\n" + "".join(f"{n} = $myhostname\n" for n in names)
    )
    shown = parse_parameters(run_postconf(tmp_path, "-nx")[0])
    unexpanded = {n for n, v in shown.items() if v == "$myhostname"}
    assert unexpanded == RAW_PARAMETERS


def test_the_comparison_can_fail(tmp_path: Path) -> None:
    """A model that reads the first of two definitions must be caught."""
    (tmp_path / "main.cf").write_text("myhostname = first.example\nmyhostname = last.example\n")
    (tmp_path / "master.cf").write_text("smtp inet n - n - - smtpd -o smtpd_banner=$myhostname\n")
    assert compare(tmp_path) == []
    config = load_config(tmp_path, "installed")
    assert config.main.raw("myhostname") == "last.example"
    # Corrupt the model the way other tools read main.cf, and the oracle must object.
    first = config.definitions[0]
    config.winning["myhostname"] = first
    config.main._cache.clear()
    import postconf_oracle

    original = postconf_oracle.load_config
    postconf_oracle.load_config = lambda *_args, **_kw: config  # type: ignore[assignment]
    try:
        mismatches = compare(tmp_path)
    finally:
        postconf_oracle.load_config = original
    assert any("myhostname" in m for m in mismatches)


def test_legacy_parameters_are_the_obsolete_names_defaults_refer_to() -> None:
    installed = installed_defaults()
    assert installed is not None
    referenced = set()
    for name, value in installed.values.items():
        if name not in RAW_PARAMETERS:
            referenced.update(macro_names(value))
    assert referenced - set(installed.values) == LEGACY_PARAMETERS


def test_bundled_o_is_a_postconf_display_quirk(tmp_path: Path) -> None:
    """postconf splits `-osyslog_name=...` before every `o`; the daemon's getopt does not.

    postharden reads `-oNAME=VALUE` as getopt() does (`-o` with `NAME=VALUE`); this test
    pins down postconf's different reading so that a change in a future Postfix is seen.
    """
    (tmp_path / "main.cf").write_text("")
    (tmp_path / "master.cf").write_text("smtp inet n - n - - smtpd -osyslog_name=postfix/x\n")
    shown = run_postconf(tmp_path, "-P")[0].split()
    assert "smtp/inet/g_name" in shown
    config = load_config(tmp_path, "installed")
    assert config.services[0].overrides_dict() == {"syslog_name": "postfix/x"}
