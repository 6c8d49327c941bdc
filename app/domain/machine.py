"""The run state machine: `advance(run, event) -> (run', effects)`, pure and deterministic.

The machine waits for exactly one result at a time (`run.awaiting`); anything else (stale,
duplicated, out of order, after a terminal state) leaves the run unchanged and asks for nothing.
Budgets fail closed: nothing starts once a cap is reached, and the one attempt in flight is told
what it may still spend. docs/state-machine.md is the transition table in prose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from app.domain.effects import (
    CompileStrategy,
    CreateBranch,
    CreateSnapshot,
    EvaluateGate,
    QueuePhases,
    Report,
    RerunCI,
    WaitForCI,
    WriteArtefacts,
    snapshot_tag,
)
from app.domain.events import (
    ArtefactsWritten,
    AttemptLost,
    AuditorFinished,
    AuditorVerdict,
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    Cancelled,
    CIFinished,
    CIResult,
    EnvironmentFailed,
    Event,
    GateEvaluated,
    PhasesQueued,
    PhaseTimedOut,
    Pushed,
    PushRejected,
    RunTimedOut,
    SnapshotCreated,
    StrategyReady,
    StrategyRejected,
)
from app.domain.gate import Decision
from app.domain.issue_record import Severity
from app.domain.machine_steps import (
    Result,
    add_tokens,
    fail_attempt,
    finish,
    issue_marks,
    mark_unreviewed,
    next_phase,
    over_minor_limit,
    phase_green,
    push,
    record_issues,
    review_reasons,
    start_review,
    strategy_of,
)
from app.domain.run_state import (
    AuditReason,
    Awaiting,
    AwaitKind,
    PhaseProgress,
    RunState,
    RunStatus,
    TierProgress,
)
from app.domain.strategy import NoCIPolicy, Strategy

Handler = Callable[[RunState, Any], Result | None]
FEEDBACK_OUTPUT_CHARS = 2_000  # of the failing checks' output, in the builder's feedback

__all__ = ["TRANSITIONS", "Result", "advance", "handles", "start_run"]


def start_run(run_id: str) -> Result:
    """A new run in PLAN_BOOTSTRAP and its first effect (compile the strategy)."""
    return RunState(run_id=run_id), (CompileStrategy(),)


def advance(run: RunState, event: Event) -> Result:
    """Apply one event: the next state and the effects to carry out (never raises)."""
    if run.status.is_terminal:
        return run, ()
    handler = TRANSITIONS.get(run.status, {}).get(type(event)) or _ANY_STATE.get(type(event))
    if handler is None:
        return run, ()
    result = handler(run.evolve(seq=run.seq + 1), event)
    if result is None:
        return run, ()
    return result


def handles(status: RunStatus, event_type: type[Event]) -> bool:
    """True if the machine has a transition for this (state, event type) pair."""
    if status.is_terminal:
        return False
    return event_type in TRANSITIONS.get(status, {}) or event_type in _ANY_STATE


def _expects(run: RunState, kind: AwaitKind, phase_id: str, attempt: int | None = None) -> bool:
    waiting = run.awaiting
    return (
        waiting is not None
        and waiting.kind is kind
        and waiting.phase_id == phase_id
        and (attempt is None or waiting.attempt == attempt)
    )


# -- bootstrap ---------------------------------------------------------------------------------


def _strategy_ready(run: RunState, event: StrategyReady) -> Result | None:
    strategy = event.strategy
    problem = _strategy_problem(run.run_id, strategy)
    if problem:
        return finish(run, RunStatus.DONE_FAILED_POLICY_VIOLATION, f"Invalid strategy: {problem}.")
    run = run.evolve(
        status=RunStatus.RUN_CREATED,
        strategy=strategy,
        phases=tuple(PhaseProgress(p.phase_id, p.tier_id) for p in strategy.phases),
        tiers=tuple(TierProgress(t.tier_id) for t in strategy.tiers),
        tokens=run.tokens + max(0, event.planner_tokens),
        awaiting=Awaiting(AwaitKind.BRANCH),
        artefacts_pending=True,
    )
    artefacts_branch = strategy.branch if strategy.commit_artefacts else None
    return run, (
        CreateBranch(strategy.branch),
        WriteArtefacts(final=False, branch=artefacts_branch),
        Report(run.status, run.seq),
    )


def _strategy_problem(run_id: str, strategy: Strategy) -> str:
    """Why a strategy cannot drive this run ('' if it can)."""
    phase_ids = [p.phase_id for p in strategy.phases]
    tier_ids = [t.tier_id for t in strategy.tiers]
    if strategy.run_id != run_id:
        return f"it belongs to run {strategy.run_id}, not {run_id}"
    if not strategy.branch:
        return "it names no integration branch"
    if not phase_ids:
        return "it has no phases"
    if len(set(phase_ids)) != len(phase_ids) or len(set(tier_ids)) != len(tier_ids):
        return "phase or tier ids repeat"
    for tier in strategy.tiers:
        listed = tuple(p.phase_id for p in strategy.phases if p.tier_id == tier.tier_id)
        if tuple(tier.phase_ids) != listed:
            return f"tier {tier.tier_id} does not list its phases in order"
    if any(p.tier_id not in tier_ids for p in strategy.phases):
        return "a phase belongs to no tier"
    return ""


def _strategy_rejected(run: RunState, event: StrategyRejected) -> Result | None:
    return finish(run, RunStatus.DONE_FAILED_POLICY_VIOLATION, event.reason or "Invalid ruleset.")


def _branch_ready(run: RunState, event: BranchReady) -> Result | None:
    if not _expects(run, AwaitKind.BRANCH, ""):
        return None
    run = run.evolve(
        status=RunStatus.PHASE_QUEUEING, head_sha=event.head_sha, awaiting=Awaiting(AwaitKind.QUEUE)
    )
    return run, (QueuePhases(),)


def _phases_queued(run: RunState, event: PhasesQueued) -> Result | None:
    if not _expects(run, AwaitKind.QUEUE, ""):
        return None
    return next_phase(run, ())


# -- a phase attempt ---------------------------------------------------------------------------


def _builder_finished(run: RunState, event: BuilderFinished) -> Result | None:
    if not _expects(run, AwaitKind.BUILDER, event.phase_id, event.attempt):
        return None
    run = add_tokens(run, event.phase_id, event.tokens_used)
    failed = event.outcome is not BuilderOutcome.OK
    extra = [(f"builder:{event.outcome.value}", Severity.MINOR)] if failed else []
    marks = issue_marks(run, event.phase_id, event.issues, reported=True)
    run = record_issues(run, event.phase_id, [*marks, *extra])
    if stop := over_minor_limit(run):
        return stop
    if failed:
        why = event.failure_reason or event.summary or "no reason given"
        note = f"Attempt {event.attempt}: the builder ended {event.outcome.value}: {why}"
        return fail_attempt(run, event.phase_id, note)
    run = run.evolve(
        status=RunStatus.GATE, awaiting=Awaiting(AwaitKind.GATE, event.phase_id, event.attempt)
    )
    return run, (EvaluateGate(event.phase_id, event.attempt),)


def _gate_evaluated(run: RunState, event: GateEvaluated) -> Result | None:
    if not _expects(run, AwaitKind.GATE, event.phase_id, event.attempt):
        return None
    assert run.awaiting is not None
    waiting = run.awaiting
    run = record_issues(run, event.phase_id, issue_marks(run, event.phase_id, event.findings))
    if stop := over_minor_limit(run):
        return stop
    if event.decision is Decision.FAIL_POLICY:
        why = event.summary or ", ".join(f.issue_key for f in event.findings) or "policy"
        reason = f"Attempt {event.attempt} of phase {event.phase_id} broke the policy: {why}."
        return finish(run, RunStatus.DONE_FAILED_POLICY_VIOLATION, reason)
    if event.decision is Decision.RETRY:
        keys = ", ".join(f.issue_key for f in event.findings)
        note = f"Attempt {event.attempt}: the gate refused the change ({keys}): {event.summary}"
        return fail_attempt(run, event.phase_id, note, reason=waiting.reason)
    reasons = review_reasons(strategy_of(run).phase(event.phase_id), event.decision, event.findings)
    if waiting.auditor_patch or not reasons:
        return push(run, waiting)
    return start_review(run, waiting, reasons)


def _auditor_finished(run: RunState, event: AuditorFinished) -> Result | None:
    review = _expects(run, AwaitKind.REVIEW, event.phase_id, event.attempt)
    if not review and not _expects(run, AwaitKind.AUDITOR, event.phase_id, event.attempt):
        return None
    assert run.awaiting is not None
    waiting = run.awaiting
    run = add_tokens(run, event.phase_id, event.tokens_used)
    marks = issue_marks(run, event.phase_id, event.issues, reported=True)
    run = record_issues(run, event.phase_id, marks)
    if stop := over_minor_limit(run):
        return stop
    verdict = event.verdict.value
    if review:
        if event.verdict is AuditorVerdict.APPROVE:
            return push(run, waiting)
        note = f"Attempt {event.attempt}: the reviewer answered {verdict}: {event.summary}"
        return fail_attempt(run, event.phase_id, note)
    if event.verdict is AuditorVerdict.PATCH:
        waiting = Awaiting(
            AwaitKind.GATE, event.phase_id, event.attempt, auditor_patch=True, reason=waiting.reason
        )
        run = run.evolve(status=RunStatus.GATE, awaiting=waiting)
        return run, (EvaluateGate(event.phase_id, event.attempt, auditor_patch=True),)
    note = (
        f"Attempt {event.attempt}: the auditor answered {verdict} without a patch: {event.summary}"
    )
    return fail_attempt(run, event.phase_id, note, reason=waiting.reason)


def _pushed(run: RunState, event: Pushed) -> Result | None:
    if not _expects(run, AwaitKind.PUSH, event.phase_id, event.attempt):
        return None
    assert run.awaiting is not None
    strategy = strategy_of(run)
    phase = strategy.phase(event.phase_id)
    progress = run.phase_progress(event.phase_id)
    tier = run.tier_progress(phase.tier_id)
    tier = tier.evolve(ci_runs=tier.ci_runs + 1)
    if tier.ci_runs > strategy.tier(phase.tier_id).ci_run_cap:
        tier = tier.evolve(ci_cap_hit=True)
    progress = mark_unreviewed(progress, run.awaiting.unreviewed).evolve(
        last_commit=event.commit_sha, reruns_used=0, failed_checks=(), ci_runs=progress.ci_runs + 1
    )
    waiting = Awaiting(
        AwaitKind.CI,
        event.phase_id,
        event.attempt,
        sha=event.commit_sha,
        auditor_patch=run.awaiting.auditor_patch,
        reason=run.awaiting.reason,
    )
    run = (
        run.with_phase(progress)
        .with_tier(tier)
        .evolve(status=RunStatus.CI_RUNNING, head_sha=event.commit_sha, awaiting=waiting)
    )
    return run, (WaitForCI(event.commit_sha, event.phase_id, phase.ci_profile),)


def _push_rejected(run: RunState, event: PushRejected) -> Result | None:
    if not _expects(run, AwaitKind.PUSH, event.phase_id, event.attempt):
        return None
    reason = f"Pushing attempt {event.attempt} of phase {event.phase_id} failed: {event.reason}."
    return finish(run, RunStatus.DONE_FAILED_ENVIRONMENT, reason)


def _attempt_lost(run: RunState, event: AttemptLost) -> Result | None:
    waiting = run.awaiting
    kinds = (AwaitKind.GATE, AwaitKind.REVIEW, AwaitKind.PUSH)
    if (
        waiting is None
        or waiting.kind not in kinds
        or (waiting.phase_id, waiting.attempt) != (event.phase_id, event.attempt)
    ):
        return None
    note = f"Attempt {event.attempt}: {event.reason}; the attempt runs again."
    return fail_attempt(run, event.phase_id, note, reason=waiting.reason)


def _ci_finished(run: RunState, event: CIFinished) -> Result | None:
    waiting = run.awaiting
    if (
        waiting is None
        or not _expects(run, AwaitKind.CI, event.phase_id)
        or (waiting.sha, waiting.rerun) != (event.sha, event.rerun)
    ):
        return None
    strategy = strategy_of(run)
    phase = strategy.phase(event.phase_id)
    profile = strategy.ci.profile(phase.ci_profile)
    progress = run.phase_progress(event.phase_id)
    flaky = set(event.flaky_checks)
    if event.result is CIResult.GREEN:
        # A check that failed on this commit and passes on re-run is a flake.
        flaky |= set(progress.failed_checks)
    marks = [(f"ci:flaky:{check}", Severity.MINOR) for check in sorted(flaky)]
    no_ci = event.result is CIResult.NO_CI
    if no_ci and profile.on_no_ci is NoCIPolicy.PASS_WITH_MAJOR:
        marks.append(("ci:none", Severity.MAJOR))
    run = record_issues(run, event.phase_id, marks)
    if stop := over_minor_limit(run):
        return stop
    if no_ci and profile.on_no_ci is NoCIPolicy.FAIL:
        reason = f"No CI reported on {event.sha} for phase {event.phase_id}."
        return finish(run, RunStatus.DONE_FAILED_ENVIRONMENT, reason)
    if event.result in (CIResult.GREEN, CIResult.NO_CI):
        snapshot = Awaiting(AwaitKind.SNAPSHOT, event.phase_id, waiting.attempt, sha=event.sha)
        run = run.evolve(status=RunStatus.SNAPSHOT_CREATED, awaiting=snapshot)
        tag = snapshot_tag(run.run_id, event.phase_id)
        return run, (CreateSnapshot(event.phase_id, event.sha, tag),)
    progress = progress.evolve(failed_checks=tuple(event.failed_checks))
    run = run.with_phase(progress)
    if event.result is CIResult.RED and progress.reruns_used < profile.max_reruns:
        tier = run.tier_progress(phase.tier_id)
        if tier.ci_runs < strategy.tier(phase.tier_id).ci_run_cap:
            rerun = progress.reruns_used + 1
            progress = progress.evolve(reruns_used=rerun, ci_runs=progress.ci_runs + 1)
            run = run.with_phase(progress).with_tier(tier.evolve(ci_runs=tier.ci_runs + 1))
            run = run.evolve(awaiting=dataclasses.replace(waiting, rerun=rerun))
            checks = tuple(event.failed_checks)
            return run, (
                RerunCI(event.sha, event.phase_id, checks, rerun),
                WaitForCI(event.sha, event.phase_id, phase.ci_profile, rerun),
            )
        run = run.with_tier(tier.evolve(ci_cap_hit=True))
    named = ", ".join(event.failed_checks) or "no check named"
    what = "timed out" if event.result is CIResult.TIMED_OUT else f"was red ({named})"
    note = f"Attempt {waiting.attempt}: CI on {event.sha} {what}: {event.summary}"
    if event.output:
        # What the checks said is what the next attempt most needs; the whole is evidence.
        note += f"\n{event.output[:FEEDBACK_OUTPUT_CHARS]}"
    return fail_attempt(run, event.phase_id, note, reason=AuditReason.CI_FAILURES)


def _snapshot_created(run: RunState, event: SnapshotCreated) -> Result | None:
    if not _expects(run, AwaitKind.SNAPSHOT, event.phase_id):
        return None
    return phase_green(run, event.phase_id)


def _phase_timed_out(run: RunState, event: PhaseTimedOut) -> Result | None:
    waiting = run.awaiting
    kinds = (AwaitKind.BUILDER, AwaitKind.GATE, AwaitKind.REVIEW, AwaitKind.AUDITOR, AwaitKind.CI)
    if (
        waiting is None
        or waiting.kind not in kinds
        or (waiting.phase_id, waiting.attempt) != (event.phase_id, event.attempt)
    ):
        return None
    run = record_issues(run, event.phase_id, [("phase:timed_out", Severity.MINOR)])
    if stop := over_minor_limit(run):
        return stop
    note = f"Attempt {event.attempt}: ran out of its wall-clock budget."
    pushed = waiting.kind is AwaitKind.CI
    reason = AuditReason.CI_FAILURES if pushed else waiting.reason
    return fail_attempt(run, event.phase_id, note, reason=reason)


# -- any non-terminal state --------------------------------------------------------------------


def _cancelled(run: RunState, event: Cancelled) -> Result | None:
    reason = f"Cancelled by {event.by}" + (f": {event.reason}." if event.reason else ".")
    return finish(run, RunStatus.DONE_FAILED_CANCELLED, reason, cancel=True)


def _run_timed_out(run: RunState, event: RunTimedOut) -> Result | None:
    limit = f" ({run.strategy.budget.wall_seconds // 60} min)" if run.strategy else ""
    reason = f"The run's wall-clock budget{limit} ran out."
    return finish(run, RunStatus.DONE_FAILED_BUDGET_EXHAUSTED, reason, cancel=True)


def _environment_failed(run: RunState, event: EnvironmentFailed) -> Result | None:
    reason = f"The environment failed: {event.reason or 'no detail'}."
    return finish(run, RunStatus.DONE_FAILED_ENVIRONMENT, reason, cancel=True)


def _artefacts_written(run: RunState, event: ArtefactsWritten) -> Result | None:
    if not run.artefacts_pending:
        return None
    return run.evolve(artefacts_pending=False, head_sha=event.head_sha or run.head_sha), ()


TRANSITIONS: dict[RunStatus, dict[type[Any], Handler]] = {
    RunStatus.PLAN_BOOTSTRAP: {
        StrategyReady: _strategy_ready,
        StrategyRejected: _strategy_rejected,
    },
    RunStatus.RUN_CREATED: {BranchReady: _branch_ready},
    RunStatus.PHASE_QUEUEING: {PhasesQueued: _phases_queued},
    RunStatus.PHASE_EXECUTION: {
        BuilderFinished: _builder_finished,
        AuditorFinished: _auditor_finished,
        PhaseTimedOut: _phase_timed_out,
    },
    RunStatus.GATE: {
        GateEvaluated: _gate_evaluated,
        AuditorFinished: _auditor_finished,
        Pushed: _pushed,
        PushRejected: _push_rejected,
        AttemptLost: _attempt_lost,
        PhaseTimedOut: _phase_timed_out,
    },
    RunStatus.CI_RUNNING: {CIFinished: _ci_finished, PhaseTimedOut: _phase_timed_out},
    RunStatus.SNAPSHOT_CREATED: {SnapshotCreated: _snapshot_created},
}

# Accepted in every non-terminal state.
_ANY_STATE: dict[type[Any], Handler] = {
    Cancelled: _cancelled,
    RunTimedOut: _run_timed_out,
    EnvironmentFailed: _environment_failed,
    ArtefactsWritten: _artefacts_written,
}
