"""A run's progress as rows: tiers, phases, attempts and issues, kept beside the run's state.

The machine's state (the `runs.state` JSON) is what drives a run; these tables are its projection
for people and queries across runs (the API, the dashboard, the budget report). The driver writes
them in the same transaction as the state they come from, so they are never ahead of or behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.store.db import as_utc, conflict_insert, session_factory
from app.store.models import RunAttemptRow, RunIssueRow, RunPhaseRow, RunRow, RunTierRow

# Attempt outcomes (AttemptRow.outcome): where an attempt ended up.
RUNNING = "running"  # in flight (builder, gate, push or CI)
GREEN = "green"  # pushed and CI passed: the phase is done
BUILDER_FAILED = "builder_failed"  # the builder or auditor gave up, timed out or changed nothing
GATE_FAILED = "gate_failed"  # the gate refused the change
CI_RED = "ci_red"  # pushed, CI failed
PUSH_FAILED = "push_failed"  # the write path refused or the branch moved
REJECTED = "rejected"  # the auditor's pre-push review rejected the change
CANCELLED = "cancelled"  # the run ended while it was in flight
OUTCOMES = (
    RUNNING,
    GREEN,
    BUILDER_FAILED,
    GATE_FAILED,
    CI_RED,
    PUSH_FAILED,
    REJECTED,
    CANCELLED,
)


@dataclass(frozen=True)
class TierRow:
    """One tier of a run."""

    run_id: str
    tier_id: str
    position: int
    title: str
    status: str  # pending | running | complete | failed | skipped
    tokens: int
    token_cap: int
    ci_runs: int
    ci_run_cap: int
    minor_issues: int
    major_issues: int
    clean: bool
    cap_hits: tuple[str, ...]  # of "tokens", "ci_runs", "minor_issues", "major_issues"


@dataclass(frozen=True)
class PhaseRow:
    """One phase of a run, with its slice and spend."""

    run_id: str
    phase_id: str
    tier_id: str
    position: int
    title: str
    task_category: str
    complexity: str
    builder_mode: str
    ci_profile: str
    status: str  # pending | running | green | failed | skipped
    builder_attempts: int
    auditor_attempts: int
    max_builder_attempts: int
    max_auditor_attempts: int
    tokens: int
    token_cap: int
    ci_runs: int
    last_commit: str | None
    failure_reason: str


@dataclass(frozen=True)
class AttemptRow:
    """One builder or auditor attempt at a phase, from its start to its verdict."""

    run_id: str
    phase_id: str
    attempt: int  # 1, 2, ... across the phase's builder and auditor attempts
    actor: str  # "builder" | "auditor"
    started_at: datetime
    finished_at: datetime | None  # None while RUNNING
    outcome: str  # one of OUTCOMES
    tokens: int
    commit_sha: str | None
    ci_result: str | None  # green | red | no_ci | timed_out, once CI judged the commit
    summary: str  # one line: what the attempt did, or why it failed
    profile: str = ""  # the operator profile that made it ("" if recorded before profiles were)
    review_profile: str | None = None  # the auditor profile of its pre-push review, if any
    review_tokens: int = 0  # what that review spent (part of `tokens`)


@dataclass(frozen=True)
class IssueRow:
    """One issue of a run (one row per issue_key), with its worst severity and evidence."""

    run_id: str
    issue_key: str
    severity: str  # minor | major
    category: str
    phase_id: str  # the first phase that reported it
    tier_id: str
    source: str  # gate | ci | probe | builder | auditor
    path: str | None
    line: int | None
    commit_sha: str | None  # the commit the evidence refers to, when there is one
    message: str


@dataclass(frozen=True)
class SliceSpend:
    """Spend over phases of one task_category:complexity slice (the budget report)."""

    task_category: str
    complexity: str
    phases: int
    green: int
    failed: int
    tokens: int
    builder_attempts: int
    auditor_called: int  # phases where the auditor was called in (escalation)
    auditor_helped: int  # ... and that then went green


# ProfileSpend.role of a pre-push review (attempts themselves are "builder" or "auditor").
REVIEWER = "reviewer"


@dataclass(frozen=True)
class ProfileSpend:
    """Spend of one operator profile in one role (the budget report): `builder` attempts,
    `auditor` escalations, or `reviewer` pre-push reviews."""

    profile: str
    role: str
    attempts: int
    runs: int
    tokens: int


@dataclass(frozen=True)
class AttemptUpdate:
    """Fields of one attempt that an event changed (None: unchanged)."""

    phase_id: str
    attempt: int
    add_tokens: int = 0
    outcome: str | None = None
    finished_at: datetime | None = None
    commit_sha: str | None = None
    ci_result: str | None = None
    summary: str | None = None
    add_review_tokens: int = 0  # tokens of its pre-push review (added to `tokens` as well)
    review_profile: str | None = None


@dataclass(frozen=True)
class ProgressDelta:
    """What one transition changes in the progress tables; written with the state it comes from.

    `close_running` ends every attempt still running with that outcome (the run ended).
    """

    tiers: tuple[TierRow, ...] = ()
    phases: tuple[PhaseRow, ...] = ()
    started: tuple[AttemptRow, ...] = ()
    attempts: tuple[AttemptUpdate, ...] = ()
    issues: tuple[IssueRow, ...] = ()
    close_running: tuple[str, datetime] | None = None

    @property
    def empty(self) -> bool:
        """True when there is nothing to write."""
        return not (
            self.tiers
            or self.phases
            or self.started
            or self.attempts
            or self.issues
            or self.close_running
        )


def _insert(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> Any:
    """A multi-row INSERT that can take ON CONFLICT clauses, for either backend."""
    return conflict_insert(session.get_bind().dialect.name, model).values(rows)


def _upsert(session: AsyncSession, model: Any, rows: list[dict[str, Any]], keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column."""
    statement = _insert(session, model, rows)
    updates = {c: statement.excluded[c] for c in rows[0] if c not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=updates)


