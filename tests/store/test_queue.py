"""The leased run queue: dedupe, one holder per run, expiry, timers, fairness, on every backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.jobs import NewJob
from app.store.queue import Claim, JobKind, JobStatus, RunQueue
from app.store.runs import LeaseLost, RunNotFound, RunStore
from tests.store.test_runs import T0, Stores, new_run, stores_fixture  # noqa: F401

LEASE = timedelta(seconds=30)


async def make_runs(stores: Stores, *issues: int) -> list[str]:
    """Create one run per issue; returns their ids."""
    return [(await stores.runs.create_run(new_run(issue=issue), now=T0)).id for issue in issues]


class TestEnqueue:
    async def test_dedupe_key_is_unique_per_run(self, stores: Stores) -> None:
        one, two = await make_runs(stores, 1, 2)
        assert await stores.queue.enqueue(one, NewJob('{"e": 1}', "guid-1"), now=T0) is True
        assert await stores.queue.enqueue(one, NewJob('{"e": 2}', "guid-1"), now=T0) is False
        assert await stores.queue.enqueue(two, NewJob('{"e": 3}', "guid-1"), now=T0) is True
        assert await stores.queue.enqueue(one, NewJob('{"e": 4}'), now=T0) is True
        assert await stores.queue.enqueue(one, NewJob('{"e": 5}'), now=T0) is True
        assert [job.payload for job in await stores.queue.pending(one)] == [
            '{"e": 1}',
            '{"e": 4}',
            '{"e": 5}',
        ]

    async def test_dedupe_outlives_completion(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}", "effect:branch"), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        await stores.queue.complete(claim, [job.id for job in claim.jobs], now=T0)
        assert await stores.queue.enqueue(run, NewJob("{}", "effect:branch"), now=T0) is False
        assert await stores.queue.pending(run) == []

    async def test_enqueue_for_missing_run(self, stores: Stores) -> None:
        with pytest.raises(RunNotFound):
            await stores.queue.enqueue("nope", NewJob("{}"), now=T0)


class TestClaim:
    async def test_claim_leases_run_with_jobs_in_order(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        for index in range(3):
            await stores.queue.enqueue(run, NewJob(f'{{"n": {index}}}'), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        assert (claim.run_id, claim.owner, claim.lease_until) == (run, "w1", T0 + LEASE)
        assert claim.run.id == run
        assert claim.run.lease_owner == "w1"
        assert claim.run.lease_until == T0 + LEASE
        assert [job.payload for job in claim.jobs] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
        assert [job.id for job in claim.jobs] == sorted(job.id for job in claim.jobs)
        assert all(job.status is JobStatus.PENDING for job in claim.jobs)

    async def test_nothing_to_claim(self, stores: Stores) -> None:
        await make_runs(stores, 1)
        assert await stores.queue.claim("w1", LEASE, now=T0) is None

    async def test_second_claimer_gets_another_run_or_none(self, stores: Stores) -> None:
        one, two = await make_runs(stores, 1, 2)
        for run in (one, one, two):
            await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        first = await stores.queue.claim("w1", LEASE, now=T0)
        second = await stores.queue.claim("w2", LEASE, now=T0)
        assert first is not None
        assert second is not None
        assert {first.run_id, second.run_id} == {one, two}
        # Jobs arriving for a held run wait for its holder, not for a second worker.
        await stores.queue.enqueue(first.run_id, NewJob("{}"), now=T0)
        assert await stores.queue.claim("w3", LEASE, now=T0) is None

    async def test_jobs_not_yet_available_wait(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        later = T0 + timedelta(minutes=5)
        await stores.queue.enqueue(run, NewJob('{"later": true}'), available_at=later, now=T0)
        assert await stores.queue.claim("w1", LEASE, now=T0) is None
        await stores.queue.enqueue(run, NewJob('{"now": true}'), now=T0)
        early = await stores.queue.claim("w1", LEASE, now=T0)
        assert early is not None
        assert [job.payload for job in early.jobs] == ['{"now": true}']
        await stores.queue.complete(early, [early.jobs[0].id], now=T0)
        assert await stores.queue.release(early) is True
        due = await stores.queue.claim("w1", LEASE, now=later)
        assert due is not None
        assert [job.payload for job in due.jobs] == ['{"later": true}']

    async def test_complete_release_and_new_jobs(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob('{"n": 1}'), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        # A job enqueued while the run is held is not part of this claim...
        await stores.queue.enqueue(run, NewJob('{"n": 2}'), now=T0)
        await stores.queue.complete(claim, [job.id for job in claim.jobs], now=T0)
        assert [job.payload for job in await stores.queue.pending(run)] == ['{"n": 2}']
        assert await stores.queue.release(claim) is True
        # ...but makes the run claimable again once it is released.
        again = await stores.queue.claim("w2", LEASE, now=T0)
        assert again is not None
        assert [job.payload for job in again.jobs] == ['{"n": 2}']
        await stores.queue.complete(again, [again.jobs[0].id], now=T0)
        await stores.queue.release(again)
        assert await stores.queue.claim("w1", LEASE, now=T0) is None
        released = await stores.runs.get(run)
        assert released is not None
        assert (released.lease_owner, released.lease_until) == (None, None)


class TestLeases:
    async def test_expired_lease_is_reclaimed_and_stale_owner_is_refused(
        self, stores: Stores
    ) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        stale = await stores.queue.claim("w1", LEASE, now=T0)
        assert stale is not None
        assert await stores.queue.claim("w2", LEASE, now=T0 + LEASE) is None
        after = T0 + LEASE + timedelta(seconds=1)
        fresh = await stores.queue.claim("w2", LEASE, now=after)
        assert fresh is not None
        assert fresh.run_id == run
        assert [job.id for job in fresh.jobs] == [job.id for job in stale.jobs]
        with pytest.raises(LeaseLost):
            await stores.queue.complete(stale, [stale.jobs[0].id], now=after)
        with pytest.raises(LeaseLost):
            await stores.queue.renew(stale, LEASE, now=after)
        with pytest.raises(LeaseLost):
            await stores.runs.save(run, "X", "{}", False, 1, "w1", after)
        assert await stores.queue.release(stale) is False
        assert len(await stores.queue.pending(run)) == 1
        await stores.queue.complete(fresh, [fresh.jobs[0].id], now=after)
        saved = await stores.runs.save(run, "RUN_CREATED", "{}", False, 1, "w2", after)
        assert saved.version == 2
        assert await stores.queue.pending(run) == []

    async def test_expired_but_unclaimed_lease_cannot_complete(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        with pytest.raises(LeaseLost):
            await stores.queue.complete(claim, [claim.jobs[0].id], now=T0 + 2 * LEASE)
        assert len(await stores.queue.pending(run)) == 1

    async def test_renew_extends_the_lease(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        renewed = await stores.queue.renew(claim, LEASE, now=T0 + timedelta(seconds=20))
        assert renewed.lease_until == T0 + timedelta(seconds=50)
        assert await stores.queue.claim("w2", LEASE, now=T0 + timedelta(seconds=40)) is None
        await stores.queue.complete(renewed, [claim.jobs[0].id], now=T0 + timedelta(seconds=45))
        assert await stores.queue.pending(run) == []


class TestTimersAndFairness:
    async def test_wake_at_makes_a_run_claimable_without_jobs(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        await stores.queue.complete(claim, [claim.jobs[0].id], now=T0)
        wake = T0 + timedelta(minutes=10)
        assert await stores.queue.release(claim, wake_at=wake) is True
        assert await stores.queue.claim("w1", LEASE, now=wake - timedelta(seconds=1)) is None
        woken = await stores.queue.claim("w2", LEASE, now=wake)
        assert woken is not None
        assert woken.run_id == run
        assert woken.jobs == ()
        assert woken.run.wake_at == wake + LEASE  # held: the timer waits for the lease's end
        # Releasing without a timer clears it: nothing left to do.
        await stores.queue.release(woken)
        assert await stores.queue.claim("w1", LEASE, now=wake + timedelta(hours=1)) is None

    async def test_a_run_whose_worker_died_is_claimed_again_when_the_lease_ends(
        self, stores: Stores
    ) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        claim = await stores.queue.claim("w1", LEASE, now=T0)
        assert claim is not None
        await stores.queue.complete(claim, [claim.jobs[0].id], now=T0)
        # w1 dies here: no job is left pending and it never releases the run.
        assert await stores.queue.claim("w2", LEASE, now=T0 + LEASE / 2) is None
        again = await stores.queue.claim("w2", LEASE, now=T0 + LEASE + timedelta(seconds=1))
        assert again is not None
        assert (again.run_id, again.jobs) == (run, ())

    async def test_oldest_waiting_run_first(self, stores: Stores) -> None:
        late, early, middle, timer = await make_runs(stores, 1, 2, 3, 4)
        for run, minute in ((late, 3), (early, 1), (middle, 2)):
            await stores.queue.enqueue(run, NewJob("{}"), now=T0 + timedelta(minutes=minute))
        # A run whose timer fell due before any job arrived has waited longest of all.
        await stores.queue.enqueue(timer, NewJob("{}"), now=T0)
        first = await stores.queue.claim("w", LEASE, now=T0)
        assert first is not None
        await stores.queue.complete(first, [job.id for job in first.jobs], now=T0)
        await stores.queue.release(first, wake_at=T0 + timedelta(seconds=30))
        now = T0 + timedelta(minutes=5)
        order = []
        while (claim := await stores.queue.claim("w", LEASE, now=now)) is not None:
            order.append(claim.run_id)
            await stores.queue.complete(claim, [job.id for job in claim.jobs], now=now)
        assert order == [timer, early, middle, late]


async def test_concurrent_claimers_never_share_a_run(engine: AsyncEngine) -> None:
    runs, queue = RunStore(engine), RunQueue(engine)
    for issue in range(12):
        run = await runs.create_run(new_run(issue=issue), now=T0)
        await queue.enqueue(run.id, NewJob("{}"), now=T0)

    async def claimer(name: str) -> list[Claim]:
        got = []
        while (claim := await queue.claim(name, LEASE, now=T0)) is not None:
            got.append(claim)
        return got

    results = await asyncio.gather(*(claimer(f"w{index}") for index in range(4)))
    claimed = [claim.run_id for result in results for claim in result]
    assert sorted(claimed) == sorted(f"acme-widgets-{issue}-1" for issue in range(12))


class TestDeadOwners:
    async def test_live_leases_are_listed_by_owner_prefix(self, stores: Stores) -> None:
        one, two, three = await make_runs(stores, 1, 2, 3)
        for run in (one, two, three):
            await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        for owner in ("host-a:10:0", "host-a:11:0", "host-b:10:0"):
            assert await stores.queue.claim(owner, LEASE, now=T0) is not None
        owners = await stores.queue.lease_owners("host-a:", now=T0)
        assert sorted(owners) == ["host-a:10:0", "host-a:11:0"]
        assert await stores.queue.lease_owners("host_a:", now=T0) == []  # "_" is no wildcard
        assert await stores.queue.lease_owners("host-a:", now=T0 + 2 * LEASE) == []  # lapsed

    async def test_a_dead_owner_s_run_is_claimable_at_once(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}"), now=T0)
        assert await stores.queue.claim("host-a:10:0", LEASE, now=T0) is not None
        assert await stores.queue.claim("host-a:20:0", LEASE, now=T0) is None  # still leased
        assert await stores.queue.expire_leases(["host-a:10:0"], now=T0) == 1
        claim = await stores.queue.claim("host-a:20:0", LEASE, now=T0)
        assert claim is not None
        assert claim.run_id == run
        assert await stores.queue.expire_leases([], now=T0) == 0


class TestKinds:
    async def test_kinds_and_event_types_come_back_as_queued(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob('{"type": "X"}', None, JobKind.EVENT, "X"), now=T0)
        await stores.queue.enqueue(run, NewJob(kind=JobKind.KICK), now=T0)
        await stores.queue.enqueue(run, NewJob(kind=JobKind.POLL), now=T0)
        jobs = await stores.queue.pending(run)
        assert [(job.kind, job.event_type) for job in jobs] == [
            (JobKind.EVENT, "X"),
            (JobKind.KICK, ""),
            (JobKind.POLL, ""),
        ]

    async def test_a_pending_cancel_is_found_by_its_type_not_its_text(self, stores: Stores) -> None:
        one, two = await make_runs(stores, 1, 2)
        # A payload that merely mentions the word is no cancel.
        await stores.queue.enqueue(one, NewJob('{"summary": "Cancelled"}'), now=T0)
        assert await stores.queue.cancel_pending(one) is False
        await stores.queue.enqueue(two, NewJob("{}", "c", JobKind.EVENT, "Cancelled"), now=T0)
        assert await stores.queue.cancel_pending(two) is True
        assert await stores.queue.cancel_pending(one) is False

    async def test_a_done_cancel_is_no_longer_pending(self, stores: Stores) -> None:
        (run,) = await make_runs(stores, 1)
        await stores.queue.enqueue(run, NewJob("{}", "c", JobKind.EVENT, "Cancelled"), now=T0)
        claim = await stores.queue.claim("w", LEASE, now=T0)
        assert claim is not None
        await stores.queue.complete(claim, [job.id for job in claim.jobs], now=T0)
        assert await stores.queue.cancel_pending(run) is False
