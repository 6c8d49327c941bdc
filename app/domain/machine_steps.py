"""The machine's steps: budgets, issue bookkeeping, starting and ending attempts and phases.

Each step takes a run (whose `seq` already counts the event being applied) and returns the
next run and the effects to carry out. Used only by `machine.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app.domain.effects import (
    BudgetsLeft,
    CancelInFlight,
    Effect,
    Finish,
    PushChange,
    Report,
    RunAuditor,
    RunBuilder,
    WriteArtefacts,
)
from app.domain.events import Finding
from app.domain.gate import REVIEW_RULES, Decision
from app.domain.issue_record import Severity
from app.domain.run_state import (
    AuditReason,
    Awaiting,
    AwaitKind,
    PhaseProgress,
    PhaseStatus,
    RunState,
    RunStatus,
    TierStatus,
    merge_marks,
)
from app.domain.strategy import PhaseStrategy, Strategy
from app.domain.taxonomy import RunScope, SafetyProfile

Result = tuple[RunState, tuple[Effect, ...]]
MAX_REVIEW_MARKS = 20  # per phase; each attempt may add its own findings


def strategy_of(run: RunState) -> Strategy:
    """The run's strategy (set from RUN_CREATED on)."""
    if run.strategy is None:
        raise ValueError("the run has no strategy yet")
    return run.strategy


# -- bookkeeping -------------------------------------------------------------------------------


def add_tokens(run: RunState, phase_id: str, tokens: int) -> RunState:
    """Count reported tokens on the phase, its tier and the run (even beyond a cap)."""
    tokens = max(0, tokens)
    strategy = strategy_of(run)
    progress = run.phase_progress(phase_id)
    tier = run.tier_progress(progress.tier_id)
    tier = tier.evolve(tokens=tier.tokens + tokens)
    if tier.tokens >= strategy.tier(tier.tier_id).token_cap:
        tier = tier.evolve(token_cap_hit=True)
    return (
        run.with_phase(progress.evolve(tokens=progress.tokens + tokens))
        .with_tier(tier)
        .evolve(tokens=run.tokens + tokens)
    )


def issue_marks(
    run: RunState, phase_id: str, findings: Iterable[Finding], *, reported: bool = False
) -> list[tuple[str, Severity]]:
    """The marks of findings: major for a high-risk issue category, and for any issue a builder
    or auditor reports (`reported`) from a phase of high-risk work; else as reported."""
    strategy = strategy_of(run)
    floor = reported and strategy.phase(phase_id).reported_issues_major
    return [
        (f.issue_key, Severity.MAJOR)
        if floor or f.category in strategy.major_issue_categories
        else (f.issue_key, f.severity)
        for f in findings
        if f.issue_key
    ]


def record_issues(run: RunState, phase_id: str, marks: Iterable[tuple[str, Severity]]) -> RunState:
    """Record issue keys on the phase and run (aging may raise a severity); update tier flags."""
    strategy = strategy_of(run)
    aged = [
        (key, Severity.MAJOR if strategy.effective_severity.get(key) is Severity.MAJOR else sev)
        for key, sev in marks
    ]
    if not aged:
        return run
    progress = run.phase_progress(phase_id)
    run = run.with_phase(progress.evolve(issues=merge_marks(progress.issues, aged)))
    run = run.evolve(issues=merge_marks(run.issues, aged))
    tier_strategy = strategy.tier(progress.tier_id)
    minors, majors = run.tier_issue_counts(progress.tier_id)
    tier = run.tier_progress(progress.tier_id)
    if minors > tier_strategy.minor_tolerance:
        tier = tier.evolve(minor_cap_hit=True)
    if tier_strategy.major_tolerance is not None and majors > tier_strategy.major_tolerance:
        tier = tier.evolve(major_cap_hit=True)
    return run.with_tier(tier)


def over_minor_limit(run: RunState) -> Result | None:
    """End the run if it holds more distinct minor issues than the run budget allows."""
    limit = strategy_of(run).budget.max_minor_issues
    if run.minor_count <= limit:
        return None
    reason = f"The run has {run.minor_count} distinct minor issues, more than its cap of {limit}."
    waiting = run.awaiting
    if waiting is not None and waiting.phase_id and _cleanup(run, waiting.phase_id):
        return fail_phase(run, waiting.phase_id, reason)  # only the cleanup stops
    return finish(run, RunStatus.DONE_FAILED_BUDGET_EXHAUSTED, reason)


# -- the end -----------------------------------------------------------------------------------


