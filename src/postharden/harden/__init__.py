"""Harden a Postfix configuration: profiles -> plan (data) -> apply (safe write) -> rollback.

    from postharden.harden import load_profile, make_plan, apply_plan, PlanOptions

    profile = load_profile("baseline", role="submission")
    plan = make_plan(Path("/etc/postfix"), profile, PlanOptions(mynetworks=("10.1.0.0/24",)))
    for change in plan.changes:          # Change: rule, finding, file, parameter, service,
        print(change.where, change.why)  #   old_value -> new_value, why, breaks, flag
    plan.safety                          # Proof: legitimate flows before/after, relay verdicts
    result = apply_plan(plan, reload=False)   # lock, backup, atomic write, postfix check
    rollback(Path("/etc/postfix"), parameters=["smtpd_helo_required"])

Errors the user can cause raise HardenError (an InputError, exit code 2); a write that
failed and was undone raises ApplyError (exit 1), and a plan that would stop legitimate
mail raises UnsafePlanError (exit 1) unless `force=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from postharden.harden.apply import WriteResult, write_configuration
from postharden.harden.errors import (
    ApplyError,
    HardenError,
    LockedError,
    ProfileError,
    UnsafePlanError,
)
from postharden.harden.plan import (
    MAIN_CF,
    MASTER_CF,
    Change,
    EffectiveValue,
    Plan,
    PlanOptions,
    Skip,
    make_plan,
    plan_from_text,
)
from postharden.harden.policy import DEFAULT_POLICY, PolicyServiceError, probe_policy_service
from postharden.harden.profile import (
    FLAGS,
    Profile,
    Rule,
    load_profile,
    shipped_profiles,
    shipped_roles,
)
from postharden.harden.rollback import Backup, RollbackResult, list_backups, rollback
from postharden.harden.safety import Proof


@dataclass
class ApplyResult:
    plan: Plan
    write: WriteResult
    verified: list[str] = field(default_factory=list)
    # Verification against the real Postfix that found a problem (open relay, a service
    # that does not run, an answer the engine did not predict); empty when all is well.
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            **self.write.as_dict(),
            "verified": list(self.verified),
            "problems": list(self.problems),
        }


def verify_with_sandbox(result: ApplyResult) -> None:
    """Ask a sandbox of the real Postfix, on a copy of the new files, what it answers."""
    from postharden.sandbox import SandboxError, postfix_available
    from postharden.sandbox.verify import verify

    reason = postfix_available()
    if reason:
        result.problems.append(f"sandbox: not run: {reason}")
        return
    try:
        report = verify(result.plan.config_dir)
    except SandboxError as error:
        result.problems.append(f"sandbox: {error}")
        return
    for service in report.services:
        if not service.available:
            result.problems.append(f"sandbox: {service.name}: smtpd does not run: {service.reason}")
            continue
        line = (
            f"sandbox: {service.name}: the real Postfix "
            + ("relays for outside clients" if service.open_relay else "refuses outside relaying")
            + f"; {service.disagreements} answer(s) unlike the prediction"
        )
        if service.open_relay or service.disagreements:
            result.problems.append(line)
        else:
            result.verified.append(line)


def verify_with_probe(result: ApplyResult, target: str) -> None:
    """Live probe of the running server (after the reload) from where postharden runs."""
    from postharden.probe import ProbeError, ProbeOptions, probe

    try:
        report = probe(target, ProbeOptions(timeout=5.0, session_deadline=30.0))
    except ProbeError as error:  # a bad target is a finding of the apply, not a crash
        result.problems.append(f"probe {target}: {error}")
        return
    for service in report.services:
        where = f"probe {target}:{service.port}"
        if service.open_relay:
            result.problems.append(f"{where}: relays mail for an outside client")
        elif service.open_relay is None:
            result.problems.append(f"{where}: relay test inconclusive")
        else:
            result.verified.append(f"{where}: relay attempts from here are refused")
        if service.vrfy_enabled:
            result.problems.append(f"{where}: VRFY answers")


def check_safety(plan: Plan, *, force: bool) -> None:
    """UnsafePlanError when the proof shows a broken flow or an open relay (unless force)."""
    proof = plan.safety
    if plan.empty or proof is None or proof.ok or force:
        return
    if proof.error:
        reason = proof.error
    elif proof.broken:
        first = proof.broken[0]
        reason = (
            f"{len(proof.broken)} legitimate flow(s) would stop, e.g. {first.flow.label}: "
            f"{first.before} before, {first.after} after"
        )
    else:
        service, _, summary = proof.open_services[0]
        reason = f"{service} would still relay: {summary}"
    raise UnsafePlanError(f"refused: {reason} (see `postharden plan`; --force to apply anyway)")


def apply_plan(
    plan: Plan, *, force: bool = False, check: bool = True, reload: bool = True
) -> ApplyResult:
    """Write a plan (see apply.write_configuration) and verify the result statically."""
    check_safety(plan, force=force)
    new = {MAIN_CF: plan.new_main}
    expected: dict[str, bytes | None] = {MAIN_CF: plan.old_main, MASTER_CF: plan.old_master}
    if plan.new_master is not None:
        new[MASTER_CF] = plan.new_master
    write = write_configuration(plan.config_dir, new, expected, check=check, reload=reload)
    result = ApplyResult(plan, write)
    if write.changed:
        again = make_plan(plan.config_dir, plan.profile, plan.options, proof=False)
        if again.empty:
            result.verified.append(
                f"plan after apply is empty: the files meet {plan.profile.label}"
            )
        else:
            result.verified.append(
                f"plan after apply still has {len(again.changes)} change(s): "
                + ", ".join(sorted({c.rule for c in again.changes}))
            )
        if plan.safety is not None and plan.safety.relays:
            closed = [s for s, verdict, _ in plan.safety.relays if verdict == "closed"]
            result.verified.append(
                f"relay closed on {len(closed)} of {len(plan.safety.relays)} smtpd service(s)"
            )
    return result


__all__ = [
    "DEFAULT_POLICY",
    "FLAGS",
    "ApplyError",
    "ApplyResult",
    "Backup",
    "Change",
    "EffectiveValue",
    "HardenError",
    "LockedError",
    "Plan",
    "PlanOptions",
    "PolicyServiceError",
    "Profile",
    "ProfileError",
    "Proof",
    "RollbackResult",
    "Rule",
    "Skip",
    "UnsafePlanError",
    "apply_plan",
    "check_safety",
    "list_backups",
    "load_profile",
    "make_plan",
    "plan_from_text",
    "probe_policy_service",
    "rollback",
    "shipped_profiles",
    "shipped_roles",
]
