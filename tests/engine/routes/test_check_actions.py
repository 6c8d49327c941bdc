"""check_actions: the "Retry run" button on Autopack's check run, dispatched through the table."""

from __future__ import annotations

from typing import Any

from app.domain.triggers import RETRY_ACTION, RUN_LABEL
from app.engine.envelope import Envelope
from app.store.jobs import JobKind
from tests.engine.routes.conftest import REPO, RouteWorld

CLICKER = "codebytere"  # the example's sender


def retry(world: RouteWorld, external_id: str) -> dict[str, Any]:
    """The example click, on a check run of this App in the simulator's repository."""
    data = world.example("check_run.requested_action")
    data["repository"]["full_name"] = REPO
    data["check_run"]["app"]["id"] = world.sim.app.id
    data["check_run"]["external_id"] = external_id
    data["requested_action"]["identifier"] = RETRY_ACTION
    return data


async def finished_run(world: RouteWorld) -> str:
    """Issue #1's first run, started by a label and since failed."""
    await world.open_issue(RUN_LABEL)
    labelled = world.example("issues.labeled")
    labelled["label"]["name"] = RUN_LABEL
    await world.dispatch("issues", labelled)
    (run,) = await world.runs()
    await world.store.save(
        run.id, "DONE_FAILED_ENVIRONMENT", run.state, True, run.version, owner=None
    )
    return run.id


async def test_the_example_click_on_another_apps_check_run_does_nothing(
    world: RouteWorld,
) -> None:
    calls = await world.dispatch("check_run", world.example("check_run.requested_action"))
    assert calls == []
    assert await world.runs() == []


async def test_retry_starts_the_next_run_with_the_previous_plan(world: RouteWorld) -> None:
    first = await finished_run(world)
    world.sim.set_permission(REPO, CLICKER, "write")
    # The issue's description changed since: the retry still follows the plan as labelled.
    world.sim.repo(REPO).issues[1].body = "Something else entirely."
    calls = await world.dispatch("check_run", retry(world, f"{REPO}#1/{first}"))
    assert [call.line for call in calls] == [
        ("GET", f"/repos/{REPO}/collaborators/{CLICKER}/permission"),
        ("GET", f"/repos/{REPO}/issues/1"),
    ]
    second, earlier = await world.runs()
    assert (earlier.id, second.run_number, second.branch) == (first, 2, "autopack/issue-1-run-2")
    facts = Envelope.loads(second.state).memo.facts
    assert facts.plan_body == Envelope.loads(earlier.state).memo.facts.plan_body
    assert [job.kind for job in await world.jobs(second.id)] == [JobKind.KICK]


async def test_retry_by_someone_without_write_access_is_refused(world: RouteWorld) -> None:
    first = await finished_run(world)
    world.sim.set_permission(REPO, CLICKER, "triage")
    calls = await world.dispatch("check_run", retry(world, f"{REPO}#1/{first}"))
    assert calls[-1].line == ("POST", f"/repos/{REPO}/issues/1/comments")
    assert "(your permission: read)" in calls[-1].body["body"]  # triage reads as read
    assert [run.id for run in await world.runs()] == [first]


async def test_retry_on_a_check_run_naming_no_issue_does_nothing(world: RouteWorld) -> None:
    await finished_run(world)
    assert await world.dispatch("check_run", retry(world, "autopack-config")) == []
    assert len(await world.runs()) == 1
