"""In-memory RunRepository and JobQueue with the SQL stores' semantics, for pure-core tests."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from app.store.progress import ProgressDelta
from app.store.queue import DEFAULT_LEASE, Claim, Job, JobStatus
from app.store.runs import (
    DEFAULT_EVENTS_LIMIT,
    DEFAULT_RUNS_LIMIT,
    ActiveRunExists,
    DuplicateRun,
    EventKind,
    EventRecord,
    LeaseLost,
    NewEvent,
    NewRun,
    RunNotFound,
    RunRecord,
    VersionConflict,
    utc_input,
    utcnow,
)


def _now(now: datetime | None) -> datetime:
    return utc_input(now) if now is not None else utcnow()


def _lease_free(run: RunRecord, moment: datetime) -> bool:
    return run.lease_until is None or run.lease_until < moment


def _held_by(run: RunRecord, owner: str, moment: datetime) -> bool:
    return run.lease_owner == owner and run.lease_until is not None and run.lease_until >= moment


class MemoryRunStore:
    """RunRepository in dictionaries; every method runs without awaiting, hence atomically."""

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.log: dict[str, list[EventRecord]] = {}
        self.progress: dict[str, list[ProgressDelta]] = {}
        self._event_ids = itertools.count(1)

    async def create_run(self, new: NewRun, now: datetime | None = None) -> RunRecord:
        """Store a new run; ActiveRunExists if the issue already has a non-terminal one."""
        moment = _now(now)
        active = self._active(new.repository, new.issue_number)
        if active is not None:
            raise ActiveRunExists(new.repository, new.issue_number, active.id)
        taken = any(
            run.repository == new.repository
            and run.issue_number == new.issue_number
            and run.run_number == new.run_number
            for run in self.runs.values()
        )
        if new.id in self.runs or taken:
            raise DuplicateRun(
                f"run {new.id} or {new.repository}#{new.issue_number} run {new.run_number}"
                " already exists"
            )
        record = RunRecord(
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
            finished_at=None,
            lease_owner=None,
            lease_until=None,
            wake_at=None,
            version=1,
        )
        self.runs[new.id] = record
        self.log[new.id] = []
        return record

    async def get(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        return self.runs.get(run_id)

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
    ) -> RunRecord:
        """Write the machine's new state if `expected_version` is current and `owner` leases it.

        Progress deltas are kept as given (`self.progress[run_id]`), not folded into rows.
        """
        moment = _now(now)
        run = self.runs.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.version != expected_version:
            raise VersionConflict(
                f"run {run_id} is at version {run.version}, not {expected_version}"
            )
        allowed = _lease_free(run, moment) if owner is None else _held_by(run, owner, moment)
        if not allowed:
            raise LeaseLost(f"run {run_id} is not leased by {owner or 'nobody'}")
        saved = dataclasses.replace(
            run,
            status=status,
            state=state,
            terminal=terminal,
            updated_at=moment,
            finished_at=(run.finished_at or moment) if terminal else run.finished_at,
            version=run.version + 1,
        )
        self.runs[run_id] = saved
        if events:
            await self.append_events(run_id, events, moment)
        if progress is not None and not progress.empty:
            self.progress.setdefault(run_id, []).append(progress)
        return saved

    async def append_events(
        self, run_id: str, items: Sequence[NewEvent], now: datetime | None = None
    ) -> list[EventRecord]:
        """Append entries to the run's log, numbering them after the last one."""
        moment = _now(now)
        if run_id not in self.runs:
            raise RunNotFound(run_id)
        log = self.log[run_id]
        added = [
            EventRecord(
                id=next(self._event_ids),
                run_id=run_id,
                seq=len(log) + index,
                kind=EventKind(item.kind),
                name=item.name,
                payload=item.payload,
                created_at=moment,
            )
            for index, item in enumerate(items, start=1)
        ]
        log.extend(added)
        return added

    async def events(
        self, run_id: str, after_seq: int = 0, limit: int = DEFAULT_EVENTS_LIMIT
    ) -> list[EventRecord]:
        """Log entries with seq > after_seq, in order."""
        return [event for event in self.log.get(run_id, []) if event.seq > after_seq][:limit]

    async def list_runs(
        self,
        repository: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = DEFAULT_RUNS_LIMIT,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs newest first, filtered by repository, status and creation time (>= since)."""
        start = utc_input(since) if since is not None else None
        chosen = [
            run
            for run in self.runs.values()
            if (repository is None or run.repository == repository)
            and (status is None or run.status == status)
            and (start is None or run.created_at >= start)
        ]
        chosen.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return chosen[offset : offset + limit]

    async def active_run(self, repository: str, issue_number: int) -> RunRecord | None:
        """The issue's non-terminal run, if any."""
        return self._active(repository, issue_number)

    async def next_run_number(self, repository: str, issue_number: int) -> int:
        """1 + the highest run number used for the issue (1 for its first run)."""
        numbers = [
            run.run_number
            for run in self.runs.values()
            if run.repository == repository and run.issue_number == issue_number
        ]
        return max(numbers, default=0) + 1

    def _active(self, repository: str, issue_number: int) -> RunRecord | None:
        issue = (repository, issue_number)
        for run in self.runs.values():
            if (run.repository, run.issue_number) == issue and not run.terminal:
                return run
        return None


class MemoryRunQueue:
    """JobQueue over a MemoryRunStore's runs: leases and timers live on the run records."""

    def __init__(self, store: MemoryRunStore) -> None:
        self._store = store
        self.jobs: dict[int, Job] = {}
        self._job_ids = itertools.count(1)

    async def enqueue(
        self,
        run_id: str,
        payload: str,
        dedupe_key: str | None = None,
        available_at: datetime | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Queue an event for a run; False when `dedupe_key` was already used for that run."""
        moment = _now(now)
        if run_id not in self._store.runs:
            raise RunNotFound(run_id)
        if dedupe_key is not None and any(
            job.run_id == run_id and job.dedupe_key == dedupe_key for job in self.jobs.values()
        ):
            return False
        job_id = next(self._job_ids)
        self.jobs[job_id] = Job(
            id=job_id,
            run_id=run_id,
            payload=payload,
            dedupe_key=dedupe_key,
            status=JobStatus.PENDING,
            created_at=moment,
            available_at=utc_input(available_at) if available_at is not None else moment,
            done_at=None,
        )
        return True

    async def claim(
        self, owner: str, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> Claim | None:
        """Lease the longest-waiting run that has due jobs or a due timer and no live lease."""
        moment = _now(now)
        best: tuple[datetime, str] | None = None
        for run in self._store.runs.values():
            if not _lease_free(run, moment):
                continue
            waits = [job.available_at for job in self._due(run.id, moment)]
            if run.wake_at is not None and run.wake_at <= moment:
                waits.append(run.wake_at)
            if waits and (best is None or (min(waits), run.id) < best):
                best = (min(waits), run.id)
        if best is None:
            return None
        lease_until = moment + lease
        run = dataclasses.replace(
            self._store.runs[best[1]],
            lease_owner=owner,
            lease_until=lease_until,
            wake_at=lease_until,
        )
        self._store.runs[run.id] = run
        jobs = tuple(sorted(self._due(run.id, moment), key=lambda job: job.id))
        return Claim(run.id, owner, lease_until, run, jobs)

    async def complete(
        self, claim: Claim, job_ids: Sequence[int], now: datetime | None = None
    ) -> None:
        """Mark jobs done; LeaseLost unless the claim still holds the run."""
        moment = _now(now)
        self._require(claim, moment)
        for job_id in job_ids:
            job = self.jobs.get(job_id)
            if job is not None and job.run_id == claim.run_id and job.status is JobStatus.PENDING:
                self.jobs[job_id] = dataclasses.replace(job, status=JobStatus.DONE, done_at=moment)

    async def renew(
        self, claim: Claim, lease: timedelta = DEFAULT_LEASE, now: datetime | None = None
    ) -> Claim:
        """Extend the lease from `now`; LeaseLost if it already lapsed or moved on."""
        moment = _now(now)
        run = self._require(claim, moment)
        lease_until = moment + lease
        self._store.runs[run.id] = dataclasses.replace(
            run, lease_until=lease_until, wake_at=lease_until
        )
        return dataclasses.replace(claim, lease_until=lease_until)

    async def release(self, claim: Claim, wake_at: datetime | None = None) -> bool:
        """Free the run and set its timer to `wake_at` (None: no timer); False if not held."""
        run = self._store.runs.get(claim.run_id)
        if run is None or run.lease_owner != claim.owner:
            return False
        self._store.runs[run.id] = dataclasses.replace(
            run,
            lease_owner=None,
            lease_until=None,
            wake_at=utc_input(wake_at) if wake_at is not None else None,
        )
        return True

    async def pending(self, run_id: str) -> list[Job]:
        """The run's pending jobs in id order (due or not)."""
        return sorted(
            (
                job
                for job in self.jobs.values()
                if job.run_id == run_id and job.status is JobStatus.PENDING
            ),
            key=lambda job: job.id,
        )

    def _due(self, run_id: str, moment: datetime) -> list[Job]:
        return [
            job
            for job in self.jobs.values()
            if job.run_id == run_id
            and job.status is JobStatus.PENDING
            and job.available_at <= moment
        ]

    def _require(self, claim: Claim, moment: datetime) -> RunRecord:
        run = self._store.runs.get(claim.run_id)
        if run is None or not _held_by(run, claim.owner, moment):
            raise LeaseLost(f"run {claim.run_id} is not leased by {claim.owner}")
        return run
