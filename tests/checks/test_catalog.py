"""The catalog: unique stable IDs, documentation, metadata, fixtures for every check;
roles consistent with it; every runbook/checklist item implemented."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources

import pytest

from postharden.checks import ROLE_NAMES, Category, Severity, load_catalog, load_role
from postharden.checks.roles import RoleError, parse_role
from postharden.checks.standards import CRITERIA

from .cases import CASES

CATALOG = load_catalog()


def test_ids_unique_and_stable_form() -> None:
    ids = [spec.id for spec in CATALOG]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 50
    for spec in CATALOG:
        prefix = spec.id.split("-")[1]
        expected = {
            "REL": Category.RELAY,
            "ACC": Category.ACCESS,
            "DIS": Category.DISCLOSURE,
            "TLS": Category.TLS,
            "AUT": Category.AUTH,
            "CNT": Category.CONTENT,
            "LIM": Category.LIMITS,
            "FIL": Category.FILES,
            "SVC": Category.SERVICE,
            "SYN": Category.SYNTAX,
        }[prefix]
        # The ID prefix names the category, except where a check sits with its topic.
        assert spec.category is expected, spec.id


@pytest.mark.parametrize("spec", CATALOG, ids=[s.id for s in CATALOG])
def test_metadata_and_docs(spec: object) -> None:
    from postharden.checks import CheckSpec

    assert isinstance(spec, CheckSpec)
    assert len(spec.title) >= 10 and not spec.title.endswith(".")
    assert isinstance(spec.category, Category)
    assert isinstance(spec.severity, Severity)
    assert len(spec.doc) > 80, f"{spec.id} needs user documentation in its docstring"
    assert spec.references and all(
        r.title and r.url and r.url.startswith("https://") for r in spec.references
    )
    known = {c.id for c in CRITERIA}
    assert spec.implements and set(spec.implements) <= known, spec.implements


@pytest.mark.parametrize("spec", CATALOG, ids=[s.id for s in CATALOG])
def test_every_check_has_triggering_and_passing_fixtures(spec: object) -> None:
    from postharden.checks import CheckSpec

    assert isinstance(spec, CheckSpec)
    expectations = Counter(c.expect for c in CASES if c.check == spec.id)
    assert expectations["failed"] >= 1, f"{spec.id}: no configuration that triggers it"
    assert expectations["passed"] >= 1, f"{spec.id}: no configuration that passes it"


def test_cases_name_existing_checks() -> None:
    ids = {spec.id for spec in CATALOG}
    assert {c.check for c in CASES} <= ids
    assert len({c.id for c in CASES}) == len(CASES)


def test_every_criterion_is_implemented() -> None:
    for criterion in CRITERIA:
        assert any(criterion.id in spec.implements for spec in CATALOG), criterion.id
    assert sum(c.done for c in CRITERIA) == 5  # the runbook's Done criteria


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_shipped_roles_are_valid_and_consistent(name: str) -> None:
    role = load_role(name)
    ids = {spec.id for spec in CATALOG}
    assert set(role.severity) <= ids
    assert set(role.not_applicable) <= ids
    assert role.version.count(".") == 2


def test_role_validation_rejects_bad_files() -> None:
    text = resources.files("postharden.checks").joinpath("roles/mx.json").read_text()
    good = json.loads(text)
    parse_role("mx", good)
    for change, message in (
        ({"schema": 2}, "schema"),
        ({"name": "relay-hub"}, "does not match"),
        ({"severity": {"PH-DIS-001": "urgent"}}, "unknown severity"),
        ({"expects": {"public_smtp": True}}, "expects"),
        ({"extra": 1}, "unknown field"),
        ({"not_applicable": {"PH-ACC-007": "x"}}, "both rated"),
    ):
        with pytest.raises(RoleError, match=message):
            parse_role("mx", {**good, **change})
    with pytest.raises(RoleError, match="unknown role"):
        load_role("backup-mx")
