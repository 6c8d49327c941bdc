"""run_triggers: labels, commands and edits on an issue, dispatched through the routing table."""

from __future__ import annotations

import json
from typing import Any

from app.domain.triggers import CANCEL_LABEL, RUN_LABEL
from app.engine.envelope import Envelope
from app.store.jobs import JobKind
from tests.engine.routes.conftest import READER, REPO, WRITER, RouteWorld

ISSUE = f"/repos/{REPO}/issues/1"


def permission(login: str) -> tuple[str, str]:
    return "GET", f"/repos/{REPO}/collaborators/{login}/permission"


def labelled(world: RouteWorld, label: str, action: str = "labeled") -> dict[str, Any]:
    data = world.example(f"issues.{action}")
    data["label"]["name"] = label
    return data


def by(data: dict[str, Any], login: str) -> dict[str, Any]:
    data["sender"]["login"] = login
    return data


async def started(world: RouteWorld) -> str:
    """Issue #1 labelled `autopack:run` by a writer: the id of the run it started."""
    await world.open_issue(RUN_LABEL)
    await world.dispatch("issues", labelled(world, RUN_LABEL))
    (run,) = await world.runs()
    return run.id


async def test_the_example_label_drives_nothing(world: RouteWorld) -> None:
    await world.open_issue("bug")
    assert await world.dispatch("issues", world.example("issues.labeled")) == []
    assert await world.runs() == []


async def test_the_run_label_creates_the_run_as_labelled_and_queues_its_start(
    world: RouteWorld,
) -> None:
    await world.open_issue(RUN_LABEL)
    data = labelled(world, RUN_LABEL)
    calls = await world.dispatch("issues", data)
    assert [call.line for call in calls] == [permission(WRITER), ("GET", ISSUE)]
    (run,) = await world.runs()
    assert (run.id, run.branch, run.status) == (
        "Codertocat-Hello-World-1-1",
        "autopack/issue-1-run-1",
        "PLAN_BOOTSTRAP",
    )
    envelope = Envelope.loads(run.state)
    facts = envelope.memo.facts
    # The plan is the issue as the delivery carried it, vouched for by its sender.
    assert (facts.plan_title, facts.plan_body) == (data["issue"]["title"], data["issue"]["body"])
    assert facts.labelled_by == WRITER
    assert [type(effect).__name__ for effect in envelope.pending] == ["CompileStrategy"]
    (job,) = await world.jobs(run.id)
    assert job.kind is JobKind.KICK


async def test_the_same_labelling_again_starts_no_second_run(world: RouteWorld) -> None:
    run_id = await started(world)
    calls = await world.dispatch("issues", labelled(world, RUN_LABEL))
    assert [call.line for call in calls] == [permission(WRITER)]  # the active run answers
    assert [run.id for run in await world.runs()] == [run_id]
    assert len(await world.jobs(run_id)) == 1


async def test_a_reader_is_refused_once_and_starts_nothing(world: RouteWorld) -> None:
    await world.open_issue(RUN_LABEL)
    calls = await world.dispatch("issues", by(labelled(world, RUN_LABEL), READER))
    assert [call.line for call in calls] == [permission(READER), ("POST", f"{ISSUE}/comments")]
    assert calls[-1].body["body"].startswith(f"@{READER} only people with write access")
    assert "(your permission: read)" in calls[-1].body["body"]
    again = await world.dispatch("issues", by(labelled(world, RUN_LABEL), READER))
    assert [call.line for call in again] == [permission(READER)]  # once per window
    assert await world.runs() == []


async def test_unlabelling_the_run_or_labelling_cancel_queues_a_cancel(world: RouteWorld) -> None:
    run_id = await started(world)
    for data in (labelled(world, RUN_LABEL, "unlabeled"), labelled(world, CANCEL_LABEL)):
        calls = await world.dispatch("issues", data)
        assert [call.line for call in calls] == [permission(WRITER)]
    cancels = [job for job in await world.jobs(run_id) if job.kind is JobKind.EVENT]
    assert [(job.event_type, json.loads(job.payload)["by"]) for job in cancels] == [
        ("Cancelled", WRITER),
        ("Cancelled", WRITER),
    ]


async def test_closing_the_issue_cancels_its_run(world: RouteWorld) -> None:
    run_id = await started(world)
    closed = world.example("issues.opened")  # GitHub publishes no issues.closed example
    closed["action"], closed["issue"]["state"] = "closed", "closed"
    await world.dispatch("issues", closed)
    (cancel,) = [job for job in await world.jobs(run_id) if job.kind is JobKind.EVENT]
    assert json.loads(cancel.payload)["reason"] == "issue closed"


async def test_a_cancel_without_a_run_asks_github_nothing(world: RouteWorld) -> None:
    await world.open_issue()
    assert await world.dispatch("issues", labelled(world, RUN_LABEL, "unlabeled")) == []


def edited(world: RouteWorld, login: str) -> dict[str, Any]:
    data = by(world.example("issues.edited"), login)
    data["changes"] = {"body": {"from": data["issue"]["body"]}}
    data["issue"]["body"] = "Delete the README instead."
    data["issue"]["labels"].append({**data["issue"]["labels"][0], "name": RUN_LABEL})
    return data


async def test_an_outsiders_edit_of_the_plan_stops_the_run_and_says_why(
    world: RouteWorld,
) -> None:
    run_id = await started(world)
    assert [call.line for call in await world.dispatch("issues", edited(world, WRITER))] == [
        permission(WRITER)
    ]
    assert [job.kind for job in await world.jobs(run_id)] == [JobKind.KICK]
    calls = await world.dispatch("issues", edited(world, READER))
    assert [call.line for call in calls] == [permission(READER), ("POST", f"{ISSUE}/comments")]
    assert calls[-1].body["body"].startswith(f"Autopack cancelled run `{run_id}`: @{READER}")
    cancel = (await world.jobs(run_id))[-1]
    assert cancel.event_type == "Cancelled"
    assert json.loads(cancel.payload)["by"] == "Autopack"


def commented(world: RouteWorld, body: str) -> dict[str, Any]:
    data = world.example("issue_comment.created")
    data["comment"]["body"] = body
    return data


async def test_the_example_comment_drives_nothing(world: RouteWorld) -> None:
    await world.open_issue()
    assert await world.dispatch("issue_comment", world.example("issue_comment.created")) == []


async def test_plan_answers_with_the_compiled_plan_and_starts_nothing(world: RouteWorld) -> None:
    await world.open_issue()
    calls = await world.dispatch("issue_comment", commented(world, "/autopack plan"))
    head = world.sim.repo(REPO).ref("heads/main")
    assert [call.line for call in calls] == [
        permission(WRITER),
        ("GET", ISSUE),
        ("GET", f"/repos/{REPO}"),
        ("GET", f"/repos/{REPO}/git/ref/heads/main"),
        ("GET", f"/repos/{REPO}/contents/.github/autopack.yml?ref={head}"),
        ("POST", f"{ISSUE}/comments"),
    ]
    answer = calls[-1].body["body"]
    assert answer.startswith("**Autopack plan** (nothing is run;")
    assert "builder `default`" in answer
    assert await world.runs() == []


async def test_cancel_command_queues_a_cancel_of_the_active_run(world: RouteWorld) -> None:
    run_id = await started(world)
    calls = await world.dispatch("issue_comment", commented(world, "/autopack cancel"))
    assert [call.line for call in calls] == [permission(WRITER)]
    assert [job.event_type for job in await world.jobs(run_id)] == ["", "Cancelled"]
