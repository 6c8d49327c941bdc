"""Run storage: runs (state, version, lease, timer) and each run's append-only event log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.store.db import as_utc, session_factory
from app.store.jobs import NewJob, complete_jobs, insert_job
from app.store.models import RunEventRow, RunRow
from app.store.progress import ProgressDelta, write_progress

DEFAULT_EVENTS_LIMIT = 500
DEFAULT_RUNS_LIMIT = 50


class StoreError(Exception):
    """Base of the run store's refusals."""


class RunNotFound(StoreError, LookupError):
    """No run has this id."""


class ActiveRunExists(StoreError):
    """The issue already has a non-terminal run; a second one is refused."""

    def __init__(self, repository: str, issue_number: int, run_id: str | None) -> None:
        super().__init__(
            f"{repository}#{issue_number} already has an active run ({run_id or 'unknown'})"
        )
        self.repository = repository
        self.issue_number = issue_number
        self.run_id = run_id


class DuplicateRun(StoreError):
    """The run id, or the run number for this issue, is already taken."""


class VersionConflict(StoreError):
    """The run changed since it was read: the save is based on a stale version."""


class LeaseLost(StoreError):
    """The caller does not hold the run's lease (never had it, or it expired and moved on)."""


def utc_input(moment: datetime) -> datetime:
    """Validate a caller's time: it must be timezone-aware (SQLite would drop the zone)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: pass timezone-aware UTC times")
    return moment.astimezone(UTC)


def _optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


def utcnow() -> datetime:
    """Current time in UTC: the default when a caller passes no `now`."""
    return datetime.now(UTC)


class EventKind(StrEnum):
    """What an entry of a run's log records."""

    EVENT = "event"
    EFFECT = "effect"
    TRANSITION = "transition"
    NOTE = "note"


@dataclass(frozen=True)
class NewRun:
    """What the caller supplies to create a run."""

    id: str
    installation_id: int
    repository: str
    issue_number: int
    run_number: int
    branch: str
    status: str
    state: str


@dataclass(frozen=True)
class RunRecord:
    """A stored run: `state` is the machine's RunState JSON, opaque to the store."""

    id: str
    installation_id: int
    repository: str
    issue_number: int
    run_number: int
    branch: str
    status: str
    state: str
    terminal: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    lease_owner: str | None
    lease_until: datetime | None
    wake_at: datetime | None
    version: int

    @classmethod
    def from_row(cls, row: RunRow) -> RunRecord:
        """The one place a runs row becomes a value."""
        return cls(
            id=row.id,
            installation_id=row.installation_id,
            repository=row.repository,
            issue_number=row.issue_number,
            run_number=row.run_number,
            branch=row.branch,
            status=row.status,
            state=row.state,
            terminal=bool(row.terminal),
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            finished_at=_optional_utc(row.finished_at),
            lease_owner=row.lease_owner,
            lease_until=_optional_utc(row.lease_until),
            wake_at=_optional_utc(row.wake_at),
            version=row.version,
        )


@dataclass(frozen=True)
class NewEvent:
    """One entry to append to a run's log; `payload` is JSON text."""

    kind: EventKind
    name: str
    payload: str = "{}"


@dataclass(frozen=True)
class EventRecord:
    """A stored log entry; `seq` counts 1, 2, ... within its run."""

    id: int
    run_id: str
    seq: int
    kind: EventKind
    name: str
    payload: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: RunEventRow) -> EventRecord:
        """The one place a run_events row becomes a value."""
        return cls(
            id=row.id,
            run_id=row.run_id,
            seq=row.seq,
            kind=EventKind(row.kind),
            name=row.name,
            payload=row.payload,
            created_at=as_utc(row.created_at),
        )


