"""Drives runs: claim one under a lease, feed its queued events to the machine, carry out the
effects, queue their results, release it with its next timer. One worker holds a run at a time;
while it does, a heartbeat renews the lease every third of its length, so a short lease (quick
recovery when a worker dies) never lapses under a long effect.

Crash safety comes from the order of writes: a job's event is applied and the resulting state is
saved together with the effects it asks for; each effect's result is queued (de-duplicated by the
effect's key) before the effect is struck off; the job is marked done last. A worker killed at
any point leaves the job pending, so the run is claimed again: the machine ignores the now stale
event and the saved effects are carried out again (every effect is idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from app import metrics
from app.domain.effects import Effect, RunAuditor, RunBuilder
from app.domain.events import Event, event_from_json
from app.domain.machine import advance
from app.domain.run_state import RunState
from app.engine.context import RunContext
from app.engine.envelope import Envelope
from app.engine.progress import project
from app.logs import fields
from app.store.jobs import JobKind, NewJob
from app.store.progress import ProgressDelta
from app.store.queue import Claim, Job, JobQueue
from app.store.runs import EventKind, LeaseLost, NewEvent, RunRecord, RunRepository

log = logging.getLogger("autopack.driver")

Clock = Callable[[], float]
LONG_EFFECTS = (RunBuilder, RunAuditor)


class Executor(Protocol):
    """Carries out effects at the edge and notices time passing."""

    def context(self, record: RunRecord) -> RunContext:
        """The context of one claim of a run (made once per claim)."""
        ...

    async def execute(
        self, ctx: RunContext, env: Envelope, effect: Effect
    ) -> tuple[Envelope, Event | None]:
        """Carry out one effect; the new envelope (notes) and the result event, if any."""
        ...

    async def tick(
        self, ctx: RunContext, env: Envelope, now: float
    ) -> tuple[Envelope, list[Event]]:
        """Events that time alone produces now (timeouts, CI looked at again)."""
        ...

    def next_wake(self, env: Envelope, now: float) -> float | None:
        """When the run next needs attention without a job (epoch seconds), if ever."""
        ...


def event_job(event: Event, dedupe_key: str | None = None) -> NewJob:
    """A job carrying a machine event (its type kept apart, so it can be asked for)."""
    payload = json.dumps(event.to_json())
    return NewJob(payload, dedupe_key, JobKind.EVENT, type(event).__name__)


def kick_job(dedupe_key: str | None = None) -> NewJob:
    """A job that has the driver look at the run now (a new run starts this way)."""
    return NewJob(dedupe_key=dedupe_key, kind=JobKind.KICK)


def poll_job(dedupe_key: str | None = None) -> NewJob:
    """A job that has the driver read CI now (a webhook named the awaited commit)."""
    return NewJob(dedupe_key=dedupe_key, kind=JobKind.POLL)


def _event_of(job: Job) -> Event | None:
    if job.kind is not JobKind.EVENT:
        return None
    data = json.loads(job.payload)
    # Jobs queued by versions before the kind column wrapped the event in {"event": ...}.
    return event_from_json(data.get("event", data))


@dataclass
class _Held:
    claim: Claim  # renewed by the heartbeat while the run is held
    record: RunRecord
    env: Envelope
    ctx: RunContext  # the run's clients and workspace for this claim
    # A transition applied but not saved yet: its log entries, progress rows and the states
    # it went between (for the metrics, counted once saved).
    unsaved: list[NewEvent] = field(default_factory=list)
    progress: ProgressDelta | None = None
    observed: tuple[RunState, RunState, Event] | None = None
    jobs: list[NewJob] = field(default_factory=list)  # results to queue with the next save


class RunDriver:
    """One worker's loop over runs."""

    def __init__(
        self,
        store: RunRepository,
        queue: JobQueue,
        executor: Executor,
        *,
        owner: str,
        lease: timedelta = timedelta(seconds=60),
        clock: Clock | None = None,
        cancel_poll_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.queue = queue
        self.executor = executor
        self.owner = owner
        self.lease = lease
        self.clock = clock or (lambda: datetime.now(UTC).timestamp())
        self.cancel_poll_seconds = cancel_poll_seconds

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def step(self) -> bool:
        """Claim one run and drive it as far as it goes now; False when nothing was claimable."""
        claim = await self.queue.claim(self.owner, self.lease, self._now())
        if claim is None:
            return False
        held = _Held(
            claim,
            claim.run,
            Envelope.loads(claim.run.state),
            self.executor.context(claim.run),
        )
        heartbeat = asyncio.create_task(self._heartbeat(held), name=f"lease:{claim.run_id}")
        try:
            await self._drive(held)
        except LeaseLost:
            log.warning("lost the lease on a run", extra=fields(run=claim.run_id))
            return True
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        wake = self.executor.next_wake(held.env, self.clock())
        await self.queue.release(
            held.claim, None if wake is None else datetime.fromtimestamp(wake, UTC)
        )
        return True

    async def _heartbeat(self, held: _Held) -> None:
        """Renew the lease of the held run until cancelled (or until it is lost)."""
        every = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            try:
                held.claim = await self.queue.renew(held.claim, self.lease, self._now())
            except LeaseLost:
                log.warning("the lease lapsed", extra=fields(run=held.claim.run_id))
                return  # the next save fails with LeaseLost and the driver lets go

    async def drain(self) -> int:
        """Step until no run is claimable; returns how many steps ran."""
        steps = 0
        while await self.step():
            steps += 1
        return steps

    async def _drive(self, held: _Held) -> None:
        leftovers = bool(held.env.pending)  # effects a dead worker saved and did not carry out
        await self._carry_out(held)
        held.env, timed = await self.executor.tick(held.ctx, held.env, self.clock())
        for event in timed:
            await self.queue.enqueue(held.claim.run_id, event_job(event), now=self._now())
        # The claim brought the jobs due then; unless something was queued since, they are all.
        fresh = held.claim.jobs and not (leftovers or timed)
        jobs = list(held.claim.jobs) if fresh else await self.queue.pending(held.claim.run_id)
        while jobs:
            due = [job for job in jobs if job.available_at <= self._now()]
            if not due:
                break
            for job in due:
                # The job is marked done by the save after its last effect: a worker killed
                # before that leaves it pending, so the run is claimed again and the saved
                # effects are carried out.
                await self._apply(held, job)
                await self._carry_out(held, job.id)
            if held.env.state.status.is_terminal and not held.env.pending:
                break
            jobs = await self.queue.pending(held.claim.run_id)

    async def _apply(self, held: _Held, job: Job) -> None:
        event = _event_of(job)
        items: list[NewEvent] = []
        delta = None
        observed = None
        if event is not None:
            before = held.env.state
            after, effects = advance(before, event)
            items.append(
                NewEvent(EventKind.EVENT, type(event).__name__, json.dumps(event.to_json()))
            )
            if after is not before:
                if after.status is not before.status:
                    items.append(
                        NewEvent(EventKind.TRANSITION, f"{before.status} -> {after.status}")
                    )
                held.env = held.env.advanced(after, effects)
                items.extend(
                    NewEvent(EventKind.EFFECT, type(e).__name__, json.dumps(e.to_json()))
                    for e in effects
                )
                delta = project(before, after, event, effects, self._now())
                observed = (before, after, event)
            else:
                items.append(NewEvent(EventKind.NOTE, "ignored", json.dumps({"job": job.id})))
        new_jobs: list[NewJob] = []
        if job.kind is JobKind.POLL:
            held.env, timed = await self.executor.tick(held.ctx, held.env, self.clock())
            new_jobs = [event_job(result) for result in timed]
        held.unsaved, held.progress, held.observed = items, delta, observed
        if not held.env.pending or new_jobs:
            await self._save(held, jobs=new_jobs, done=[] if held.env.pending else [job.id])
        # Otherwise the new state is saved with its first effect's result. A worker killed
        # before that leaves the job pending on the old state: the job is applied again, and
        # the machine, being a function of the two, asks for the same effects again.

    async def _carry_out(self, held: _Held, job_id: int | None = None) -> None:
        """Carry out the saved effects in order; the last save marks `job_id` done.

        An effect's result is queued (de-duplicated by the effect's key) in the same save that
        strikes the effect off. That save comes at once only when the effect left notes (ids of
        what it created) or is the last or a long one; otherwise both ride on the next save, and
        a worker killed in between carries the effect out again, which its key makes a no-op.
        """
        done = [] if job_id is None else [job_id]
        while held.env.pending:
            effect = held.env.pending[0]
            if isinstance(effect, LONG_EFFECTS) and held.unsaved:
                await self._save(held)  # the run shows where it stands while the builder works
            if isinstance(effect, LONG_EFFECTS):
                outcome = await self._interruptible(held, effect)
                if outcome is None:  # cancelled: the Cancelled job decides what follows
                    held.env = held.env.with_pending(())
                    held.unsaved.append(NewEvent(EventKind.NOTE, "interrupted"))
                    await self._save(held, done=done)
                    return
                env, result = outcome
            else:
                env, result = await self.executor.execute(held.ctx, held.env, effect)
            if result is not None:
                held.jobs.append(event_job(result, effect.key))
            noted = env.memo != held.env.memo or env.state is not held.env.state
            held.env = env.with_pending(held.env.pending[1:])
            if noted or not held.env.pending or isinstance(effect, LONG_EFFECTS) or held.unsaved:
                await self._save(held, done=[] if held.env.pending else done)
            log.info(
                "effect done",
                extra=fields(run=held.claim.run_id, effect=effect.key, result=_name(result)),
            )

    async def _interruptible(
        self, held: _Held, effect: Effect
    ) -> tuple[Envelope, Event | None] | None:
        """Run a long effect, stopping it if a cancel arrives."""
        task = asyncio.create_task(self.executor.execute(held.ctx, held.env, effect))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.cancel_poll_seconds)
                if done:
                    return task.result()
                if await self.queue.cancel_pending(held.claim.run_id):
                    log.info("cancel arrived: stopping", extra=fields(run=held.claim.run_id))
                    return None
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _save(
        self,
        held: _Held,
        *,
        jobs: list[NewJob] | None = None,
        done: list[int] | None = None,
    ) -> None:
        """Save the envelope with the unsaved transition's log entries and progress rows, new
        jobs and finished jobs, in one transaction."""
        state = held.env.state
        held.record = await self.store.save(
            held.claim.run_id,
            state.status.value,
            held.env.dumps(),
            state.status.is_terminal and not held.env.pending,
            held.record.version,
            self.owner,
            self._now(),
            events=held.unsaved,
            progress=held.progress,
            jobs=[*held.jobs, *(jobs or ())],
            done_jobs=done or (),
        )
        observed = held.observed
        held.unsaved, held.progress, held.observed, held.jobs = [], None, None, []
        if observed is not None:
            # Counted once the transition is saved, so a lost lease does not count it twice.
            before, after, event = observed
            metrics.observe_transition(
                before,
                after,
                self.clock(),
                held.env.memo.clocks.phase_started_at or None,
                event=event,
            )


def _name(event: Event | None) -> str | None:
    return None if event is None else type(event).__name__