def finish(run: RunState, status: RunStatus, reason: str, *, cancel: bool = False) -> Result:
    """Enter a terminal state: close open phases and tiers, write artefacts, report, finish."""
    phases = tuple(
        p.evolve(status=PhaseStatus.FAILED, failure_reason=p.failure_reason or reason)
        if p.status is PhaseStatus.RUNNING
        else p.evolve(status=PhaseStatus.SKIPPED)
        if p.status is PhaseStatus.PENDING
        else p
        for p in run.phases
    )
    tiers = tuple(
        t.evolve(status=TierStatus.FAILED)
        if t.status is TierStatus.RUNNING
        else t.evolve(status=TierStatus.SKIPPED)
        if t.status is TierStatus.PENDING
        else t
        for t in run.tiers
    )
    run = run.evolve(
        status=status,
        phases=phases,
        tiers=tiers,
        awaiting=None,
        artefacts_pending=False,
        terminal_reason=reason,
    )
    branch = run.strategy.branch if run.strategy and run.strategy.commit_artefacts else None
    effects: tuple[Effect, ...] = (CancelInFlight(),) if cancel else ()
    return run, (
        *effects,
        WriteArtefacts(final=True, branch=branch),
        Report(status, run.seq),
        Finish(status, reason),
    )


def _end(run: RunState, effects: tuple[Effect, ...]) -> Result:
    """No phase left: success if every tier completed, else a human has to look."""
    unfinished = [t.tier_id for t in run.tiers if t.status is not TierStatus.COMPLETE]
    if not unfinished:
        reason = f"All {len(run.tiers)} tier(s) completed."
        if cleanup := failed_cleanups(run):
            reason += (
                f" The debt cleanup ({', '.join(cleanup)}) did not succeed: its issues stay in "
                "the backlog."
            )
        done, more = finish(run, RunStatus.DONE_SUCCESS, reason)
    else:
        reason = f"Tier(s) {', '.join(unfinished)} did not complete."
        done, more = finish(run, RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW, reason)
    return done, (*effects, *more)


def failed_cleanups(run: RunState) -> list[str]:
    """The debt-cleanup phases (inserted by the strategy) that failed."""
    failed = (p.phase_id for p in run.phases if p.status is PhaseStatus.FAILED)
    return [phase_id for phase_id in failed if _cleanup(run, phase_id)]


def _cleanup(run: RunState, phase_id: str) -> bool:
    return strategy_of(run).phase(phase_id).is_debt_cleanup


def _close_tier(run: RunState, tier_id: str) -> Result:
    """Complete the tier once every phase asked for in it is green (a failed debt cleanup does
    not hold it back); a safety-critical run stops at a tier that is not clean. Then go on."""
    failed = failed_cleanups(run)
    done = all(
        p.status is PhaseStatus.GREEN or p.phase_id in failed
        for p in run.phases
        if p.tier_id == tier_id
    )
    if not done:
        return next_phase(run, ())
    run = run.with_tier(run.tier_progress(tier_id).evolve(status=TierStatus.COMPLETE))
    critical = strategy_of(run).safety_profile is SafetyProfile.SAFETY_CRITICAL
    if critical and (problems := unclean_reasons(run, tier_id)):
        reason = f"Tier {tier_id} is not clean in a safety-critical run: {'; '.join(problems)}."
        return finish(run, RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW, reason)
    return next_phase(run, ())


def unclean_reasons(run: RunState, tier_id: str) -> list[str]:
    """Why a completed tier is `not_clean` (empty: clean); in a safety-critical tier every
    major issue beyond its tolerance (0 by default) counts."""
    tier = run.tier_progress(tier_id)
    caps = strategy_of(run).tier(tier_id)
    minors, majors = run.tier_issue_counts(tier_id)
    reasons = []
    if majors > (caps.major_tolerance or 0):
        reasons.append(f"{majors} major issue(s), tolerance {caps.major_tolerance or 0}")
    if tier.minor_cap_hit:
        reasons.append(f"{minors} minor issue(s), tolerance {caps.minor_tolerance}")
    if tier.token_cap_hit:
        reasons.append("the tier token cap was reached")
    if tier.ci_cap_hit:
        reasons.append("the tier CI run cap was reached")
    return reasons


# -- phases ------------------------------------------------------------------------------------


def next_phase(run: RunState, effects: tuple[Effect, ...]) -> Result:
    """Start the next pending phase, or end the run when none is left."""
    index = next((i for i, p in enumerate(run.phases) if p.status is PhaseStatus.PENDING), None)
    if index is None:
        return _end(run, effects)
    progress = run.phases[index].evolve(status=PhaseStatus.RUNNING)
    tier = run.tier_progress(progress.tier_id)
    if tier.status is TierStatus.PENDING:
        run = run.with_tier(tier.evolve(status=TierStatus.RUNNING))
    run = run.with_phase(progress).evolve(phase_index=index, status=RunStatus.PHASE_EXECUTION)
    run, started = _next_attempt(run, progress.phase_id, reason=None)
    if run.awaiting is not None and run.awaiting.phase_id == progress.phase_id:
        # Report once per phase start (a phase that failed at once reports through the next).
        started = (Report(RunStatus.PHASE_EXECUTION, run.seq), *started)
    return run, (*effects, *started)


