"""Several runs at once in one worker process, and quick recovery after a worker dies."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.store.db import create_engine
from app.store.runs import RunStore
from tests.engine.harness import REPO, autopack
from tests.engine.processes import Server, prepare
from tests.fakegithub.scenario import FakeGitHub


async def test_two_runs_build_at_the_same_time_in_one_process(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    # Each builder waits for the other to arrive: both succeed only if they run side by side.
    meet = tmp_path / "meet"
    meet.mkdir()
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        builder_env={"TEST_MEET_DIR": str(meet)},
        builder_keys={"read_write": [str(meet)]},
    ) as h:
        assert h.settings.worker_concurrency >= 2
        first = await h.start_run("- [ ] Build one [meet]\n", title="One")
        second = await h.start_run("- [ ] Build two [meet]\n", title="Two")
        (run_one, env_one), (run_two, env_two) = await asyncio.gather(
            h.finished(first), h.finished(second)
        )
    assert run_one.status == RunStatus.DONE_SUCCESS.value, env_one.state.terminal_reason
    assert run_two.status == RunStatus.DONE_SUCCESS.value, env_two.state.terminal_reason
    assert len(list(meet.iterdir())) == 2


async def test_a_killed_worker_s_run_is_taken_back_at_restart_not_at_lease_end(
    fakegithub: FakeGitHub, tmp_path: Path, postgres_url: str
) -> None:
    # A 60 s lease: were the dead worker's lease simply waited out, the run would move again
    # only after it; the restarted worker takes it back at once (its pid is dead).
    naps = tmp_path / "naps"
    naps.mkdir()
    env = await prepare(
        fakegithub,
        tmp_path,
        postgres_url,
        builder_env={"TEST_NAP_DIR": str(naps)},
        builder_read_write=[str(naps)],
        lease_seconds=60,
    )
    server = Server(env, tmp_path, command="serve")
    engine = create_engine(postgres_url)
    store = RunStore(engine)
    try:
        await server.start()
        fakegithub.webhook_url = f"{server.url}/api/github/webhooks"
        issue = await fakegithub.open_issue(REPO, "Nap", "- [ ] Take a nap [nap]\n", user="alice")
        await fakegithub.label_issue(REPO, issue, "autopack:run", sender="alice")
        async with asyncio.timeout(30):
            # The builder is at work, so the run is leased (a file, not an event: another process).
            while not any(naps.iterdir()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        (held,) = await store.list_runs(repository=REPO)
        assert held.lease_owner is not None
        dead_pid = held.lease_owner.split(":")[1]
        await server.kill()
        await server.start()
        async with asyncio.timeout(30):  # well inside the 60 s lease
            while True:
                (run,) = await store.list_runs(repository=REPO)
                if run.terminal:
                    break
                await asyncio.sleep(0.1)
    finally:
        fakegithub.webhook_url = None
        await server.stop()
        await engine.dispose()
    assert run.status == RunStatus.DONE_SUCCESS.value
    assert len(list(naps.iterdir())) == 2  # the attempt ran again in the new worker
    assert dead_pid not in (run.lease_owner or "")
