"""What the REST API and the dashboard show, as JSON-ready dicts read from the stores.

`ReadModel(engine)` is the one read side both use (the dashboard renders the same dicts the API
returns). Its methods are stable names:

* `list_runs(filters, page)`: run summaries newest first, with a cursor for the next page;
* `run_detail(run_id)`: one run with its tiers, phases, attempts, issues and budget use;
* `run_events(run_id, after, limit)`: the run's log after a sequence number;
* `repo_backlog(repository)`: a repository's open issues with their effective severities;
* `budget_report(repository, since)`: budget aborts, spend per task_category:complexity slice
  and per operator profile, and whether escalating to the auditor helped.

Times are ISO 8601 strings in UTC. Nothing here writes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.backlog import BacklogEntry, effective_severity
from app.domain.issue_record import Severity
from app.domain.report import promotion, tier_summaries
from app.domain.run_state import PhaseStatus, RunState, RunStatus
from app.engine.envelope import Envelope
from app.store.backlogs import BacklogStore
from app.store.db import session_factory
from app.store.models import RunRow
from app.store.progress import (
    AttemptRow,
    IssueRow,
    PhaseRow,
    ProfileSpend,
    ProgressStore,
    SliceSpend,
    TierRow,
)
from app.store.runs import RunRecord, RunStore

Json = dict[str, Any]

# Run ids are made by app/engine/run_intake.run_id_for: `owner-repo-<issue>-<run>`.
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")

ACTIVE = "active"
TERMINAL = "terminal"
STATUS_FILTERS = (*(s.value for s in RunStatus), ACTIVE, TERMINAL)
MAX_PAGE = 100
DEFAULT_PAGE = 50
MAX_EVENTS_PAGE = 500
DEFAULT_EVENTS_PAGE = 100
# The budget report lists at most this many aborted runs (the most recent).
MAX_BUDGET_ABORTS = 50
BUDGET_EXHAUSTED = RunStatus.DONE_FAILED_BUDGET_EXHAUSTED.value


class BadCursor(ValueError):
    """A pagination cursor this server did not hand out."""


@dataclass(frozen=True)
class RunFilters:
    """Which runs to list; `status` is a RunStatus value, `active` or `terminal`."""

    repository: str | None = None
    status: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class Page:
    """A page of a list: at most `limit` items after `cursor` (None: the first page)."""

    limit: int = DEFAULT_PAGE
    cursor: str | None = None


def encode_cursor(created_at: datetime, run_id: str) -> str:
    """An opaque cursor pointing after the run created at `created_at` with id `run_id`."""
    text = json.dumps([created_at.astimezone(UTC).isoformat(), run_id])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of `encode_cursor`; BadCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
        if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id) or moment.tzinfo is None:
            raise BadCursor("not a cursor from this API")
        return moment.astimezone(UTC), run_id
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, OverflowError) as exc:
        # A date at the edge of the calendar overflows when moved to UTC.
        raise BadCursor("not a cursor from this API") from exc


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _envelope(record: RunRecord) -> Envelope | None:
    # A state this version cannot read must not take a whole listing down with it.
    try:
        return Envelope.loads(record.state)
    except (ValueError, KeyError, TypeError):
        return None


def run_summary(record: RunRecord) -> Json:
    """One run as the run list shows it: status, profiles, debt, failure reason, spend."""
    envelope = _envelope(record)
    state = envelope.state if envelope is not None else None
    strategy = state.strategy if state is not None else None
    phases = state.phases if state is not None else ()
    summary: Json = {
        "id": record.id,
        "repository": record.repository,
        "issue_number": record.issue_number,
        "issue_title": envelope.memo.facts.issue_title if envelope is not None else "",
        "run_number": record.run_number,
        "branch": record.branch,
        "status": record.status,
        "terminal": record.terminal,
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
        "finished_at": iso(record.finished_at),
        "failure_reason": _failure_reason(record, state),
        "tokens": state.tokens if state is not None else 0,
        "token_cap": strategy.budget.token_cap if strategy is not None else None,
        "ci_runs": sum(p.ci_runs for p in phases),
        "phases": {
            "total": len(phases),
            "green": sum(1 for p in phases if p.status is PhaseStatus.GREEN),
            "failed": sum(1 for p in phases if p.status is PhaseStatus.FAILED),
        },
        "run_scope": strategy.run_scope.value if strategy is not None else None,
        "safety_profile": strategy.safety_profile.value if strategy is not None else None,
        "builder_profile": strategy.builder_profile if strategy is not None else None,
        "auditor": strategy.auditor_backend if strategy is not None else None,
        "debt": {
            "cleanup_phase": strategy is not None
            and any(p.debt_issue_keys for p in strategy.phases),
            "aged_issue_keys": 0
            if strategy is None
            else sum(1 for s in strategy.effective_severity.values() if s is Severity.MAJOR),
        },
        "pull_number": envelope.memo.github.pull_number if envelope is not None else None,
        "check_run_id": envelope.memo.github.check_run_id if envelope is not None else None,
        "promotion": _promotion(state) if record.terminal else None,
        "needs_human_review": [
            {"phase_id": phase_id, "reason": reason}
            for phase_id, reason in (state.needs_review if state is not None else ())
        ],
    }
    return summary


def _failure_reason(record: RunRecord, state: RunState | None) -> str | None:
    if not record.terminal or record.status == RunStatus.DONE_SUCCESS.value:
        return None
    return state.terminal_reason if state is not None else ""


def _promotion(state: RunState | None) -> Json | None:
    return None if state is None else promotion(state).to_json()


def _budget(used: float, cap: float | None) -> Json:
    return {"used": used, "cap": cap, "exhausted": cap is not None and used >= cap}


class ReadModel:
    """The read side over the stores; construct one per request or share it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)
        self._runs = RunStore(engine)
        self._progress = ProgressStore(engine)
        self._backlogs = BacklogStore(engine)

    async def list_runs(self, filters: RunFilters, page: Page) -> Json:
        """`{"runs": [...], "next_cursor": str | None}`, newest first; BadCursor on a bad one."""
        statement = select(RunRow)
        if filters.repository is not None:
            statement = statement.where(RunRow.repository == filters.repository)
        if filters.status == ACTIVE:
            statement = statement.where(RunRow.terminal.is_(False))
        elif filters.status == TERMINAL:
            statement = statement.where(RunRow.terminal.is_(True))
        elif filters.status is not None:
            statement = statement.where(RunRow.status == filters.status)
        if filters.since is not None:
            statement = statement.where(RunRow.created_at >= filters.since.astimezone(UTC))
        if page.cursor is not None:
            # Keyset pagination: stable while runs are being created, unlike offsets.
            created, run_id = decode_cursor(page.cursor)
            statement = statement.where(
                or_(
                    RunRow.created_at < created,
                    and_(RunRow.created_at == created, RunRow.id < run_id),
                )
            )
        statement = statement.order_by(RunRow.created_at.desc(), RunRow.id.desc()).limit(
            page.limit + 1
        )
        async with self._sessions() as session:
            records = [RunRecord.from_row(row) for row in await session.scalars(statement)]
        more = len(records) > page.limit
        records = records[: page.limit]
        last = records[-1] if more else None
        return {
            "runs": [run_summary(record) for record in records],
            "next_cursor": encode_cursor(last.created_at, last.id) if last else None,
        }

    async def run_detail(self, run_id: str, now: datetime | None = None) -> Json | None:
        """One run with tiers, phases, attempts, issues and budgets; None if unknown."""
        record = await self._runs.get(run_id)
        if record is None:
            return None
        envelope = _envelope(record)
        state = envelope.state if envelope is not None else None
        tiers = await self._progress.tiers(run_id)
        phases = await self._progress.phases(run_id)
        attempts = await self._progress.attempts(run_id)
        issues = await self._progress.issues(run_id)
        started = record.created_at
        if envelope is not None and envelope.memo.clocks.started_at > 0:
            started = datetime.fromtimestamp(envelope.memo.clocks.started_at, UTC)
        until = record.finished_at or now or datetime.now(UTC)
        strategy = state.strategy if state is not None else None
        budgets: Json = {
            "run": {
                "tokens": _budget(
                    state.tokens if state else 0, strategy.budget.token_cap if strategy else None
                ),
                "wall_seconds": _budget(
                    max(0, round((until - started).total_seconds())),
                    strategy.budget.wall_seconds if strategy else None,
                ),
                "phases": _budget(len(phases), strategy.budget.max_phases if strategy else None),
                "minor_issues": _budget(
                    state.minor_count if state else 0,
                    strategy.budget.max_minor_issues if strategy else None,
                ),
            },
            "tiers": [
                {
                    "tier_id": t.tier_id,
                    "tokens": _budget(t.tokens, t.token_cap),
                    "ci_runs": _budget(t.ci_runs, t.ci_run_cap),
                    "cap_hits": list(t.cap_hits),
                }
                for t in tiers
            ],
        }
        return {
            "run": run_summary(record),
            "head_sha": state.head_sha if state else None,
            "awaiting": state.awaiting.kind.value if state and state.awaiting else None,
            "started_at": iso(started),
            "tiers": [tier_json(t) for t in tiers],
            "tier_summaries": [s.to_json() for s in tier_summaries(state)] if state else [],
            "phases": [phase_json(p) for p in phases],
            "attempts": [attempt_json(a) for a in attempts],
            "issues": [issue_json(i) for i in issues],
            "budgets": budgets,
        }

    async def run_events(
        self, run_id: str, after: int = 0, limit: int = DEFAULT_EVENTS_PAGE
    ) -> Json | None:
        """The log entries with seq > `after` and `next_after` (None: no more); None if unknown."""
        if await self._runs.get(run_id) is None:
            return None
        records = await self._runs.events(run_id, after_seq=after, limit=limit + 1)
        more = len(records) > limit
        records = records[:limit]
        return {
            "run_id": run_id,
            "events": [
                {
                    "seq": r.seq,
                    "kind": r.kind.value,
                    "name": r.name,
                    "payload": _payload(r.payload),
                    "created_at": iso(r.created_at),
                }
                for r in records
            ],
            "next_after": records[-1].seq if more else None,
        }

    async def repo_backlog(self, repository: str) -> Json:
        """The repository's open issues, effective major first; empty if it has no backlog.

        Effective severity uses the repository's own aging thresholds, which the last run kept
        with the backlog (the defaults before any run).
        """
        backlog = await self._backlogs.get(repository)
        rules = backlog.aging

        def order(entry: BacklogEntry) -> tuple[int, int, int, str]:
            major = effective_severity(entry, rules) is Severity.MAJOR
            return (0 if major else 1, -entry.age_in_runs, -entry.occurrence_count, entry.issue_key)

        entries = sorted(backlog.entries, key=order)
        return {
            "repository": repository,
            "last_run": backlog.last_run,
            "aging": {
                "minor_to_major_after_runs": rules.minor_to_major_after_runs,
                "minor_to_major_after_tiers": rules.minor_to_major_after_tiers,
            },
            "counts": {
                "total": len(entries),
                "effective_major": sum(
                    1 for e in entries if effective_severity(e, rules) is Severity.MAJOR
                ),
            },
            "entries": [
                {**e.to_json(), "effective_severity": effective_severity(e, rules).value}
                for e in entries
            ],
            "top": {
                by: [e.issue_key for e in backlog.top(by, 5)]
                for by in ("runs", "tiers", "occurrences")
            },
        }

    async def budget_report(
        self, repository: str | None = None, since: datetime | None = None
    ) -> Json:
        """Budget aborts, spend per slice and per profile, auditor help.

        `profiles` is the spend of each operator profile in each role: `builder` attempts,
        `auditor` escalations and `reviewer` pre-push reviews. An abort names the tier and phase
        the run stopped in (`tier_id`, `phase_id`), the tier and the task_category:complexity
        slice that spent the most tokens, and whether a phase escalated to the auditor went
        green afterwards (`auditor_helped`).
        """
        slices = await self._progress.spend_by_slice(repository=repository, since=since)
        profiles = await self._progress.spend_by_profile(repository=repository, since=since)
        aborts = await self._runs.list_runs(
            repository=repository, status=BUDGET_EXHAUSTED, since=since, limit=MAX_BUDGET_ABORTS
        )
        by_status = await self._count_by_status(repository, since)
        return {
            "repository": repository,
            "since": iso(since),
            "runs": {"total": sum(by_status.values()), "by_status": by_status},
            "budget_aborts": [await self._abort(record) for record in aborts],
            "slices": [slice_json(s) for s in slices],
            "profiles": [profile_json(p) for p in profiles],
            "auditor": {
                "phases_escalated": sum(s.auditor_called for s in slices),
                "phases_helped": sum(s.auditor_helped for s in slices),
            },
        }

    async def _count_by_status(self, repository: str | None, since: datetime | None) -> Json:
        statement = select(RunRow.status, func.count()).group_by(RunRow.status)
        if repository is not None:
            statement = statement.where(RunRow.repository == repository)
        if since is not None:
            statement = statement.where(RunRow.created_at >= since.astimezone(UTC))
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return {str(status): int(count) for status, count in sorted(rows)}

    async def _abort(self, record: RunRecord) -> Json:
        envelope = _envelope(record)
        state = envelope.state if envelope is not None else None
        phases = await self._progress.phases(record.id)
        current = state.current_phase if state is not None else None
        escalated = [p for p in phases if p.auditor_attempts > 0]
        spent = _slices(phases)
        per_tier: dict[str, int] = {}
        for phase in phases:
            per_tier[phase.tier_id] = per_tier.get(phase.tier_id, 0) + phase.tokens
        return {
            "run_id": record.id,
            "repository": record.repository,
            "issue_number": record.issue_number,
            "finished_at": iso(record.finished_at),
            "reason": state.terminal_reason if state is not None else "",
            "tokens": state.tokens if state is not None else 0,
            "token_cap": state.strategy.budget.token_cap if state and state.strategy else None,
            "tier_id": current.tier_id if current is not None else None,
            "phase_id": current.phase_id if current is not None else None,
            "top_tier": max(per_tier, key=lambda k: (per_tier[k], k)) if per_tier else None,
            "top_slice": max(spent, key=lambda k: (spent[k], k)) if spent else None,
            "slice_tokens": spent,
            "auditor_called": bool(escalated),
            "auditor_helped": any(p.status == PhaseStatus.GREEN.value for p in escalated),
        }


