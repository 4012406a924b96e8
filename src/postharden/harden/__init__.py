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

    def as_dict(self) -> dict[str, object]:
        return {**self.write.as_dict(), "verified": list(self.verified)}


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
