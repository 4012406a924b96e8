"""Every shipped profile and role is consistent, and bad profiles are refused clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from postharden.config import load_defaults
from postharden.config.defaults import bundled_defaults
from postharden.harden import (
    FLAGS,
    PlanOptions,
    ProfileError,
    load_profile,
    plan_from_text,
    shipped_profiles,
    shipped_roles,
)
from postharden.harden.profile import CONDITIONS

DEFAULTS = load_defaults("auto")


def test_shipped_profiles_and_roles_exist() -> None:
    assert {"baseline", "strict"} <= set(shipped_profiles())
    assert {"mx", "submission", "local-only"} <= set(shipped_roles())


@pytest.mark.parametrize("profile", shipped_profiles())
@pytest.mark.parametrize("role", [None, *shipped_roles()])
def test_every_profile_is_consistent(profile: str, role: str | None) -> None:
    for table in (DEFAULTS, bundled_defaults()):
        loaded = load_profile(profile, role, table.values)
        ids = [rule.id for rule in loaded.rules]
        assert len(ids) == len(set(ids))
        for rule in loaded.rules:
            assert rule.finding and rule.why
            assert set(rule.requires) <= set(CONDITIONS)
            assert (rule.flag is None) == (rule.breaks is None)
            if rule.flag:
                assert rule.flag in FLAGS
            if rule.kind == "set":
                assert rule.value is not None and rule.accepts(rule.value)
                assert rule.parameter in table.values


def test_strict_extends_baseline() -> None:
    baseline = {r.id for r in load_profile("baseline").rules}
    strict = {r.id for r in load_profile("strict").rules}
    assert baseline < strict


# Idempotency on a spread of configurations: planning on the planned result is empty.
CONFIGS = [
    ("", None),
    ("mynetworks_style = subnet\ncompatibility_level = 0\n", None),
    (
        "smtpd_relay_restrictions = check_sender_access inline:{ a@b=OK }, permit_mynetworks, reject_unauth_destination\n"
        "smtpd_tls_cert_file = CERT\n"
        "smtpd_tls_key_file = CERT\n"
        "smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n",
        "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd\n  -o smtpd_tls_security_level=none\n"
        "  -o smtpd_relay_restrictions=permit\n  -o mynetworks=0.0.0.0/0\n",
    ),
    (
        "mua_relay = permit\nsmtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit\n",
        "smtp inet n - y - - smtpd\nsmtps inet n - y - - smtpd\n  -o smtpd_relay_restrictions=$mua_relay\n",
    ),
]


@pytest.mark.parametrize("profile", shipped_profiles())
@pytest.mark.parametrize("role", shipped_roles())
@pytest.mark.parametrize("config", range(len(CONFIGS)))
def test_plan_on_plan_is_empty(profile: str, role: str, config: int, tmp_path: Path) -> None:
    main, master = CONFIGS[config]
    cert = tmp_path / "cert.pem"
    cert.write_text("not checked by the planner, only its existence\n")
    main = main.replace("CERT", str(cert))
    main = "compatibility_level = 3.6\n" + main if "compatibility_level" not in main else main
    loaded = load_profile(profile, role, DEFAULTS.values)
    options = PlanOptions(enable=frozenset(FLAGS), greylisting="inet:127.0.0.1:10030")
    first = plan_from_text(
        Path("/nonexistent"),
        main.encode(),
        master.encode() if master else None,
        loaded,
        options,
        DEFAULTS,
        proof=False,
    )
    second = plan_from_text(
        Path("/nonexistent"),
        first.new_main,
        first.new_master,
        loaded,
        options,
        DEFAULTS,
        proof=False,
    )
    assert second.empty, [c.as_dict() for c in second.changes]
    if config == 2 and profile == "strict" and role == "submission":
        rules = {c.rule for c in first.changes}
        assert {
            "tls-offered",
            "tls-protocols",
            "sasl-security-options",
            "relay-closed",
            "mynetworks-narrow",
            "greylisting",
            "require-tls-port25",
        } <= rules
        assert not first.skipped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "format = 1\nname = 'x'\nversion = 1\n[[rule]]\nid = 'a'\nkind = 'nope'\nfinding = 'f'\nwhy = 'w'\n",
            "kind 'nope'",
        ),
        (
            "format = 1\nname = 'x'\nversion = 1\n[[rule]]\nid = 'a'\nkind = 'set'\nfinding = 'f'\nwhy = 'w'\nparameter = 'no_such_parameter'\nvalue = 'x'\n",
            "not a Postfix parameter",
        ),
        (
            "format = 1\nname = 'x'\nversion = 1\n[[rule]]\nid = 'a'\nkind = 'set'\nfinding = 'f'\nwhy = 'w'\nparameter = 'smtpd_helo_required'\nvalue = 'yes'\nflag = 'reject-html-body'\n",
            "must say what it breaks",
        ),
        (
            "format = 1\nname = 'x'\nversion = 1\n[[rule]]\nid = 'a'\nkind = 'set'\nfinding = 'f'\nwhy = 'w'\nparameter = 'smtpd_helo_required'\nvalue = 'yes'\naccept = ['no']\n",
            "not accepted by its own rule",
        ),
        ("format = 1\nname = 'x'\nversion = 1\n[[rule]]\nkind = 'relay'\n", "'id' is required"),
        ("format = 2\nname = 'x'\nversion = 1\n", "'format' must be 1"),
        (
            "format = 1\nname = 'x'\nversion = 1\n[[rule]]\nid = 'a'\nkind = 'relay'\nfinding = 'f'\nwhy = 'w'\ncolour = 'red'\n",
            "unknown keys colour",
        ),
        (
            "format = 1\nname = 'x'\nversion = 1\nextends = 'baseline'\n[[rule]]\nid = 'a'\nkind = 'set'\nfinding = 'f'\nwhy = 'w'\nparameter = 'smtpd_helo_required'\nvalue = 'yes'\nrequires = ['moon-phase']\n",
            "unknown condition",
        ),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_profiles_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_profile(str(path), None, DEFAULTS.values)


def test_unknown_profile_names_the_shipped_ones() -> None:
    with pytest.raises(ProfileError, match="shipped: baseline, strict"):
        load_profile("paranoid")
    with pytest.raises(ProfileError, match="no role"):
        load_profile("baseline", "gateway")


def test_findings_name_audit_checks_or_runbook_items() -> None:
    """Each rule names the audit check it fixes (PH-...), or a runbook/checklist item when
    the audit has no check for it (opt-in rules that the audit flags the other way)."""
    from postharden.checks import load_catalog

    catalog = load_catalog()
    ids = {spec.id for spec in (catalog.values() if hasattr(catalog, "values") else catalog)}
    for profile in shipped_profiles():
        for role in shipped_roles():
            for rule in load_profile(profile, role).rules:
                if rule.finding.startswith("PH-"):
                    assert rule.finding in ids, (rule.id, rule.finding)
                else:
                    assert rule.finding.startswith(("runbook:", "checklist:")), rule.id
