"""The StrategyEngine: ruleset + plan + backlog → the frozen Strategy of one run.

Pure and deterministic: the same inputs always give the same strategy, so `strategy.json` explains
every decision the run will make. Each phase's slice (category, complexity, mode) comes from the
plan when it names one, else from the ruleset's keyword/path rules; the high-risk table and the
ruleset's overrides then set CI profile, auditor profile, attempts and auto-apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.domain.backlog import AgingRules, Backlog, debt_candidates, effective_overrides
from app.domain.classification import Classification, classify
from app.domain.issue_record import Severity
from app.domain.plan import PlanPhase, PlanTier, RunSelection
from app.domain.ruleset import CIProfileRules, Ruleset
from app.domain.strategy import (
    CIProfileSettings,
    CISettings,
    GateSettings,
    NoCIPolicy,
    PhaseStrategy,
    ProbeCommand,
    RunBudget,
    Strategy,
    TierStrategy,
)
from app.domain.taxonomy import (
    HIGH_RISK,
    AuditorProfile,
    BuilderMode,
    CIProfile,
    Complexity,
    SafetyProfile,
    TaskCategory,
    issue_categories,
)
from app.domain.test_integrity import requested_by_task

DEBT_PHASE_SUFFIX = ".DEBT"
# The playbook: tweak_light phases get at most 2 attempts.
_MODE_ATTEMPT_CAP = {BuilderMode.TWEAK_LIGHT: 2}
_DEFAULT_COMPLEXITY = {TaskCategory.DOCS: Complexity.LOW, TaskCategory.TESTS: Complexity.LOW}
_MODE_FOR_COMPLEXITY = {
    Complexity.LOW: BuilderMode.TWEAK_LIGHT,
    Complexity.MEDIUM: BuilderMode.SCAFFOLDING_HEAVY,
    Complexity.HIGH: BuilderMode.REFACTOR_HEAVY,
}
_AUDITOR_FOR_CATEGORY = {
    TaskCategory.SECURITY_AUTH: AuditorProfile.SECURITY_REVIEW,
    TaskCategory.SCHEMA_CHANGE: AuditorProfile.SCHEMA_REVIEW,
    TaskCategory.DEBT_CLEANUP: AuditorProfile.DEBT_CLEANUP_REVIEW,
}


@dataclass(frozen=True)
class RunIdentity:
    """What names a run: not decided by the compiler, only recorded in the strategy."""

    run_id: str
    repository: str
    issue_number: int
    branch: str


@dataclass(frozen=True)
class OperatorCaps:
    """Limits from the operator's config that a repository's ruleset may lower, never raise."""

    max_tokens_per_run: int = 5_000_000
    max_run_minutes: int = 120
    auditor_available: bool = True


def compile_strategy(
    ruleset: Ruleset,
    selection: RunSelection,
    backlog: Backlog,
    identity: RunIdentity,
    caps: OperatorCaps | None = None,
) -> Strategy:
    """Compile and freeze the strategy of one run."""
    caps = caps or OperatorCaps()
    aging = AgingRules(
        ruleset.aging.minor_to_major_after_runs, ruleset.aging.minor_to_major_after_tiers
    )
    has_auditor = ruleset.auditor is not None and caps.auditor_available
    tiers = [tier for tier in selection.plan_for_this_run.tiers if tier.undone]
    phases_by_tier = {
        tier.tier_id: [_phase(ruleset, tier, phase, has_auditor) for phase in tier.undone]
        for tier in tiers
    }
    debt = _debt_phase(ruleset, backlog, aging, tiers, has_auditor)
    if debt is not None:
        phases_by_tier[debt.tier_id].append(debt)
    phases = tuple(phase for tier in tiers for phase in phases_by_tier[tier.tier_id])
    budgets = ruleset.budgets
    return Strategy(
        run_id=identity.run_id,
        repository=identity.repository,
        issue_number=identity.issue_number,
        branch=identity.branch,
        run_scope=ruleset.run_scope,
        safety_profile=ruleset.safety_profile,
        builder_profile=ruleset.builders.default or ruleset.builder,
        auditor_backend=ruleset.auditor if has_auditor else None,
        budget=RunBudget(
            token_cap=min(budgets.run.token_cap, caps.max_tokens_per_run),
            max_phases=budgets.run.max_phases,
            max_minor_issues=budgets.run.max_minor_issues_per_phase * max(len(phases), 1),
            wall_seconds=min(budgets.run.wall_minutes, caps.max_run_minutes) * 60,
        ),
        ci=_ci(ruleset),
        tiers=tuple(_tier(ruleset, tier, phases_by_tier[tier.tier_id]) for tier in tiers),
        phases=phases,
        effective_severity=effective_overrides(backlog, aging),
        remaining_tiers=selection.remaining_tier_ids,
        plan_warnings=selection.plan_for_this_run.warnings,
        commit_artefacts=ruleset.artefacts.commit,
        probes=tuple(ProbeCommand(probe.name, probe.command) for probe in ruleset.probes),
        aging=aging,
        major_issue_categories=tuple(
            sorted(
                name
                for category, override in ruleset.categories.overrides.items()
                if override.issue_severity is Severity.MAJOR
                for name in issue_categories(category)
            )
        ),
    )


def _phase(ruleset: Ruleset, tier: PlanTier, phase: PlanPhase, has_auditor: bool) -> PhaseStrategy:
    found = (
        Classification(phase.category, "set in the plan")
        if phase.category is not None
        else classify(phase.title, phase.description, rules=ruleset.categories.rules)
    )
    category = found.category
    override = ruleset.categories.override_for(category)
    complexity = (
        phase.complexity
        or override.complexity
        or _DEFAULT_COMPLEXITY.get(category, Complexity.MEDIUM)
    )
    mode = phase.mode or override.builder_mode or _MODE_FOR_COMPLEXITY[complexity]
    attempts = override.max_builder_attempts or ruleset.budgets.phase.max_builder_attempts
    if ruleset.safety_profile is SafetyProfile.SAFETY_CRITICAL or category in HIGH_RISK:
        attempts = min(attempts, 2)
    attempts = min(attempts, _MODE_ATTEMPT_CAP.get(mode, attempts))
    asked = requested_by_task(phase.title, phase.description)
    return PhaseStrategy(
        phase_id=phase.phase_id,
        tier_id=tier.tier_id,
        title=phase.title,
        description=phase.description,
        task_category=category,
        complexity=complexity,
        builder_mode=mode,
        ci_profile=_ci_profile(ruleset, override.ci_profile, complexity),
        auditor_profile=override.auditor_profile
        or _AUDITOR_FOR_CATEGORY.get(category, AuditorProfile.ORCHESTRATOR_REVIEW),
        max_builder_attempts=attempts,
        max_auditor_attempts=ruleset.budgets.phase.max_auditor_attempts if has_auditor else 0,
        incident_token_cap=ruleset.budgets.phase.incident_token_cap,
        wall_seconds=ruleset.budgets.phase.wall_minutes * 60,
        auto_apply=override.auto_apply if override.auto_apply is not None else True,
        gate=_gate(ruleset, mode, {*phase.allow, *asked}),
        category_reason=found.reason,
        builder_profile=ruleset.builder_for(mode),
        reported_issues_major=override.issue_severity is Severity.MAJOR,
    )


def _ci_profile(ruleset: Ruleset, chosen: CIProfile | None, complexity: Complexity) -> CIProfile:
    if ruleset.safety_profile is SafetyProfile.SAFETY_CRITICAL:
        return CIProfile.STRICT
    if chosen is not None:
        return chosen
    return CIProfile.STRICT if complexity is Complexity.HIGH else CIProfile.NORMAL


def _gate(ruleset: Ruleset, mode: BuilderMode, allowed: Iterable[str] = ()) -> GateSettings:
    """The phase's gate settings; `allowed`: test-integrity rules its task asks to break."""
    policy = ruleset.gate.policy_for(mode)
    integrity = ruleset.gate.test_integrity
    return GateSettings(
        max_files=policy.max_files,
        max_lines=policy.max_lines,
        protected_globs=policy.protected_globs,
        allow_workflow_changes=policy.allow_workflow_changes,
        allow_binary=policy.allow_binary,
        max_file_bytes=policy.max_file_bytes,
        test_paths=integrity.test_paths,
        ci_paths=integrity.ci_paths,
        integrity_disabled=tuple(sorted(rule.value for rule in integrity.disabled)),
        integrity_allowed=tuple(sorted({str(rule) for rule in allowed})),
    )


