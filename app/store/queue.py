"""The leased per-run job queue: a worker leases a whole run and drains its pending jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import as_utc, session_factory
from app.store.jobs import JobKind as JobKind  # re-exported: part of the queue API
from app.store.jobs import JobStatus as JobStatus
from app.store.jobs import NewJob, complete_jobs, insert_job
from app.store.models import JobRow, RunRow
from app.store.runs import (
    LeaseLost,
    RunNotFound,
    RunRecord,
    utc_input,
    utcnow,
)

DEFAULT_LEASE = timedelta(seconds=60)
CANCELLED = "Cancelled"  # the event type that stops a run's long effect at once


@dataclass(frozen=True)
class Job:
    """One queued event for a run's machine; `payload` is JSON text, opaque to the queue."""

    id: int
    run_id: str
    kind: JobKind
    payload: str
    event_type: str
    dedupe_key: str | None
    status: JobStatus
    created_at: datetime
    available_at: datetime
    done_at: datetime | None

    @classmethod
    def from_row(cls, row: JobRow) -> Job:
        """The one place a jobs row becomes a value."""
        return cls(
            id=row.id,
            run_id=row.run_id,
            kind=JobKind(row.kind),
            payload=row.payload,
            event_type=row.event_type,
            dedupe_key=row.dedupe_key,
            status=JobStatus(row.status),
            created_at=as_utc(row.created_at),
            available_at=as_utc(row.available_at),
            done_at=as_utc(row.done_at) if row.done_at is not None else None,
        )


@dataclass(frozen=True)
class Claim:
    """A leased run: its snapshot at claim time and its pending jobs, oldest first."""

    run_id: str
    owner: str
    lease_until: datetime
    run: RunRecord
    jobs: tuple[Job, ...]