class RunRepository(Protocol):
    """What the engine needs from run storage (the driver is typed on it; RunStore has it)."""

    async def create_run(self, new: NewRun, now: datetime | None = None) -> RunRecord:
        """Store a new run; ActiveRunExists if the issue already has a non-terminal one."""
        ...

    async def get(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        ...

    async def save(
        self,
        run_id: str,
        status: str,
        state: str,
        terminal: bool,
        expected_version: int,
        owner: str | None,
        now: datetime | None = None,
        events: Sequence[NewEvent] = (),
        progress: ProgressDelta | None = None,
        jobs: Sequence[NewJob] = (),
        done_jobs: Sequence[int] = (),
    ) -> RunRecord:
        """Write the state (with log entries, progress rows, new and finished jobs) if the
        version and lease allow."""
        ...

    async def append_events(
        self, run_id: str, items: Sequence[NewEvent], now: datetime | None = None
    ) -> list[EventRecord]:
        """Append entries to the run's log, numbering them after the last one."""
        ...

    async def events(
        self, run_id: str, after_seq: int = 0, limit: int = DEFAULT_EVENTS_LIMIT
    ) -> list[EventRecord]:
        """Log entries with seq > after_seq, in order."""
        ...

    async def list_runs(
        self,
        repository: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_RUNS_LIMIT,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs newest first, filtered by repository, status and creation time (>= since)."""
        ...

    async def active_run(self, repository: str, issue_number: int) -> RunRecord | None:
        """The issue's non-terminal run, if any."""
        ...

    async def next_run_number(self, repository: str, issue_number: int) -> int:
        """1 + the highest run number used for the issue (1 for its first run)."""
        ...


class RunStore:
    """RunRepository over the `runs` and `run_events` tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def create_run(self, new: NewRun, now: datetime | None = None) -> RunRecord:
        """Store a new run; ActiveRunExists if the issue already has a non-terminal one."""
        moment = utc_input(now) if now is not None else utcnow()
        row = RunRow(
            id=new.id,
            installation_id=new.installation_id,
            repository=new.repository,
            issue_number=new.issue_number,
            run_number=new.run_number,
            branch=new.branch,
            status=new.status,
            state=new.state,
            terminal=False,
            created_at=moment,
            updated_at=moment,
            version=1,
        )
        try:
            # Insert first, let the unique indexes decide: the check and the write are one
            # statement, so two creators racing (even in two processes) cannot both succeed.
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                record = RunRecord.from_row(row)
        except IntegrityError as exc:
            async with self._sessions() as session:
                active = await _active(session, new.repository, new.issue_number)
            if active is not None and active.id != new.id:
                raise ActiveRunExists(new.repository, new.issue_number, active.id) from exc
            raise DuplicateRun(
                f"run {new.id} or {new.repository}#{new.issue_number} run {new.run_number}"
                " already exists"
            ) from exc
        return record

    async def get(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        async with self._sessions() as session:
            row = await session.get(RunRow, run_id)
            return RunRecord.from_row(row) if row is not None else None

    async def save(
        self,
        run_id: str,
        status: str,
        state: str,
        terminal: bool,
        expected_version: int,
        owner: str | None,
        now: datetime | None = None,
        events: Sequence[NewEvent] = (),
        progress: ProgressDelta | None = None,
        jobs: Sequence[NewJob] = (),
        done_jobs: Sequence[int] = (),
    ) -> RunRecord:
        """Write the machine's new state if `expected_version` is current and `owner` leases it.

        `owner=None` writes only a run nobody holds (lease free or expired). Log entries,
        progress rows, jobs to queue (de-duplicated by key) and jobs to mark done go in the same
        transaction: all of it is written or none, under the lease the state was written under.
        """
        moment = utc_input(now) if now is not None else utcnow()
        if owner is None:
            lease_ok = RunRow.lease_until.is_(None) | (RunRow.lease_until < moment)
        else:
            lease_ok = (RunRow.lease_owner == owner) & (RunRow.lease_until >= moment)
        values: dict[str, object] = {
            "status": status,
            "state": state,
            "terminal": terminal,
            "updated_at": moment,
            "version": RunRow.version + 1,
        }
        if terminal:
            values["finished_at"] = func.coalesce(RunRow.finished_at, moment)
        async with self._sessions.begin() as session:
            statement = (
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.version == expected_version, lease_ok)
                .values(**values)
                .returning(RunRow)
            )
            row = (await session.execute(statement)).scalar_one_or_none()
            if row is not None:
                record = RunRecord.from_row(row)
                if events:
                    await _append(session, run_id, events, moment)
                if progress is not None and not progress.empty:
                    await write_progress(session, run_id, progress)
                dialect = session.get_bind().dialect.name
                for job in jobs:
                    await session.execute(insert_job(dialect, run_id, job, moment))
                if done_jobs:
                    await session.execute(complete_jobs(run_id, done_jobs, moment))
                return record
            current = await session.get(RunRow, run_id)
        if current is None:
            raise RunNotFound(run_id)
        if current.version != expected_version:
            raise VersionConflict(
                f"run {run_id} is at version {current.version}, not {expected_version}"
            )
        raise LeaseLost(f"run {run_id} is not leased by {owner or 'nobody'}")

    async def append_events(
        self, run_id: str, items: Sequence[NewEvent], now: datetime | None = None
    ) -> list[EventRecord]:
        """Append entries to the run's log, numbering them after the last one."""
        moment = utc_input(now) if now is not None else utcnow()
        try:
            async with self._sessions.begin() as session:
                if session.get_bind().dialect.name == "postgresql":
                    # Serialises appenders of one run so their seq numbers cannot collide.
                    lock = select(RunRow.id).where(RunRow.id == run_id).with_for_update()
                    if (await session.execute(lock)).scalar_one_or_none() is None:
                        raise RunNotFound(run_id)
                return await _append(session, run_id, items, moment)
        except IntegrityError as exc:
            # On SQLite the foreign key is what tells us the run does not exist.
            raise RunNotFound(run_id) from exc

    async def events(
        self, run_id: str, after_seq: int = 0, limit: int = DEFAULT_EVENTS_LIMIT
    ) -> list[EventRecord]:
        """Log entries with seq > after_seq, in order."""
        async with self._sessions() as session:
            statement = (
                select(RunEventRow)
                .where(RunEventRow.run_id == run_id, RunEventRow.seq > after_seq)
                .order_by(RunEventRow.seq)
                .limit(limit)
            )
            return [EventRecord.from_row(row) for row in (await session.scalars(statement))]

    async def list_runs(
        self,
        repository: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_RUNS_LIMIT,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs newest first, filtered by repository, status and creation time (>= since)."""
        statement = select(RunRow)
        if repository is not None:
            statement = statement.where(RunRow.repository == repository)
        if status is not None:
            statement = statement.where(RunRow.status == status)
        if since is not None:
            statement = statement.where(RunRow.created_at >= utc_input(since))
        statement = (
            statement.order_by(RunRow.created_at.desc(), RunRow.id.desc())
            .limit(limit)
            .offset(offset)
        )
        async with self._sessions() as session:
            return [RunRecord.from_row(row) for row in (await session.scalars(statement))]

    async def active_run(self, repository: str, issue_number: int) -> RunRecord | None:
        """The issue's non-terminal run, if any."""
        async with self._sessions() as session:
            return await _active(session, repository, issue_number)

    async def next_run_number(self, repository: str, issue_number: int) -> int:
        """1 + the highest run number used for the issue (1 for its first run)."""
        async with self._sessions() as session:
            statement = select(func.coalesce(func.max(RunRow.run_number), 0)).where(
                RunRow.repository == repository, RunRow.issue_number == issue_number
            )
            return int((await session.execute(statement)).scalar_one()) + 1

    async def issue_runs(
        self, repository: str, issue_number: int, limit: int = DEFAULT_RUNS_LIMIT
    ) -> list[RunRecord]:
        """The issue's runs, newest first."""
        statement = (
            select(RunRow)
            .where(RunRow.repository == repository, RunRow.issue_number == issue_number)
            .order_by(RunRow.run_number.desc())
            .limit(limit)
        )
        async with self._sessions() as session:
            return [RunRecord.from_row(row) for row in await session.scalars(statement)]


async def _append(
    session: AsyncSession, run_id: str, items: Sequence[NewEvent], moment: datetime
) -> list[EventRecord]:
    """Append log entries inside the caller's transaction, which serialises appenders of the run
    (the runs row is locked by an UPDATE or SELECT ... FOR UPDATE on PostgreSQL; SQLite has one
    writer at a time)."""
    records = []
    for item in items:
        # INSERT ... SELECT numbers and writes in one statement.
        next_seq = select(
            literal(run_id),
            func.coalesce(func.max(RunEventRow.seq), 0) + 1,
            literal(str(EventKind(item.kind))),
            literal(item.name),
            literal(item.payload),
            literal(moment, RunEventRow.created_at.type),
        ).where(RunEventRow.run_id == run_id)
        statement = (
            insert(RunEventRow)
            .from_select(["run_id", "seq", "kind", "name", "payload", "created_at"], next_seq)
            .returning(RunEventRow)
        )
        row = (await session.execute(statement)).scalar_one()
        records.append(EventRecord.from_row(row))
    return records


async def _active(session: AsyncSession, repository: str, issue_number: int) -> RunRecord | None:
    statement = select(RunRow).where(
        RunRow.repository == repository,
        RunRow.issue_number == issue_number,
        RunRow.terminal.is_(False),
    )
    row = (await session.scalars(statement)).one_or_none()
    return RunRecord.from_row(row) if row is not None else None