def _debt_phase(
    ruleset: Ruleset,
    backlog: Backlog,
    aging: AgingRules,
    tiers: list[PlanTier],
    has_auditor: bool,
) -> PhaseStrategy | None:
    settings = ruleset.aging.debt_cleanup
    if not settings.enabled or not tiers:
        return None
    candidates = debt_candidates(backlog, aging, settings.max_issues)
    if not candidates:
        return None
    # Last in the run: whatever the cleanup does, no phase the maintainer asked for builds on it.
    tier = tiers[-1]
    keys = tuple(entry.issue_key for entry in candidates)
    # Never auto-applied when any aged issue belongs to a high-risk category.
    high_risk = {row.issue_category for row in HIGH_RISK.values()}
    listing = "\n".join(f"- `{entry.issue_key}` ({entry.category})" for entry in candidates)
    mode = BuilderMode.SCAFFOLDING_HEAVY
    return PhaseStrategy(
        phase_id=f"{tier.tier_id}{DEBT_PHASE_SUFFIX}",
        tier_id=tier.tier_id,
        title=f"Clean up {len(keys)} aged issue(s)",
        description="Resolve these issues, which earlier runs kept finding:\n" + listing,
        task_category=TaskCategory.DEBT_CLEANUP,
        complexity=Complexity.MEDIUM,
        builder_mode=mode,
        ci_profile=_ci_profile(ruleset, None, Complexity.MEDIUM),
        auditor_profile=AuditorProfile.DEBT_CLEANUP_REVIEW,
        max_builder_attempts=min(ruleset.budgets.phase.max_builder_attempts, 2),
        max_auditor_attempts=ruleset.budgets.phase.max_auditor_attempts if has_auditor else 0,
        incident_token_cap=min(settings.token_cap, ruleset.budgets.phase.incident_token_cap),
        wall_seconds=ruleset.budgets.phase.wall_minutes * 60,
        auto_apply=not any(entry.category in high_risk for entry in candidates),
        gate=_gate(ruleset, mode),
        debt_issue_keys=keys,
        builder_profile=ruleset.builder_for(mode, debt_cleanup=True),
        reported_issues_major=(
            ruleset.categories.override_for(TaskCategory.DEBT_CLEANUP).issue_severity
            is Severity.MAJOR
        ),
    )