def phase_green(run: RunState, phase_id: str) -> Result:
    """The phase's snapshot exists: close it (and its tier if it was the last), then go on."""
    progress = run.phase_progress(phase_id).evolve(status=PhaseStatus.GREEN)
    run = run.with_phase(progress).evolve(awaiting=None)
    return _close_tier(run, progress.tier_id)


def fail_phase(run: RunState, phase_id: str, reason: str) -> Result:
    """The phase failed: its tier fails and skips the rest; the run goes on if its scope allows.

    A debt-cleanup phase is the exception: it is recorded as failed, its issues stay in the
    backlog, and the tier and the run are decided by the phases that were asked for.
    """
    strategy = strategy_of(run)
    progress = run.phase_progress(phase_id)
    tier_id = progress.tier_id
    if _cleanup(run, phase_id):
        failed = progress.evolve(status=PhaseStatus.FAILED, failure_reason=reason)
        return _close_tier(run.with_phase(failed).evolve(awaiting=None), tier_id)
    phases = tuple(
        p.evolve(status=PhaseStatus.FAILED, failure_reason=reason)
        if p.phase_id == phase_id
        else p.evolve(status=PhaseStatus.SKIPPED)
        if p.tier_id == tier_id and p.status is PhaseStatus.PENDING
        else p
        for p in run.phases
    )
    run = run.evolve(phases=phases, awaiting=None)
    run = run.with_tier(run.tier_progress(tier_id).evolve(status=TierStatus.FAILED))
    if strategy.safety_profile is SafetyProfile.SAFETY_CRITICAL:
        why = f"Tier {tier_id} failed in a safety-critical run: {reason}"
        return finish(run, RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW, why)
    if strategy.run_scope is RunScope.SINGLE_TIER:
        why = f"Tier {tier_id} failed: {reason}"
        return finish(run, RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW, why)
    return next_phase(run, ())


# -- attempts ----------------------------------------------------------------------------------


def fail_attempt(
    run: RunState, phase_id: str, feedback: str, *, reason: AuditReason | None = None
) -> Result:
    """The attempt failed: retry the builder, escalate to the auditor, or fail the phase.

    Every attempt starts from the branch head: after a push that is the pushed commit, before
    one the head the failed attempt started from (the executor throws its change away).
    """
    progress = run.phase_progress(phase_id).with_feedback(feedback)
    run = run.with_phase(progress)
    return _next_attempt(run, phase_id, reason=reason)


def _next_attempt(run: RunState, phase_id: str, *, reason: AuditReason | None) -> Result:
    strategy = strategy_of(run)
    phase = strategy.phase(phase_id)
    progress = run.phase_progress(phase_id)
    escalated = progress.auditor_attempts > 0
    if not escalated and progress.builder_attempts < phase.max_builder_attempts:
        return _start(run, phase, reason=None)
    if strategy.auditor_backend and progress.auditor_attempts < phase.max_auditor_attempts:
        return _start(run, phase, reason=reason or AuditReason.BUILDER_FAILURES)
    who = "auditor" if escalated else "builder"
    why = f"phase {phase_id} failed after {progress.attempts} attempt(s) ({who} attempts used up)"
    return fail_phase(run, phase_id, why)


def _tokens_left(run: RunState, phase: PhaseStrategy) -> tuple[int, Result | None]:
    """Tokens the next attempt may spend, or the step that ends things because a cap is reached."""
    strategy = strategy_of(run)
    run_left = strategy.budget.token_cap - run.tokens
    if run_left <= 0:
        reason = f"The run reached its token cap of {strategy.budget.token_cap}."
        if phase.is_debt_cleanup:  # the work asked for is done: only the cleanup stops
            return 0, fail_phase(run, phase.phase_id, reason)
        return 0, finish(run, RunStatus.DONE_FAILED_BUDGET_EXHAUSTED, reason)
    tier = run.tier_progress(phase.tier_id)
    tier_cap = strategy.tier(phase.tier_id).token_cap
    tier_left = tier_cap - tier.tokens
    if tier_left <= 0:
        run = run.with_tier(tier.evolve(token_cap_hit=True))
        return 0, fail_phase(run, phase.phase_id, f"tier {phase.tier_id} reached its token cap")
    phase_left = phase.incident_token_cap - run.phase_progress(phase.phase_id).tokens
    if phase_left <= 0:
        return 0, fail_phase(run, phase.phase_id, "the phase reached its incident token cap")
    return min(run_left, tier_left, phase_left), None