async def write_progress(session: AsyncSession, run_id: str, delta: ProgressDelta) -> None:
    """Apply a delta inside the caller's transaction (the one saving the run's state)."""
    if delta.tiers:
        rows = [{**_row_dict(t), "cap_hits": ",".join(t.cap_hits)} for t in delta.tiers]
        await session.execute(_upsert(session, RunTierRow, rows, ["run_id", "tier_id"]))
    if delta.phases:
        rows = [_row_dict(p) for p in delta.phases]
        await session.execute(_upsert(session, RunPhaseRow, rows, ["run_id", "phase_id"]))
    if delta.started:
        rows = [_row_dict(a) for a in delta.started]
        # A repeated start (a worker carrying out saved effects again) keeps the first one.
        await session.execute(_insert(session, RunAttemptRow, rows).on_conflict_do_nothing())
    for change in delta.attempts:
        values: dict[str, Any] = {}
        if change.add_tokens:
            values["tokens"] = RunAttemptRow.tokens + change.add_tokens
        if change.add_review_tokens:
            values["review_tokens"] = RunAttemptRow.review_tokens + change.add_review_tokens
        for name in ("outcome", "finished_at", "commit_sha", "ci_result", "summary"):
            if (value := getattr(change, name)) is not None:
                values[name] = value
        if change.review_profile is not None:
            values["review_profile"] = change.review_profile
        if values:
            await session.execute(
                update(RunAttemptRow)
                .where(
                    RunAttemptRow.run_id == run_id,
                    RunAttemptRow.phase_id == change.phase_id,
                    RunAttemptRow.attempt == change.attempt,
                )
                .values(**values)
            )
    if delta.issues:
        rows = [_row_dict(i) for i in delta.issues]
        insert = _insert(session, RunIssueRow, rows)
        # Keep where an issue was first seen; its severity only ever gets worse.
        worst = case((insert.excluded.severity == "major", "major"), else_=RunIssueRow.severity)
        statement = insert.on_conflict_do_update(
            index_elements=["run_id", "issue_key"], set_={"severity": worst}
        )
        await session.execute(statement)
    if delta.close_running is not None:
        outcome, moment = delta.close_running
        await session.execute(
            update(RunAttemptRow)
            .where(RunAttemptRow.run_id == run_id, RunAttemptRow.outcome == RUNNING)
            .values(outcome=outcome, finished_at=moment)
        )


def _row_dict(row: Any) -> dict[str, Any]:
    return dict(row.__dict__)


