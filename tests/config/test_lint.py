"""`postharden lint`: each check on a small configuration, its agreement with postconf's
own "unused parameter" / "undefined parameter" warnings, and the CLI contract."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from postconf_oracle import POSTCONF, parse_warnings, run_postconf

from postharden.config import load_config, normalize_space
from postharden.config.lint import CHECKS, LintFinding, Severity, lint

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
SCHEMA = json.loads((ROOT / "src/postharden/schemas/lint.schema.json").read_text())
MASTER = "smtp inet n - n - - smtpd\n"


def lint_text(tmp_path: Path, main: str, master: str = MASTER) -> list[LintFinding]:
    (tmp_path / "main.cf").write_text(main)
    (tmp_path / "master.cf").write_text(master)
    return lint(load_config(tmp_path, "bundled"))


def only(findings: list[LintFinding], check: str) -> list[LintFinding]:
    return [f for f in findings if f.id == check]


def test_hash_after_value(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "myhostname = a.example\n"
        "message_size_limit = 25600000  # 25MB\n"
        "smtpd_recipient_restrictions = permit_mynetworks,\n"
        "# a real comment inside the value\n"
        "    reject_unauth_destination # last\n",
        MASTER + "  -o smtpd_tls_security_level=may  # opportunistic\n",
    )
    hashes = only(findings, "hash-in-value")
    assert [(Path(f.file).name, f.line, f.parameter) for f in hashes] == [
        ("main.cf", 2, "message_size_limit"),
        ("main.cf", 5, "smtpd_recipient_restrictions"),
        ("master.cf", 2, None),
    ]
    assert "message_size_limit = 25600000" in hashes[0].fix
    assert all(f.severity is Severity.ERROR for f in hashes)
    # master.cf: the -o value ends at the blank; "#" and "opportunistic" become arguments
    # of smtpd (the row's arguments as postconf -M shows them).
    config = load_config(tmp_path, "bundled")
    assert config.services[0].overrides_dict()["smtpd_tls_security_level"] == "may"
    assert config.services[0].arguments[-2:] == ("#", "opportunistic")
    assert "'# opportunistic'" in hashes[2].message


def test_unknown_parameter_with_nearest_name(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "myhostname = a.example\ndisable_vrfy_commands = yes\nsmtpd_helo_require = yes\n"
        "completely_made_up = 1\n",
    )
    unknown = {f.parameter: f for f in only(findings, "unknown-parameter")}
    assert set(unknown) == {"disable_vrfy_commands", "smtpd_helo_require", "completely_made_up"}
    assert unknown["disable_vrfy_commands"].line == 2
    assert "disable_vrfy_command" in unknown["disable_vrfy_commands"].fix
    assert "smtpd_helo_required" in unknown["smtpd_helo_require"].message
    assert "did you mean" not in unknown["completely_made_up"].message


def test_used_user_defined_names_are_not_unknown(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "myhostname = a.example\n"
        "mua_sender_restrictions = reject_sender_login_mismatch, permit_sasl_authenticated\n"
        "smtpd_restriction_classes = strict\n"
        "strict = reject_unknown_sender_domain\n"
        "relay_destination_concurrency_limit = 2\n"
        "virtual_alias_maps = ldap:ldapsrc\n"
        "ldapsrc_server_host = ldap.example\n",
        MASTER
        + "  -o smtpd_sender_restrictions=$mua_sender_restrictions\n"
        + "relay unix - - n - - smtp\n",
    )
    assert only(findings, "unknown-parameter") == []


def test_restriction_written_as_parameter(tmp_path: Path) -> None:
    findings = lint_text(tmp_path, "myhostname = a.example\nreject_sender_login_mismatch = yes\n")
    [finding] = only(findings, "restriction-as-parameter")
    assert finding.line == 2 and finding.severity is Severity.ERROR
    assert "does nothing" in finding.message


def test_obsolete_parameters_and_restrictions(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "myhostname = a.example\nsmtpd_use_tls = yes\nsmtp_use_tls = yes\n"
        "smtpd_enforce_tls = yes\nsmtpd_tls_dh512_param_file = /etc/dh512.pem\n"
        "smtpd_helo_restrictions = reject_invalid_hostname, reject_non_fqdn_hostname,\n"
        "  reject_unknown_hostname\n"
        "smtpd_recipient_restrictions = permit_mynetworks, check_relay_domains\n",
        MASTER + "  -o smtpd_enforce_tls=yes\n",
    )
    obsolete = [
        (Path(f.file).name, f.line, f.parameter) for f in only(findings, "obsolete-parameter")
    ]
    assert obsolete == [
        ("main.cf", 2, "smtpd_use_tls"),
        ("main.cf", 3, "smtp_use_tls"),
        ("main.cf", 4, "smtpd_enforce_tls"),
        ("main.cf", 5, "smtpd_tls_dh512_param_file"),
        ("master.cf", 2, "smtpd_enforce_tls"),
    ]
    restrictions = only(findings, "obsolete-restriction")
    assert sorted(f.message.split(": ")[1].split()[0] for f in restrictions) == [
        "check_relay_domains",
        "reject_invalid_hostname",
        "reject_non_fqdn_hostname",
        "reject_unknown_hostname",
    ]
    assert any("reject_invalid_helo_hostname" in f.fix for f in restrictions)


def test_duplicates_say_which_line_wins(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "myhostname = first.example\nmynetworks = 0.0.0.0/0\nmyhostname = last.example\n",
        MASTER + "  -o smtpd_helo_required=no\n  -o smtpd_helo_required=yes\n",
    )
    duplicates = only(findings, "duplicate-definition")
    assert [(Path(f.file).name, f.line, f.parameter) for f in duplicates] == [
        ("main.cf", 3, "myhostname"),
        ("master.cf", 3, "smtpd_helo_required"),
    ]
    assert "line 3, wins" in duplicates[0].message


def test_undefined_reference_and_loop(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "myhostname = a.example\nsmtpd_banner = $myhostname $no_such_thing\na = $b\nb = $a\n",
    )
    [undefined] = only(findings, "undefined-reference")
    assert (undefined.line, undefined.parameter) == (2, "smtpd_banner")
    assert "$no_such_thing" in undefined.message
    loops = only(findings, "expansion-loop")
    assert {f.parameter for f in loops} == {"a", "b"}


def test_master_layout(tmp_path: Path) -> None:
    master = (
        "smtp      inet  n       -       y       -       -       smtpd\n"  # 1
        "#submission inet n       -       y       -       -       smtpd\n"  # 2
        "#  -o syslog_name=postfix/submission\n"  # 3
        "  -o smtpd_tls_security_level=encrypt\n"  # 4: misplaced, applies to smtp
        "pickup    unix  n       -       y       60      1       pickup\n"  # 5
        "\n"  # 6
        "  -o content_filter=\n"  # 7: after a blank line, still pickup
        "cleanup   unix  n       -       y       -       0       cleanup\n"  # 8
        "  -o smtpd_tls_securty_level=may\n"  # 9: unknown -o
        "  -o header_checks\n"  # 10: malformed
    )
    findings = lint_text(tmp_path, "myhostname = a.example\n", master)
    [misplaced] = only(findings, "misplaced-override")
    assert (misplaced.line, misplaced.parameter, misplaced.service) == (
        4,
        "smtpd_tls_security_level",
        "smtp/inet",
    )
    assert "'submission'" in misplaced.message
    [gap] = only(findings, "continuation-after-gap")
    assert (gap.line, gap.service) == (7, "pickup/unix")
    [unknown] = only(findings, "unknown-override")
    assert (unknown.line, unknown.parameter) == (9, "smtpd_tls_securty_level")
    assert "smtpd_tls_security_level" in unknown.fix
    [malformed] = only(findings, "malformed-row")
    assert malformed.service == "cleanup/unix" and "header_checks" in malformed.message


def test_ignored_line_and_read_only(tmp_path: Path) -> None:
    findings = lint_text(
        tmp_path,
        "  indented_first = 1\nmyhostname = a.example\nprocess_name = fake\n",
        MASTER + "  -o service_name=fake\n",
    )
    [ignored] = only(findings, "ignored-line")
    assert ignored.line == 1
    read_only = only(findings, "read-only-assignment")
    assert [(Path(f.file).name, f.line) for f in read_only] == [("main.cf", 3), ("master.cf", 2)]


def test_clean_configuration_has_no_findings(tmp_path: Path) -> None:
    shutil.copytree(CORPUS / "debian12-internet-site", tmp_path / "c")
    assert lint(load_config(tmp_path / "c", "bundled")) == []


def test_every_check_has_documentation() -> None:
    doc = (ROOT / "docs/commands/lint.md").read_text()
    for check in CHECKS:
        assert f"`{check}`" in doc, check


# --- agreement with postconf ---------------------------------------------------------------

needs_postconf = pytest.mark.skipif(
    POSTCONF is None, reason="postconf (package postfix) is not installed"
)
LINT_CASES = sorted(p for p in CORPUS.iterdir() if p.is_dir())


@pytest.mark.postfix
@needs_postconf
@pytest.mark.parametrize("directory", LINT_CASES, ids=[p.name for p in LINT_CASES])
def test_unknown_names_are_what_postconf_calls_unused(directory: Path, tmp_path: Path) -> None:
    copy = tmp_path / directory.name
    shutil.copytree(directory, copy)
    config = load_config(copy, "installed")
    findings = lint(config)
    warnings = parse_warnings(run_postconf(copy, "-n")[1])
    postconf_unused = {(file, setting.split("=", 1)[0]) for file, setting in warnings.unused}
    ours = {
        (Path(f.file).name, f.parameter)
        for f in findings
        if f.id in ("unknown-parameter", "unknown-override", "restriction-as-parameter")
    }
    # Obsolete names that Postfix no longer knows are reported as obsolete, not unknown.
    ours |= {
        (Path(f.file).name, f.parameter)
        for f in findings
        if f.id == "obsolete-parameter" and (Path(f.file).name, f.parameter) in postconf_unused
    }
    if "odd-master-syntax" not in directory.name:
        assert ours == postconf_unused
    undefined = {
        f.message.split("$", 1)[1].split(",")[0] for f in only(findings, "undefined-reference")
    }
    assert undefined == {name for _, name in warnings.undefined}


@pytest.mark.postfix
@needs_postconf
def test_loop_findings_are_where_postconf_dies(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("myhostname = a.example\na = $b\nb = $a\nsmtpd_banner = $a\n")
    (tmp_path / "master.cf").write_text(MASTER)
    assert only(lint(load_config(tmp_path, "installed")), "expansion-loop")
    died = subprocess.run(
        [str(POSTCONF), "-c", str(tmp_path), "-x"], capture_output=True, text=True, timeout=60
    )
    assert died.returncode != 0 and "macro processing error" in died.stderr


# --- the CLI --------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "postharden", "lint", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "name", ["debian12-internet-site", "odd-master-comments", "old-2x-relay-recipient-only"]
)
def test_cli_text_and_json_agree_and_validate(name: str) -> None:
    directory = CORPUS / name
    text = cli("--config-dir", str(directory), "--defaults", "bundled")
    as_json = cli("--config-dir", str(directory), "--defaults", "bundled", "--format", "json")
    assert text.returncode == as_json.returncode, (text.stderr, as_json.stderr)
    document = json.loads(as_json.stdout)
    jsonschema.validate(document, SCHEMA)
    findings = document["findings"]
    assert text.returncode == (1 if findings else 0)
    for finding in findings:
        location = f"{finding['file']}:{finding['line']}" if finding["line"] else finding["file"]
        assert (
            f"{location}: {finding['severity']}: {finding['message']} [{finding['id']}]"
            in text.stdout
        )
        assert f"fix: {finding['fix']}" in text.stdout
    assert sum(document["summary"].values()) == len(findings)


def test_cli_exit_codes(tmp_path: Path) -> None:
    assert cli("--config-dir", str(tmp_path / "missing")).returncode == 2
    (tmp_path / "main.cf").write_text("myhostname = a.example\n")
    (tmp_path / "master.cf").write_text(MASTER)
    clean = cli("--config-dir", str(tmp_path))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    (tmp_path / "main.cf").write_text("myhostname = a.example\nmessage_size_limit = 1 # x\n")
    dirty = cli("--config-dir", str(tmp_path))
    assert dirty.returncode == 1
    assert normalize_space(dirty.stdout).count("[hash-in-value]") == 1