def _tier(ruleset: Ruleset, tier: PlanTier, phases: list[PhaseStrategy]) -> TierStrategy:
    budgets = ruleset.budgets.tier
    critical = ruleset.safety_profile is SafetyProfile.SAFETY_CRITICAL
    minor_per_phase = (
        budgets.minor_per_phase_safety_critical if critical else budgets.minor_per_phase
    )
    return TierStrategy(
        tier_id=tier.tier_id,
        title=tier.title,
        phase_ids=tuple(phase.phase_id for phase in phases),
        token_cap=budgets.token_cap_factor * sum(phase.incident_token_cap for phase in phases),
        ci_run_cap=budgets.ci_runs_per_phase * len(phases),
        minor_tolerance=minor_per_phase * len(phases),
        major_tolerance=budgets.major_tolerance_safety_critical if critical else None,
    )


def _ci(ruleset: Ruleset) -> CISettings:
    ci = ruleset.ci
    return CISettings(
        start_timeout_seconds=ci.start_timeout_minutes * 60,
        finish_timeout_seconds=ci.finish_timeout_minutes * 60,
        ignore_checks=tuple(ci.ignore_checks),
        normal=_profile(ci.profiles[CIProfile.NORMAL]),
        strict=_profile(ci.profiles[CIProfile.STRICT]),
    )


def _profile(rules: CIProfileRules) -> CIProfileSettings:
    required = (rules.required,) if isinstance(rules.required, str) else tuple(rules.required)
    return CIProfileSettings(
        required=required,
        max_reruns=rules.max_reruns,
        on_no_ci=NoCIPolicy(rules.on_no_ci.value),
    )
