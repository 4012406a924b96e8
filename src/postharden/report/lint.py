"""Renderers for `postharden lint`: text and JSON from the same findings."""

from __future__ import annotations

import json
from collections import Counter

from postharden.config import PostfixConfig
from postharden.config.lint import LintFinding, Severity


def summary(findings: list[LintFinding]) -> dict[str, int]:
    counts = Counter(f.severity.value for f in findings)
    return {severity.value: counts.get(severity.value, 0) for severity in Severity}


def render_json(config: PostfixConfig, findings: list[LintFinding]) -> str:
    document = {
        "schema_version": 1,
        "postfix_version": config.postfix_version,
        "config_directory": str(config.config_dir),
        "findings": [f.to_dict() for f in findings],
        "summary": summary(findings),
    }
    return json.dumps(document, indent=2, ensure_ascii=False)


def render_text(config: PostfixConfig, findings: list[LintFinding]) -> str:
    lines: list[str] = []
    for finding in findings:
        lines.append(
            f"{finding.location}: {finding.severity.value}: {finding.message} [{finding.id}]"
        )
        lines.append(f"    fix: {finding.fix}")
    counts = summary(findings)
    if findings:
        lines.append(
            f"{len(findings)} finding{'s' if len(findings) != 1 else ''} in {config.config_dir}: "
            + ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        )
    else:
        lines.append(f"{config.config_dir}: no findings")
    return "\n".join(lines)