class ProgressStore:
    """Reads of the progress tables for the API, the dashboard and the reports."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def tiers(self, run_id: str) -> list[TierRow]:
        """The run's tiers in plan order."""
        statement = (
            select(RunTierRow).where(RunTierRow.run_id == run_id).order_by(RunTierRow.position)
        )
        async with self._sessions() as session:
            return [
                TierRow(
                    **{
                        **_columns(row, RunTierRow),
                        "cap_hits": tuple(h for h in row.cap_hits.split(",") if h),
                    }
                )
                for row in await session.scalars(statement)
            ]

    async def phases(self, run_id: str) -> list[PhaseRow]:
        """The run's phases in plan order."""
        statement = (
            select(RunPhaseRow).where(RunPhaseRow.run_id == run_id).order_by(RunPhaseRow.position)
        )
        async with self._sessions() as session:
            return [PhaseRow(**_columns(r, RunPhaseRow)) for r in await session.scalars(statement)]

    async def attempts(self, run_id: str) -> list[AttemptRow]:
        """The run's attempts, by phase (plan order) then attempt number."""
        statement = (
            select(RunAttemptRow)
            .join(
                RunPhaseRow,
                (RunPhaseRow.run_id == RunAttemptRow.run_id)
                & (RunPhaseRow.phase_id == RunAttemptRow.phase_id),
                isouter=True,
            )
            .where(RunAttemptRow.run_id == run_id)
            .order_by(RunPhaseRow.position, RunAttemptRow.attempt)
        )
        async with self._sessions() as session:
            rows = []
            for row in await session.scalars(statement):
                values = _columns(row, RunAttemptRow)
                values["started_at"] = as_utc(row.started_at)
                if row.finished_at is not None:
                    values["finished_at"] = as_utc(row.finished_at)
                rows.append(AttemptRow(**values))
            return rows

    async def issues(self, run_id: str) -> list[IssueRow]:
        """The run's issues, major first, then by key."""
        statement = (
            select(RunIssueRow)
            .where(RunIssueRow.run_id == run_id)
            .order_by(case((RunIssueRow.severity == "major", 0), else_=1), RunIssueRow.issue_key)
        )
        async with self._sessions() as session:
            return [IssueRow(**_columns(r, RunIssueRow)) for r in await session.scalars(statement)]

    async def spend_by_slice(
        self, repository: str | None = None, since: datetime | None = None
    ) -> list[SliceSpend]:
        """Spend per task_category:complexity over the phases of matching runs, biggest first."""
        phase = RunPhaseRow
        escalated = phase.auditor_attempts > 0
        statement = (
            select(
                phase.task_category,
                phase.complexity,
                func.count(),
                func.sum(case((phase.status == "green", 1), else_=0)),
                func.sum(case((phase.status == "failed", 1), else_=0)),
                func.coalesce(func.sum(phase.tokens), 0),
                func.coalesce(func.sum(phase.builder_attempts), 0),
                func.sum(case((escalated, 1), else_=0)),
                func.sum(case((escalated & (phase.status == "green"), 1), else_=0)),
            )
            .join(RunRow, RunRow.id == phase.run_id)
            .group_by(phase.task_category, phase.complexity)
        )
        if repository is not None:
            statement = statement.where(RunRow.repository == repository)
        if since is not None:
            statement = statement.where(RunRow.created_at >= since)
        async with self._sessions() as session:
            result = [
                SliceSpend(str(r[0]), str(r[1]), *(int(v or 0) for v in r[2:]))
                for r in await session.execute(statement)
            ]
        return sorted(result, key=lambda s: (-s.tokens, s.task_category, s.complexity))

    async def spend_by_profile(
        self, repository: str | None = None, since: datetime | None = None
    ) -> list[ProfileSpend]:
        """Tokens per operator profile and role over the attempts of matching runs, biggest
        first; a pre-push review's tokens count for the reviewer, not the attempt's maker."""
        attempt = RunAttemptRow
        made = select(
            attempt.profile,
            attempt.actor,
            func.count(),
            func.count(func.distinct(attempt.run_id)),
            func.coalesce(func.sum(attempt.tokens - attempt.review_tokens), 0),
        ).group_by(attempt.profile, attempt.actor)
        reviewed = (
            select(
                attempt.review_profile,
                func.count(),
                func.count(func.distinct(attempt.run_id)),
                func.coalesce(func.sum(attempt.review_tokens), 0),
            )
            .where(attempt.review_profile.is_not(None))
            .group_by(attempt.review_profile)
        )
        statements = []
        for statement in (made, reviewed):
            statement = statement.join(RunRow, RunRow.id == attempt.run_id)
            if repository is not None:
                statement = statement.where(RunRow.repository == repository)
            if since is not None:
                statement = statement.where(RunRow.created_at >= since)
            statements.append(statement)
        async with self._sessions() as session:
            spend = [
                ProfileSpend(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4] or 0))
                for r in await session.execute(statements[0])
            ]
            spend += [
                ProfileSpend(str(r[0]), REVIEWER, int(r[1]), int(r[2]), int(r[3] or 0))
                for r in await session.execute(statements[1])
            ]
        return sorted(spend, key=lambda s: (-s.tokens, s.profile, s.role))


def _columns(row: Any, model: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in model.__table__.columns}
