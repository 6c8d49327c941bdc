"""ci_wake: a finished check run or a commit status wakes the runs waiting for CI on its commit.

GitHub's examples go in unmodified: they name no installation, and waking a run needs none.
"""

from __future__ import annotations

from app.store.jobs import JobKind
from tests.conftest import load_payload
from tests.engine.routes.conftest import RouteWorld

OTHER_SHA = "0" * 40


async def test_a_completed_check_run_wakes_the_run_waiting_on_its_head(
    world: RouteWorld,
) -> None:
    data = load_payload("check_run.completed")
    waiting = await world.waiting_run(1, data["check_run"]["head_sha"])
    elsewhere = await world.waiting_run(2, OTHER_SHA)
    logged = len(world.sim.request_log)
    assert await world.dispatch("check_run", data) == []
    assert len(world.sim.request_log) == logged  # read from the store alone
    (poll,) = await world.jobs(waiting)
    assert poll.kind is JobKind.POLL
    assert await world.jobs(elsewhere) == []


async def test_a_status_result_wakes_the_run_waiting_on_its_commit(world: RouteWorld) -> None:
    data = load_payload("status")
    assert data["state"] == "success"
    waiting = await world.waiting_run(1, data["sha"])
    await world.dispatch("status", data)
    await world.dispatch("status", data)  # each delivery wakes it: polling is idempotent
    assert [job.kind for job in await world.jobs(waiting)] == [JobKind.POLL, JobKind.POLL]


async def test_a_pending_status_wakes_nothing(world: RouteWorld) -> None:
    data = load_payload("status")
    data["state"] = "pending"
    waiting = await world.waiting_run(1, data["sha"])
    await world.dispatch("status", data)
    assert await world.jobs(waiting) == []


async def test_a_finished_run_is_not_woken(world: RouteWorld) -> None:
    data = load_payload("status")
    run_id = await world.waiting_run(1, data["sha"])
    (run,) = await world.runs()
    await world.store.save(run_id, "DONE_FAILED_CANCELLED", run.state, True, 1, owner=None)
    await world.dispatch("status", data)
    assert await world.jobs(run_id) == []