def _budgets(run: RunState, phase: PhaseStrategy, tokens: int) -> BudgetsLeft:
    progress = run.phase_progress(phase.phase_id)
    auditor = phase.max_auditor_attempts if strategy_of(run).auditor_backend else 0
    return BudgetsLeft(
        tokens=tokens,
        builder_attempts=max(0, phase.max_builder_attempts - progress.builder_attempts),
        auditor_attempts=max(0, auditor - progress.auditor_attempts),
        seconds=phase.wall_seconds,
    )


def _start(run: RunState, phase: PhaseStrategy, *, reason: AuditReason | None) -> Result:
    """Start a builder attempt (reason None) or an auditor escalation, if the budget allows."""
    tokens, stop = _tokens_left(run, phase)
    if stop is not None:
        return stop
    progress = run.phase_progress(phase.phase_id)
    attempt = progress.attempts + 1
    if reason is None:
        progress = progress.evolve(builder_attempts=progress.builder_attempts + 1)
        waiting = Awaiting(AwaitKind.BUILDER, phase.phase_id, attempt)
    else:
        progress = progress.evolve(auditor_attempts=progress.auditor_attempts + 1)
        waiting = Awaiting(AwaitKind.AUDITOR, phase.phase_id, attempt, reason=reason)
    run = run.with_phase(progress).evolve(status=RunStatus.PHASE_EXECUTION, awaiting=waiting)
    budgets = _budgets(run, phase, tokens)
    work: Effect
    if reason is None:
        work = RunBuilder(phase.phase_id, attempt, budgets, progress.feedback)
    else:
        work = RunAuditor(
            phase.phase_id, attempt, phase.auditor_profile, reason, budgets, progress.feedback
        )
    return run, (work,)


def review_reasons(
    phase: PhaseStrategy, decision: Decision, findings: Iterable[Finding]
) -> list[str]:
    """Why a gated change needs a review before it is pushed (empty: push it)."""
    reasons = [phase.review_reason] if phase.review_reason else []
    if decision is Decision.REVIEW:
        for finding in findings:
            if finding.category in REVIEW_RULES:
                where = finding.path or "the change"
                where += f":{finding.line}" if finding.path and finding.line else ""
                reasons.append(f"the gate found {finding.category} in {where}")
    return reasons


def start_review(run: RunState, waiting: Awaiting, reasons: Sequence[str]) -> Result:
    """Have the auditor review the gated change before it is pushed; with no auditor, push it
    and mark the phase for a person's review (the run is then not eligible for promotion)."""
    strategy = strategy_of(run)
    phase_id, attempt = waiting.phase_id, waiting.attempt
    phase = strategy.phase(phase_id)
    progress = run.phase_progress(phase_id)
    if not strategy.auditor_backend:
        return push(run, waiting, unreviewed=tuple(reasons))
    tokens, stop = _tokens_left(run, phase)
    if stop is not None:
        return stop
    run = run.evolve(
        status=RunStatus.GATE,
        awaiting=Awaiting(AwaitKind.REVIEW, phase_id, attempt, reason=AuditReason.PRE_PUSH_REVIEW),
    )
    # The reviewer is told why the change needs it, after what earlier attempts were told.
    feedback = (*progress.feedback, *(f"Review needed: {reason}" for reason in reasons))
    budgets = _budgets(run, phase, tokens)
    reason = AuditReason.PRE_PUSH_REVIEW
    return run, (RunAuditor(phase_id, attempt, phase.auditor_profile, reason, budgets, feedback),)


def push(run: RunState, waiting: Awaiting, *, unreviewed: tuple[str, ...] = ()) -> Result:
    """Push the gated change of the awaited attempt to the integration branch; `unreviewed`:
    why it needed a review it does not get (marked on the phase when the push lands)."""
    branch = strategy_of(run).branch
    pushing = Awaiting(
        AwaitKind.PUSH,
        waiting.phase_id,
        waiting.attempt,
        auditor_patch=waiting.auditor_patch,
        reason=None if waiting.kind is AwaitKind.REVIEW else waiting.reason,
        unreviewed=unreviewed,
    )
    run = run.evolve(status=RunStatus.GATE, awaiting=pushing)
    return run, (PushChange(branch, waiting.phase_id, waiting.attempt, run.head_sha),)


def mark_unreviewed(progress: PhaseProgress, reasons: Sequence[str]) -> PhaseProgress:
    """The phase marked for a person's review of what it pushed, for `reasons`."""
    if not reasons:
        return progress
    marks = tuple(dict.fromkeys((*progress.needs_review, *reasons)))[-MAX_REVIEW_MARKS:]
    return progress.evolve(needs_review=marks)
