"""Strategies and event scripts shared by the machine's table and property tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app.domain.effects import Effect
from app.domain.events import (
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    CIFinished,
    CIResult,
    Event,
    GateEvaluated,
    PhasesQueued,
    Pushed,
    SnapshotCreated,
    StrategyReady,
)
from app.domain.gate import Decision
from app.domain.machine import advance
from app.domain.run_state import RunState
from app.domain.strategy import (
    CIProfileSettings,
    CISettings,
    GateSettings,
    NoCIPolicy,
    PhaseStrategy,
    RunBudget,
    Strategy,
    TierStrategy,
)
from app.domain.taxonomy import (
    AuditorProfile,
    BuilderMode,
    CIProfile,
    Complexity,
    RunScope,
    SafetyProfile,
    TaskCategory,
)

RUN_ID = "r1"
BRANCH = "autopack/issue-7-run-1"


def make_strategy(
    tiers: Sequence[int] = (1,),
    *,
    run_id: str = RUN_ID,
    max_builder_attempts: int = 2,
    max_auditor_attempts: int = 1,
    incident_token_cap: int = 1000,
    auto_apply: bool = True,
    ci_profile: CIProfile = CIProfile.NORMAL,
    auditor_backend: str | None = "auditor",
    safety_profile: SafetyProfile = SafetyProfile.NORMAL,
    run_scope: RunScope = RunScope.MULTI_TIER,
    run_token_cap: int = 100_000,
    tier_token_cap: int = 10_000,
    ci_run_cap: int = 10,
    max_reruns: int = 1,
    on_no_ci: NoCIPolicy = NoCIPolicy.PASS_WITH_MAJOR,
    max_minor_issues: int = 50,
    minor_tolerance: int = 10,
    major_tolerance: int | None = None,
    commit_artefacts: bool = True,
    debt_cleanup: bool = False,
    reported_issues_major: bool = False,
    major_issue_categories: tuple[str, ...] = (),
) -> Strategy:
    """A valid strategy with `tiers[i]` phases in tier i (phase ids p1, p2, ...); with
    `debt_cleanup`, the last tier ends with the debt-cleanup phase `debt` (of `lint:old`)."""
    phases: list[PhaseStrategy] = []
    tier_values: list[TierStrategy] = []
    for t, count in enumerate(tiers, start=1):
        ids = []
        last = t == len(tiers)
        for n in range(count + (1 if debt_cleanup and last else 0)):
            debt = n == count
            phase_id = "debt" if debt else f"p{len(phases) + 1}"
            ids.append(phase_id)
            phases.append(
                PhaseStrategy(
                    phase_id=phase_id,
                    tier_id=f"t{t}",
                    title=f"Phase {phase_id}",
                    description="",
                    task_category=TaskCategory.FEATURE,
                    complexity=Complexity.MEDIUM,
                    builder_mode=BuilderMode.SCAFFOLDING_HEAVY,
                    ci_profile=ci_profile,
                    auditor_profile=AuditorProfile.ORCHESTRATOR_REVIEW,
                    max_builder_attempts=max_builder_attempts,
                    max_auditor_attempts=max_auditor_attempts,
                    incident_token_cap=incident_token_cap,
                    wall_seconds=1800,
                    auto_apply=auto_apply,
                    gate=GateSettings(max_files=30, max_lines=3000),
                    debt_issue_keys=("lint:old",) if debt else (),
                    reported_issues_major=reported_issues_major,
                )
            )
        tier_values.append(
            TierStrategy(
                tier_id=f"t{t}",
                title=f"Tier {t}",
                phase_ids=tuple(ids),
                token_cap=tier_token_cap,
                ci_run_cap=ci_run_cap,
                minor_tolerance=minor_tolerance,
                major_tolerance=major_tolerance,
            )
        )
    profile = CIProfileSettings(max_reruns=max_reruns, on_no_ci=on_no_ci)
    return Strategy(
        run_id=run_id,
        repository="octo/repo",
        issue_number=7,
        branch=BRANCH,
        run_scope=run_scope,
        safety_profile=safety_profile,
        builder_profile="default",
        auditor_backend=auditor_backend,
        budget=RunBudget(token_cap=run_token_cap, max_minor_issues=max_minor_issues),
        ci=CISettings(normal=profile, strict=profile),
        tiers=tuple(tier_values),
        phases=tuple(phases),
        commit_artefacts=commit_artefacts,
        major_issue_categories=major_issue_categories,
    )


def drive(events: Iterable[Event], run: RunState | None = None) -> tuple[RunState, list[Effect]]:
    """Apply events from a fresh run (or `run`); the final state and the last event's effects."""
    state = run if run is not None else RunState(RUN_ID)
    effects: list[Effect] = []
    for event in events:
        state, produced = advance(state, event)
        effects = list(produced)
    return state, effects


def bootstrap(strategy: Strategy) -> list[Event]:
    """Events that take a run to its first builder attempt."""
    return [StrategyReady(strategy), BranchReady("sha0"), PhasesQueued()]


def green_phase(phase_id: str, attempt: int = 1, sha: str = "") -> list[Event]:
    """Events that take a phase attempt from its builder to its snapshot (auto-apply)."""
    sha = sha or f"sha-{phase_id}-{attempt}"
    return [
        BuilderFinished(phase_id, attempt, BuilderOutcome.OK, tokens_used=10),
        GateEvaluated(phase_id, attempt, Decision.PASS),
        Pushed(phase_id, attempt, sha),
        CIFinished(phase_id, sha, CIResult.GREEN),
        SnapshotCreated(phase_id, f"autopack/{RUN_ID}/{phase_id}"),
    ]


def names(effects: Iterable[Effect]) -> list[str]:
    """Effect class names, in order."""
    return [type(effect).__name__ for effect in effects]
