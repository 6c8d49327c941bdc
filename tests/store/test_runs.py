"""RunStore contract: the SQL store behaves alike on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.store import migrate
from app.store.db import create_engine
from app.store.jobs import NewJob
from app.store.queue import JobQueue, RunQueue
from app.store.runs import (
    ActiveRunExists,
    DuplicateRun,
    EventKind,
    LeaseLost,
    NewEvent,
    NewRun,
    RunNotFound,
    RunRecord,
    RunRepository,
    RunStore,
    VersionConflict,
)
from tests.conftest import POSTGRES_URL, reset_postgres

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REPO = "acme/widgets"


@dataclass(frozen=True)
class Stores:
    """A run store and the queue that leases its runs, of one backend."""

    runs: RunRepository
    queue: JobQueue


@pytest.fixture(
    name="stores",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def stores_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    """Each backend in turn: SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}"
    elif POSTGRES_URL:
        await reset_postgres(POSTGRES_URL)
        url = POSTGRES_URL
    else:
        pytest.skip("AUTOPACK_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        yield Stores(RunStore(engine), RunQueue(engine))
    finally:
        await engine.dispose()


def new_run(
    issue: int = 12, number: int = 1, run_id: str | None = None, repo: str = REPO
) -> NewRun:
    """A run of `issue` as the engine would create it."""
    return NewRun(
        id=run_id or f"{repo.replace('/', '-')}-{issue}-{number}",
        installation_id=7,
        repository=repo,
        issue_number=issue,
        run_number=number,
        branch=f"autopack/issue-{issue}-run-{number}",
        status="PLAN_BOOTSTRAP",
        state='{"state": "PLAN_BOOTSTRAP"}',
    )


class TestRuns:
    async def test_create_and_get(self, stores: Stores) -> None:
        created = await stores.runs.create_run(new_run(), now=T0)
        fetched = await stores.runs.get(created.id)
        assert fetched == created
        assert created.id == "acme-widgets-12-1"
        assert (created.repository, created.issue_number, created.run_number) == (REPO, 12, 1)
        assert created.branch == "autopack/issue-12-run-1"
        assert (created.status, created.state) == ("PLAN_BOOTSTRAP", '{"state": "PLAN_BOOTSTRAP"}')
        assert created.version == 1
        assert created.terminal is False
        assert created.created_at == T0
        assert created.created_at.tzinfo is not None
        assert (created.finished_at, created.lease_owner, created.wake_at) == (None, None, None)
        assert await stores.runs.get("nope") is None

    async def test_save_increments_version_and_refuses_stale(self, stores: Stores) -> None:
        run = await stores.runs.create_run(new_run(), now=T0)
        later = T0 + timedelta(minutes=1)
        saved = await stores.runs.save(run.id, "RUN_CREATED", '{"s": 2}', False, 1, None, later)
        assert (saved.version, saved.status, saved.state) == (2, "RUN_CREATED", '{"s": 2}')
        assert saved.updated_at == later
        assert saved.created_at == T0
        with pytest.raises(VersionConflict):
            await stores.runs.save(run.id, "PHASE_QUEUEING", "{}", False, 1, None, later)
        assert await stores.runs.get(run.id) == saved
        with pytest.raises(RunNotFound):
            await stores.runs.save("nope", "X", "{}", False, 1, None, later)

    async def test_terminal_save_sets_finished_at_once(self, stores: Stores) -> None:
        run = await stores.runs.create_run(new_run(), now=T0)
        end = T0 + timedelta(hours=1)
        done = await stores.runs.save(run.id, "DONE_SUCCESS", "{}", True, 1, None, end)
        assert done.terminal is True
        assert done.finished_at == end
        again = await stores.runs.save(
            run.id, "DONE_SUCCESS", "{}", True, 2, None, end + timedelta(hours=1)
        )
        assert again.finished_at == end

    async def test_one_active_run_per_issue(self, stores: Stores) -> None:
        first = await stores.runs.create_run(new_run(number=1), now=T0)
        with pytest.raises(ActiveRunExists) as refused:
            await stores.runs.create_run(new_run(number=2), now=T0)
        assert refused.value.run_id == first.id
        assert "acme/widgets#12" in str(refused.value)
        # Another issue, or the same issue number in another repository, is independent.
        await stores.runs.create_run(new_run(issue=13), now=T0)
        await stores.runs.create_run(new_run(repo="acme/gears"), now=T0)
        assert await stores.runs.active_run(REPO, 12) == first
        await stores.runs.save(first.id, "DONE_FAILED_CANCELLED", "{}", True, 1, None, T0)
        assert await stores.runs.active_run(REPO, 12) is None
        second = await stores.runs.create_run(new_run(number=2), now=T0)
        assert await stores.runs.active_run(REPO, 12) == second

    async def test_concurrent_creates_let_one_win(self, stores: Stores) -> None:
        attempts = [stores.runs.create_run(new_run(number=n), now=T0) for n in (1, 2, 3)]
        results = await asyncio.gather(*attempts, return_exceptions=True)
        won = [result for result in results if not isinstance(result, BaseException)]
        refused = [result for result in results if isinstance(result, ActiveRunExists)]
        assert len(won) == 1
        assert len(refused) == 2

    async def test_duplicate_id_or_run_number(self, stores: Stores) -> None:
        first = await stores.runs.create_run(new_run(number=1), now=T0)
        await stores.runs.save(first.id, "DONE_SUCCESS", "{}", True, 1, None, T0)
        with pytest.raises(DuplicateRun):
            await stores.runs.create_run(new_run(number=1, run_id="other-id"), now=T0)
        with pytest.raises(DuplicateRun):
            await stores.runs.create_run(new_run(number=2, run_id=first.id), now=T0)

    async def test_next_run_number(self, stores: Stores) -> None:
        assert await stores.runs.next_run_number(REPO, 12) == 1
        run = await stores.runs.create_run(new_run(number=1), now=T0)
        await stores.runs.save(run.id, "DONE_SUCCESS", "{}", True, 1, None, T0)
        await stores.runs.create_run(new_run(number=4), now=T0)
        assert await stores.runs.next_run_number(REPO, 12) == 5
        assert await stores.runs.next_run_number(REPO, 13) == 1

    async def test_naive_times_are_refused(self, stores: Stores) -> None:
        with pytest.raises(ValueError, match="naive"):
            await stores.runs.create_run(new_run(), now=datetime(2026, 1, 1))

    async def test_list_runs(self, stores: Stores) -> None:
        for index, (repo, issue) in enumerate([(REPO, 1), ("acme/gears", 2), (REPO, 3)]):
            await stores.runs.create_run(
                new_run(issue=issue, repo=repo), now=T0 + timedelta(minutes=index)
            )
        done = await stores.runs.get("acme-widgets-3-1")
        assert done is not None
        await stores.runs.save(done.id, "DONE_SUCCESS", "{}", True, 1, None, T0)

        def ids(runs: list[RunRecord]) -> list[str]:
            return [run.id for run in runs]

        everything = ["acme-widgets-3-1", "acme-gears-2-1", "acme-widgets-1-1"]
        assert ids(await stores.runs.list_runs()) == everything
        assert ids(await stores.runs.list_runs(repository=REPO)) == everything[::2]
        assert ids(await stores.runs.list_runs(status="DONE_SUCCESS")) == ["acme-widgets-3-1"]
        since = T0 + timedelta(minutes=1)
        assert ids(await stores.runs.list_runs(since=since)) == everything[:2]
        assert ids(await stores.runs.list_runs(limit=1, offset=1)) == ["acme-gears-2-1"]


class TestEvents:
    async def test_seq_is_monotone_per_run(self, stores: Stores) -> None:
        run = await stores.runs.create_run(new_run(issue=1), now=T0)
        other = await stores.runs.create_run(new_run(issue=2), now=T0)
        first = await stores.runs.append_events(
            run.id,
            [
                NewEvent(EventKind.EVENT, "LabelAdded", '{"label": "autopack:run"}'),
                NewEvent(EventKind.TRANSITION, "PLAN_BOOTSTRAP->RUN_CREATED"),
            ],
            now=T0,
        )
        await stores.runs.append_events(other.id, [NewEvent(EventKind.NOTE, "hello")], now=T0)
        second = await stores.runs.append_events(
            run.id, [NewEvent(EventKind.EFFECT, "CreateBranch", '{"ok": true}')], now=T0
        )
        assert [event.seq for event in first + second] == [1, 2, 3]
        log = await stores.runs.events(run.id)
        assert log == first + second
        assert [(e.kind, e.name) for e in log] == [
            (EventKind.EVENT, "LabelAdded"),
            (EventKind.TRANSITION, "PLAN_BOOTSTRAP->RUN_CREATED"),
            (EventKind.EFFECT, "CreateBranch"),
        ]
        assert log[0].payload == '{"label": "autopack:run"}'
        assert log[1].payload == "{}"
        assert log[0].created_at == T0
        assert [e.seq for e in await stores.runs.events(other.id)] == [1]
        assert await stores.runs.events(run.id, after_seq=1, limit=1) == [first[1]]
        assert await stores.runs.events(run.id, after_seq=3) == []

    async def test_appending_never_rewrites_history(self, stores: Stores) -> None:
        run = await stores.runs.create_run(new_run(), now=T0)
        before = await stores.runs.append_events(run.id, [NewEvent(EventKind.NOTE, "a")], now=T0)
        batches = [
            stores.runs.append_events(run.id, [NewEvent(EventKind.NOTE, f"n{i}")] * 2, now=T0)
            for i in range(5)
        ]
        await asyncio.gather(*batches)
        log = await stores.runs.events(run.id)
        assert log[0] == before[0]
        assert [event.seq for event in log] == list(range(1, 12))
        # Each batch's two entries are adjacent: a batch is appended atomically.
        names = [event.name for event in log[1:]]
        assert all(names[i] == names[i + 1] for i in range(0, 10, 2))

    async def test_append_to_missing_run(self, stores: Stores) -> None:
        with pytest.raises(RunNotFound):
            await stores.runs.append_events("nope", [NewEvent(EventKind.NOTE, "x")], now=T0)


class TestSaveUnderLease:
    async def test_only_the_lease_holder_saves(self, stores: Stores) -> None:
        run = await stores.runs.create_run(new_run(), now=T0)
        await stores.queue.enqueue(run.id, NewJob("{}"), now=T0)
        claim = await stores.queue.claim("w1", timedelta(seconds=30), now=T0)
        assert claim is not None
        with pytest.raises(LeaseLost):
            await stores.runs.save(run.id, "X", "{}", False, 1, None, T0)
        with pytest.raises(LeaseLost):
            await stores.runs.save(run.id, "X", "{}", False, 1, "w2", T0)
        saved = await stores.runs.save(run.id, "RUN_CREATED", "{}", False, 1, "w1", T0)
        assert saved.version == 2
        assert saved.lease_owner == "w1"
        # Once the lease has expired, its former holder can no longer write.
        with pytest.raises(LeaseLost):
            await stores.runs.save(run.id, "X", "{}", False, 2, "w1", T0 + timedelta(seconds=31))
