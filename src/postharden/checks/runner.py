"""Run the catalog over the facts: every check gets an outcome, none sinks the run."""

from __future__ import annotations

from postharden.checks.catalog import load_catalog
from postharden.checks.env import CheckEnv, classify
from postharden.checks.facts import Facts, gather_facts
from postharden.checks.model import (
    AuditReport,
    CheckOutcome,
    CheckSpec,
    CriterionResult,
    Finding,
    NotApplicable,
    ServiceSummary,
    Status,
    Unknown,
    fingerprint,
)
from postharden.checks.roles import Role, RoleError, load_role
from postharden.checks.standards import CRITERIA
from postharden.config import PostfixConfig


def infer_role(config: PostfixConfig) -> tuple[str, str]:
    """The role the services suggest, and why."""
    views = classify(config)
    public = [v for v in views if v.public]
    if not public:
        return "local-only", "no smtpd service is reachable from outside loopback"
    kinds = {v.kind for v in public}
    if "mx" not in kinds:
        if kinds & {"submission", "smtps"}:
            return "submission", "only submission/smtps services listen publicly"
        return "mx", "public smtpd services on non-standard ports: audited as an MX"
    main = config.main
    local_domains = [
        d
        for d in main.list_value("mydestination")
        if d not in ("localhost", "localhost.localdomain") and not d.startswith("localhost.")
    ]
    receives = bool(
        local_domains
        or main.expanded("virtual_mailbox_domains").strip()
        or main.expanded("virtual_alias_domains").strip()
        or main.expanded("relay_domains").strip()
    )
    if not receives and main.is_set("mynetworks"):
        return "relay-hub", "port 25 is public, no domains are received, mynetworks is set"
    return "mx", "port 25 (smtp) listens publicly"


def _validate_role(role: Role, catalog: tuple[CheckSpec, ...]) -> None:
    known = {spec.id for spec in catalog}
    unknown = sorted((set(role.severity) | set(role.not_applicable)) - known)
    if unknown:
        raise RoleError(
            "names checks that do not exist: " + ", ".join(unknown),
            location=f"role file {role.name}.json",
        )


def run_check(spec: CheckSpec, env: CheckEnv) -> CheckOutcome:
    reason = env.role.not_applicable.get(spec.id)
    if reason is not None:
        return CheckOutcome(spec.id, Status.NOT_APPLICABLE, f"role {env.role.name}: {reason}", ())
    try:
        hits = list(spec.function(env))
    except NotApplicable as outcome:
        return CheckOutcome(spec.id, Status.NOT_APPLICABLE, outcome.reason, ())
    except Unknown as outcome:
        return CheckOutcome(spec.id, Status.UNKNOWN, outcome.reason, ())
    except Exception as error:  # a bug in one check must not sink the audit
        import traceback  # only for a check that crashed

        where = traceback.extract_tb(error.__traceback__)[-1]
        return CheckOutcome(
            spec.id,
            Status.ERROR,
            f"internal error: {type(error).__name__}: {error} "
            f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})",
            (),
        )
    default = env.role.severity_for(spec.id, spec.severity)
    findings = tuple(
        Finding(
            id=spec.id,
            title=spec.title,
            category=spec.category,
            severity=hit.severity or default,
            message=hit.message,
            service=hit.service,
            parameter=hit.parameter,
            evidence=hit.evidence,
            fix=hit.fix,
            references=spec.references,
            fingerprint=fingerprint(spec.id, hit.service, hit.parameter, hit.key),
            location=hit.location,
        )
        for hit in hits
    )
    if findings:
        return CheckOutcome(spec.id, Status.FAILED, None, findings)
    return CheckOutcome(spec.id, Status.PASSED, None, ())


def judge_criteria(
    catalog: tuple[CheckSpec, ...], outcomes: dict[str, CheckOutcome]
) -> tuple[CriterionResult, ...]:
    results: list[CriterionResult] = []
    for criterion in CRITERIA:
        ids = tuple(spec.id for spec in catalog if criterion.id in spec.implements)
        states = [outcomes[i] for i in ids]
        failed = [o for o in states if o.status is Status.FAILED]
        open_ = [o for o in states if o.status in (Status.UNKNOWN, Status.ERROR)]
        applicable = [o for o in states if o.status is not Status.NOT_APPLICABLE]
        if failed:
            status, reason = "fail", "failed: " + ", ".join(o.id for o in failed)
        elif open_:
            status = "unknown"
            reason = "; ".join(f"{o.id}: {o.reason}" for o in open_)
        elif not ids:
            status, reason = "unknown", "no check implements this item"
        elif not applicable:
            status = "not applicable"
            reason = "; ".join(f"{o.id}: {o.reason}" for o in states)
        else:
            status, reason = "pass", None
        doc = criterion.id.split(":", 1)[0]
        results.append(CriterionResult(criterion.id, criterion.title, doc, status, reason, ids))
    return tuple(results)


def run_audit(
    config: PostfixConfig,
    *,
    role: str | None = None,
    facts: Facts | None = None,
    only: frozenset[str] | None = None,
) -> AuditReport:
    """Audit a configuration: gather facts (unless given), run every check, judge criteria."""
    catalog = load_catalog()
    if role is None:
        role_name, role_reason = infer_role(config)
        inferred = True
    else:
        role_name, role_reason, inferred = role, "chosen with --role", False
    chosen = load_role(role_name)
    _validate_role(chosen, catalog)
    facts = facts or gather_facts(config)
    env = CheckEnv(facts, chosen)
    outcomes: dict[str, CheckOutcome] = {}
    for spec in catalog:
        if only is not None and spec.id not in only:
            continue
        outcomes[spec.id] = run_check(spec, env)
    services = tuple(
        ServiceSummary(
            key=v.key,
            program=v.service.program,
            listen=v.listen,
            kind=v.kind,
            public=v.public,
            chroot=v.service.chroot,
            line=v.service.first_line,
        )
        for v in env.smtpd
    )
    ran = tuple(spec for spec in catalog if spec.id in outcomes)
    return AuditReport(
        postfix_version=config.postfix_version,
        config_dir=str(config.config_dir),
        role=chosen.name,
        role_version=chosen.version,
        role_inferred=inferred,
        role_reason=role_reason,
        services=services,
        outcomes=tuple(outcomes.values()),
        criteria=judge_criteria(ran, outcomes),
        catalog=ran,
    )
