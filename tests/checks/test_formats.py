"""Every output format renders every finding; JSON validates against the checked-in
schema, SARIF against the official SARIF 2.1.0 schema and our stricter subset."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest

from postharden.report.audit import FORMATS, audit_document, render

from .helpers import audit

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "src/postharden/schemas/audit.schema.json").read_text())
SARIF_SCHEMA = json.loads(
    (Path(__file__).parent / "data/sarif-2.1.0-subset.schema.json").read_text()
)
SARIF_OFFICIAL = json.loads(
    (Path(__file__).parent / "data/sarif-2.1.0-rtm.5.schema.json").read_text()
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> list[object]:
    found = []
    for name in ("weak", "checklist", "runbook", "hardened"):
        target = tmp_path_factory.mktemp("ex") / name
        shutil.copytree(ROOT / "examples" / name, target)
        for pem in target.glob("tls/*.pem"):
            os.chmod(pem, 0o600)
        found.append(audit(target))
    return found


def test_json_validates_and_round_trips(reports: list[object]) -> None:
    from postharden.checks import AuditReport

    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for report in reports:
        assert isinstance(report, AuditReport)
        document = json.loads(render(report, "json", fail_on="high", exit_code=1))
        jsonschema.Draft202012Validator(SCHEMA).validate(document)
        assert document["schema_version"] == 1
        assert len(document["findings"]) == len(report.findings)
        assert [c["id"] for c in document["checks"]] == [o.id for o in report.outcomes]
        for finding in document["findings"]:
            assert "line" not in finding["fingerprint"]


def test_sarif_validates_and_locates(reports: list[object]) -> None:
    from postharden.checks import AuditReport

    for report in reports:
        assert isinstance(report, AuditReport)
        sarif = json.loads(render(report, "sarif"))
        jsonschema.Draft7Validator(SARIF_SCHEMA).validate(sarif)
        jsonschema.Draft4Validator(SARIF_OFFICIAL).validate(sarif)
        run = sarif["runs"][0]
        results = run["results"]
        assert len(results) == len(report.findings)
        rules = run["tool"]["driver"]["rules"]
        for result in results:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        located = [r for r in results if "locations" in r]
        for finding, result in zip(report.findings, results, strict=True):
            assert result["partialFingerprints"]["postharden/v1"] == finding.fingerprint
            if finding.location and finding.location[1]:
                assert (
                    result["locations"][0]["physicalLocation"]["region"]["startLine"]
                    == finding.location[1]
                )
        if report.findings:
            assert located


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_every_finding(fmt: str, reports: list[object]) -> None:
    from postharden.checks import AuditReport

    for report in reports:
        assert isinstance(report, AuditReport)
        text = render(report, fmt)
        assert text.endswith("\n")
        document = audit_document(report)
        for finding in document["findings"]:
            if fmt == "sarif":
                assert finding["fingerprint"] in text
            elif fmt == "json":
                assert json.dumps(finding["message"])[1:-1] in text
            else:
                assert finding["id"] in text
                if fmt == "text":
                    assert finding["message"] in text
        for criterion in document["criteria"]:
            if fmt in ("text", "markdown"):
                assert criterion["title"] in text.replace("\\|", "|")


def test_one_interface_for_every_format(reports: list[object]) -> None:
    from postharden.report.audit import RENDERERS

    assert set(RENDERERS) == set(FORMATS) == {"text", "json", "sarif", "markdown", "html"}
    for fmt, renderer in RENDERERS.items():
        assert renderer(reports[0]) == render(reports[0], fmt)  # type: ignore[arg-type]
