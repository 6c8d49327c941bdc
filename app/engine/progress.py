"""From one machine transition to the rows of the progress tables (pure: no I/O).

The driver calls `project` for every event the machine accepted, with the states before and after
and the effects asked for, and writes the delta with the new state (app/store/progress.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.domain.effects import Effect, RunAuditor, RunBuilder
from app.domain.events import (
    AttemptLost,
    AuditorFinished,
    AuditorVerdict,
    BuilderFinished,
    BuilderOutcome,
    CIFinished,
    CIResult,
    Event,
    Finding,
    GateEvaluated,
    PhaseTimedOut,
    Pushed,
    PushRejected,
    SnapshotCreated,
)
from app.domain.gate import Decision
from app.domain.run_state import AuditReason, AwaitKind, PhaseStatus, RunState
from app.store import progress as rows
from app.store.progress import AttemptRow, AttemptUpdate, IssueRow, PhaseRow, ProgressDelta, TierRow

MAX_SUMMARY = 500
_SOURCES = ("gate", "ci", "probe", "builder", "auditor")


def project(
    before: RunState, after: RunState, event: Event, effects: Sequence[Effect], at: datetime
) -> ProgressDelta:
    """The progress rows an accepted event changes."""
    target = _target(before, event)
    updates: list[AttemptUpdate] = []
    if target is not None:
        updates.append(_attempt_update(before, after, event, target, at))
    close = None
    if after.status.is_terminal and not before.status.is_terminal:
        close = (rows.CANCELLED, at)
    return ProgressDelta(
        tiers=tier_rows(before, after),
        phases=phase_rows(before, after),
        started=tuple(_started(after, effect, at) for effect in effects if _starts_attempt(effect)),
        attempts=tuple(updates),
        issues=issue_rows(before, after, event),
        close_running=close,
    )


def tier_rows(before: RunState, after: RunState) -> tuple[TierRow, ...]:
    """Rows of the tiers whose progress changed (all of them once the strategy is set)."""
    strategy = after.strategy
    if strategy is None:
        return ()
    old = {t.tier_id: t for t in before.tiers} if before.strategy is not None else {}
    changed = []
    for position, progress in enumerate(after.tiers):
        if old.get(progress.tier_id) == progress and before.issues == after.issues:
            continue
        tier = strategy.tier(progress.tier_id)
        minor, major = after.tier_issue_counts(progress.tier_id)
        hits = (
            ("tokens", progress.token_cap_hit),
            ("ci_runs", progress.ci_cap_hit),
            ("minor_issues", progress.minor_cap_hit),
            ("major_issues", progress.major_cap_hit),
        )
        changed.append(
            TierRow(
                run_id=after.run_id,
                tier_id=progress.tier_id,
                position=position,
                title=tier.title,
                status=progress.status.value,
                tokens=progress.tokens,
                token_cap=tier.token_cap,
                ci_runs=progress.ci_runs,
                ci_run_cap=tier.ci_run_cap,
                minor_issues=minor,
                major_issues=major,
                clean=progress.clean,
                cap_hits=tuple(name for name, hit in hits if hit),
            )
        )
    return tuple(changed)


def phase_rows(before: RunState, after: RunState) -> tuple[PhaseRow, ...]:
    """Rows of the phases whose progress changed (all of them once the strategy is set)."""
    strategy = after.strategy
    if strategy is None:
        return ()
    old = {p.phase_id: p for p in before.phases} if before.strategy is not None else {}
    changed = []
    for position, progress in enumerate(after.phases):
        if old.get(progress.phase_id) == progress:
            continue
        phase = strategy.phase(progress.phase_id)
        changed.append(
            PhaseRow(
                run_id=after.run_id,
                phase_id=progress.phase_id,
                tier_id=progress.tier_id,
                position=position,
                title=phase.title,
                task_category=phase.task_category.value,
                complexity=phase.complexity.value,
                builder_mode=phase.builder_mode.value,
                ci_profile=phase.ci_profile.value,
                status=progress.status.value,
                builder_attempts=progress.builder_attempts,
                auditor_attempts=progress.auditor_attempts,
                max_builder_attempts=phase.max_builder_attempts,
                max_auditor_attempts=phase.max_auditor_attempts,
                tokens=progress.tokens,
                token_cap=phase.incident_token_cap,
                ci_runs=progress.ci_runs,
                last_commit=progress.last_commit,
                failure_reason=progress.failure_reason,
            )
        )
    return tuple(changed)


def issue_rows(before: RunState, after: RunState, event: Event) -> tuple[IssueRow, ...]:
    """Rows of issue keys that are new in the run or got worse."""
    seen = set(before.issues)
    fresh = [(key, severity) for key, severity in after.issues if (key, severity) not in seen]
    if not fresh or after.strategy is None:
        return ()
    findings = {f.issue_key: f for f in _findings(event)}
    phase_id = getattr(event, "phase_id", "") or _first_phase(after, fresh[0][0])
    tier_id = after.strategy.phase(phase_id).tier_id if phase_id else ""
    commit = event.sha if isinstance(event, CIFinished) else None
    out = []
    for key, severity in fresh:
        finding = findings.get(key)
        prefix = key.split(":", 1)[0]
        out.append(
            IssueRow(
                run_id=after.run_id,
                issue_key=key,
                severity=severity.value,
                category=finding.category if finding else (prefix or "issue"),
                phase_id=phase_id,
                tier_id=tier_id,
                source=_source(event, prefix),
                path=finding.path if finding else None,
                line=finding.line if finding else None,
                commit_sha=commit,
                message=(finding.message if finding else "")[:MAX_SUMMARY],
            )
        )
    return tuple(out)


def _findings(event: Event) -> tuple[Finding, ...]:
    if isinstance(event, BuilderFinished | AuditorFinished):
        return event.issues
    if isinstance(event, GateEvaluated):
        return event.findings
    return ()


def _source(event: Event, prefix: str) -> str:
    if isinstance(event, GateEvaluated):
        return "gate"
    if isinstance(event, CIFinished):
        return "ci"
    if isinstance(event, AuditorFinished):
        return "auditor"
    return prefix if prefix in _SOURCES else "builder"


def _first_phase(state: RunState, key: str) -> str:
    for phase in state.phases:
        if any(k == key for k, _ in phase.issues):
            return phase.phase_id
    return ""


def _starts_attempt(effect: Effect) -> bool:
    if isinstance(effect, RunAuditor):
        return effect.reason is not AuditReason.PRE_PUSH_REVIEW  # a review is part of its attempt
    return isinstance(effect, RunBuilder)


def _started(run: RunState, effect: Effect, at: datetime) -> AttemptRow:
    assert isinstance(effect, RunBuilder | RunAuditor)
    assert run.strategy is not None, "no attempt starts before the strategy is frozen"
    auditor = isinstance(effect, RunAuditor)
    profile = run.strategy.auditor_backend if auditor else run.strategy.builder_for(effect.phase_id)
    return AttemptRow(
        run_id=run.run_id,
        phase_id=effect.phase_id,
        attempt=effect.attempt,
        actor="auditor" if auditor else "builder",
        started_at=at,
        finished_at=None,
        outcome=rows.RUNNING,
        tokens=0,
        commit_sha=None,
        ci_result=None,
        summary="",
        profile=profile or "",
    )


def _target(before: RunState, event: Event) -> tuple[str, int] | None:
    """The attempt an event is about: named by the event, or the one CI/snapshot waited for."""
    if isinstance(
        event,
        BuilderFinished
        | GateEvaluated
        | Pushed
        | PushRejected
        | AttemptLost
        | AuditorFinished
        | PhaseTimedOut,
    ):
        return event.phase_id, event.attempt
    if isinstance(event, CIFinished | SnapshotCreated) and before.awaiting is not None:
        return event.phase_id, before.awaiting.attempt
    return None


def _attempt_update(
    before: RunState, after: RunState, event: Event, target: tuple[str, int], at: datetime
) -> AttemptUpdate:
    phase_id, attempt = target
    tokens = event.tokens_used if isinstance(event, BuilderFinished | AuditorFinished) else 0
    commit = event.commit_sha if isinstance(event, Pushed) else None
    ci = event.result.value if isinstance(event, CIFinished) else None
    summary = _summary(event)
    waiting = after.awaiting
    continuing = (
        not after.status.is_terminal
        and waiting is not None
        and (waiting.phase_id, waiting.attempt) == target
    )
    outcome = None
    went_green = after.phase_progress(phase_id).status is PhaseStatus.GREEN
    if went_green and before.phase_progress(phase_id).status is not PhaseStatus.GREEN:
        outcome = rows.GREEN
    elif not continuing:
        outcome = _failure(event, before)
    review = (
        isinstance(event, AuditorFinished)
        and before.awaiting is not None
        and before.awaiting.kind is AwaitKind.REVIEW
    )
    reviewer = after.strategy.auditor_backend if review and after.strategy else None
    return AttemptUpdate(
        phase_id=phase_id,
        attempt=attempt,
        add_tokens=tokens,
        add_review_tokens=tokens if review else 0,
        review_profile=reviewer,
        outcome=outcome,
        finished_at=at if outcome is not None else None,
        commit_sha=commit,
        ci_result=ci,
        summary=summary[:MAX_SUMMARY] if summary else None,
    )


def _failure(event: Event, before: RunState) -> str:
    """How an attempt that does not go on ended, judged by the event that ended it."""
    if isinstance(event, BuilderFinished) and event.outcome is not BuilderOutcome.OK:
        return rows.BUILDER_FAILED
    if isinstance(event, PhaseTimedOut | AttemptLost):
        return rows.BUILDER_FAILED
    if isinstance(event, GateEvaluated) and event.decision is not Decision.PASS:
        return rows.GATE_FAILED
    if isinstance(event, AuditorFinished) and event.verdict is not AuditorVerdict.APPROVE:
        review = before.awaiting is not None and before.awaiting.kind is AwaitKind.REVIEW
        return rows.REJECTED if review else rows.BUILDER_FAILED
    if isinstance(event, PushRejected):
        return rows.PUSH_FAILED
    if isinstance(event, CIFinished) and event.result is not CIResult.GREEN:
        return rows.CI_RED
    return rows.CANCELLED  # the run ended while the attempt was on its way


def _summary(event: Event) -> str:
    if isinstance(event, BuilderFinished):
        return event.failure_reason or event.summary
    if isinstance(event, GateEvaluated | AuditorFinished):
        return event.summary
    if isinstance(event, PushRejected | AttemptLost):
        return event.reason
    if isinstance(event, PhaseTimedOut):
        return "the attempt ran out of wall-clock time"
    if isinstance(event, CIFinished):
        failed = ", ".join(event.failed_checks)
        return event.summary or (f"failed: {failed}" if failed else f"CI {event.result.value}")
    return ""
