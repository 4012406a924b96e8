"""The audit: declared checks over facts, with an outcome for every check.

Public interface (for the audit command, harden and verify):

    from postharden.config import load_config
    from postharden.checks import run_audit, load_catalog

    config = load_config("/etc/postfix")
    report = run_audit(config, role=None)     # role inferred from the services when None
    report.role, report.role_inferred, report.role_reason
    for finding in report.findings:           # Finding, worst first
        finding.id, finding.severity, finding.service, finding.parameter
        finding.evidence                      # (Evidence(origin, text, effective, note), ...)
        finding.fix                           # Fix: main_cf / master_cf / remove / ... as data
        finding.fix.postconf_args()           # [["-e", "name=value"], ["-P", "svc/type/n=v"]]
        finding.fingerprint                   # stable across line moves (for baselines)
    for outcome in report.outcomes:           # one per check: passed, failed, error,
        outcome.id, outcome.status, outcome.reason  # not_applicable, unknown (with reason)
    report.criteria                           # runbook Done criteria and checklist items

    facts = gather_facts(config)              # all I/O happens here; checks never do I/O
    report = run_audit(config, facts=facts)

Checks are declared in the category modules with `@check(...)`; `load_catalog()` returns
them ordered by ID. Roles are data files in `checks/roles/`.
"""

from postharden.checks.baseline import BaselineError, apply_baseline, load_baseline
from postharden.checks.catalog import load_catalog
from postharden.checks.facts import Answer, Facts, gather_facts
from postharden.checks.model import (
    AuditReport,
    Category,
    CheckOutcome,
    CheckSpec,
    CriterionResult,
    Evidence,
    Finding,
    Fix,
    MasterField,
    MasterSetting,
    Severity,
    Status,
)
from postharden.checks.roles import ROLE_NAMES, Role, RoleError, load_role
from postharden.checks.runner import infer_role, run_audit

__all__ = [
    "ROLE_NAMES",
    "Answer",
    "AuditReport",
    "BaselineError",
    "Category",
    "CheckOutcome",
    "CheckSpec",
    "CriterionResult",
    "Evidence",
    "Facts",
    "Finding",
    "Fix",
    "MasterField",
    "MasterSetting",
    "Role",
    "RoleError",
    "Severity",
    "Status",
    "apply_baseline",
    "gather_facts",
    "infer_role",
    "load_baseline",
    "load_catalog",
    "load_role",
    "run_audit",
]