def _slices(phases: Sequence[PhaseRow]) -> dict[str, int]:
    spent: dict[str, int] = {}
    for phase in phases:
        key = f"{phase.task_category}:{phase.complexity}"
        spent[key] = spent.get(key, 0) + phase.tokens
    return spent


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def tier_json(tier: TierRow) -> Json:
    """A tier row as JSON."""
    return {
        "tier_id": tier.tier_id,
        "position": tier.position,
        "title": tier.title,
        "status": tier.status,
        "tokens": tier.tokens,
        "token_cap": tier.token_cap,
        "ci_runs": tier.ci_runs,
        "ci_run_cap": tier.ci_run_cap,
        "minor_issues": tier.minor_issues,
        "major_issues": tier.major_issues,
        "clean": tier.clean,
        "cap_hits": list(tier.cap_hits),
    }


def phase_json(phase: PhaseRow) -> Json:
    """A phase row as JSON (with its `task_category:complexity` slice)."""
    data = {k: v for k, v in phase.__dict__.items() if k != "run_id"}
    data["slice"] = f"{phase.task_category}:{phase.complexity}"
    return data


def attempt_json(attempt: AttemptRow) -> Json:
    """An attempt row as JSON."""
    data = {k: v for k, v in attempt.__dict__.items() if k != "run_id"}
    data["started_at"] = iso(attempt.started_at)
    data["finished_at"] = iso(attempt.finished_at)
    return data


def issue_json(issue: IssueRow) -> Json:
    """An issue row as JSON."""
    return {k: v for k, v in issue.__dict__.items() if k != "run_id"}


def profile_json(spend: ProfileSpend) -> Json:
    """A profile's spend in one role as JSON."""
    return dict(spend.__dict__)


def slice_json(spend: SliceSpend) -> Json:
    """A slice's spend as JSON, named `task_category:complexity`."""
    return {"slice": f"{spend.task_category}:{spend.complexity}", **spend.__dict__}