class JobQueue(Protocol):
    """What workers need from the queue (the driver is typed on it; RunQueue implements it)."""

    async def enqueue(
        self,
        run_id: str,
        job: NewJob,
        available_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Queue a job for a run; False when its dedupe key was already used for that run."""
        ...

    async def cancel_pending(self, run_id: str) -> bool:
        """True when a Cancelled event waits among the run's pending jobs."""
        ...

    async def claim(
        self, owner: str, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> Claim | None:
        """Lease the longest-waiting run that has due jobs or a due timer and no live lease."""
        ...

    async def complete(
        self, claim: Claim, job_ids: Sequence[int], now: datetime | None = None
    ) -> None:
        """Mark jobs done; LeaseLost unless the claim still holds the run."""
        ...

    async def renew(
        self, claim: Claim, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> Claim:
        """Extend the lease from `now`; LeaseLost if it already lapsed or moved on."""
        ...

    async def release(self, claim: Claim, wake_at: datetime | None = None) -> bool:
        """Free the run and set its timer to `wake_at` (None: no timer); False if not held."""
        ...

    async def pending(self, run_id: str) -> list[Job]:
        """The run's pending jobs in id order (due or not)."""
        ...

    async def lease_owners(self, prefix: str, now: datetime | None = None) -> list[str]:
        """The owners of live leases whose name starts with `prefix` (e.g. this host's)."""
        ...

    async def expire_leases(self, owners: Sequence[str], now: datetime | None = None) -> int:
        """End the leases of owners known to be dead: their runs are claimable at once."""
        ...


class RunQueue:
    """JobQueue over the `jobs` table, leasing rows of `runs`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    async def enqueue(
        self,
        run_id: str,
        job: NewJob,
        available_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Queue a job for a run; False when its dedupe key was already used for that run."""
        moment = utc_input(now) if now is not None else utcnow()
        statement = insert_job(
            self._engine.dialect.name,
            run_id,
            job,
            moment,
            utc_input(available_at) if available_at is not None else None,
        )
        try:
            async with self._engine.begin() as conn:
                inserted = (await conn.execute(statement)).scalar_one_or_none()
        except IntegrityError as exc:
            # Only a missing run can fail this insert (the conflict on the key is ignored).
            raise RunNotFound(run_id) from exc
        return inserted is not None

    async def claim(
        self, owner: str, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> Claim | None:
        """Lease the longest-waiting run that has due jobs or a due timer and no live lease."""
        moment = utc_input(now) if now is not None else utcnow()
        lease_free = RunRow.lease_until.is_(None) | (RunRow.lease_until < moment)
        due_jobs = _due_jobs(moment)
        # Waiting since: the earlier of the oldest due job and a due timer.
        first_job = (
            select(func.min(JobRow.available_at))
            .where(JobRow.run_id == RunRow.id, *due_jobs)
            .scalar_subquery()
        )
        due_timer = case((RunRow.wake_at <= moment, RunRow.wake_at), else_=None)
        waiting_since = case(
            (first_job.is_(None), due_timer),
            (due_timer.is_(None), first_job),
            (due_timer < first_job, due_timer),
            else_=first_job,
        )
        with_jobs = RunRow.id.in_(select(JobRow.run_id).where(*due_jobs))
        candidate = (
            select(RunRow.id)
            .where(lease_free, with_jobs | (RunRow.wake_at <= moment))
            .order_by(waiting_since, RunRow.id)
            .limit(1)
        )
        if self._engine.dialect.name == "postgresql":
            # Concurrent claimers skip a row another claim transaction has locked.
            candidate = candidate.with_for_update(skip_locked=True, of=RunRow)
        lease_until = moment + lease
        statement = (
            update(RunRow)
            # The lease test again in the UPDATE itself: it is the guard, the subquery a search.
            .where(RunRow.id == candidate.scalar_subquery(), lease_free)
            # The timer moves to the lease's end: a worker that dies holding the run (with no
            # job left pending) still has it claimed again once the lease expires.
            .values(lease_owner=owner, lease_until=lease_until, wake_at=lease_until)
            .returning(RunRow)
        )
        async with self._sessions.begin() as session:
            row = (await session.execute(statement)).scalar_one_or_none()
            if row is None:
                return None
            run = RunRecord.from_row(row)
            jobs = await session.scalars(
                select(JobRow).where(JobRow.run_id == run.id, *due_jobs).order_by(JobRow.id)
            )
            return Claim(
                run_id=run.id,
                owner=owner,
                lease_until=as_utc(lease_until),
                run=run,
                jobs=tuple(Job.from_row(job) for job in jobs),
            )

    async def complete(
        self, claim: Claim, job_ids: Sequence[int], now: datetime | None = None
    ) -> None:
        """Mark jobs done; LeaseLost unless the claim still holds the run."""
        moment = utc_input(now) if now is not None else utcnow()
        async with self._sessions.begin() as session:
            # Lock the run row first (a no-op write) so the lease cannot lapse and be
            # re-claimed between our check and our update on PostgreSQL.
            touched = await session.execute(
                update(RunRow)
                .where(RunRow.id == claim.run_id, *_held_by(claim.owner, moment))
                .values(lease_owner=claim.owner)
            )
            if _rowcount(touched) != 1:
                raise LeaseLost(f"run {claim.run_id} is not leased by {claim.owner}")
            if job_ids:
                await session.execute(complete_jobs(claim.run_id, job_ids, moment))

    async def renew(
        self, claim: Claim, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> Claim:
        """Extend the lease from `now`; LeaseLost if it already lapsed or moved on."""
        moment = utc_input(now) if now is not None else utcnow()
        lease_until = moment + lease
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(RunRow.id == claim.run_id, *_held_by(claim.owner, moment))
                .values(lease_until=lease_until, wake_at=lease_until)
            )
            if _rowcount(result) != 1:
                raise LeaseLost(f"run {claim.run_id} is not leased by {claim.owner}")
        return Claim(claim.run_id, claim.owner, lease_until, claim.run, claim.jobs)

    async def release(self, claim: Claim, wake_at: datetime | None = None) -> bool:
        """Free the run and set its timer to `wake_at` (None: no timer); False if not held."""
        timer = utc_input(wake_at) if wake_at is not None else None
        async with self._sessions.begin() as session:
            # Only the current owner releases: after expiry another worker may hold the run.
            result = await session.execute(
                update(RunRow)
                .where(RunRow.id == claim.run_id, RunRow.lease_owner == claim.owner)
                .values(lease_owner=None, lease_until=None, wake_at=timer)
            )
            return _rowcount(result) == 1

    async def cancel_pending(self, run_id: str) -> bool:
        """True when a Cancelled event waits among the run's pending jobs."""
        statement = (
            select(JobRow.id)
            .where(
                JobRow.run_id == run_id,
                JobRow.status == JobStatus.PENDING.value,
                JobRow.event_type == CANCELLED,
            )
            .limit(1)
        )
        async with self._sessions() as session:
            return (await session.scalar(statement)) is not None

    async def lease_owners(self, prefix: str, now: datetime | None = None) -> list[str]:
        """The owners of live leases whose name starts with `prefix` (e.g. this host's)."""
        moment = utc_input(now) if now is not None else utcnow()
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = (
            select(RunRow.lease_owner)
            .where(RunRow.lease_owner.like(f"{escaped}%", escape="\\"))
            .where(RunRow.lease_until >= moment)
            .distinct()
        )
        async with self._sessions() as session:
            return [owner for owner in await session.scalars(statement) if owner is not None]

    async def expire_leases(self, owners: Sequence[str], now: datetime | None = None) -> int:
        """End the leases of owners known to be dead: their runs are claimable at once."""
        if not owners:
            return 0
        moment = utc_input(now) if now is not None else utcnow()
        past = moment - timedelta(seconds=1)
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(RunRow.lease_owner.in_(list(owners)), RunRow.lease_until >= moment)
                .values(lease_until=past, wake_at=past)
            )
            return _rowcount(result)

    async def pending(self, run_id: str) -> list[Job]:
        """The run's pending jobs in id order (due or not)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(JobRow)
                .where(JobRow.run_id == run_id, JobRow.status == JobStatus.PENDING.value)
                .order_by(JobRow.id)
            )
            return [Job.from_row(row) for row in rows]


def _due_jobs(moment: datetime) -> tuple[ColumnElement[bool], ...]:
    return (JobRow.status == JobStatus.PENDING.value, JobRow.available_at <= moment)


def _held_by(owner: str, moment: datetime) -> tuple[ColumnElement[bool], ...]:
    return (RunRow.lease_owner == owner, RunRow.lease_until >= moment)


def _rowcount(result: Any) -> int:
    count: int = result.rowcount
    return count
