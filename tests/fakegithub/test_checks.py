"""Priority 5: check runs with GitHub's validation, suites, annotations, actions, rerequests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakegithub.receiver import Receiver
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.testkit import api, first_installation

REPO = "/repos/acme/widgets"


@pytest.fixture
def sim(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> FakeGitHub:
    fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    fakegithub.webhook_url = webhook_receiver.url
    return fakegithub


def _head(sim: FakeGitHub) -> str:
    sha = sim.repo("acme/widgets").ref("heads/main")
    assert sha is not None
    return sha


def _annotation(**over: Any) -> dict[str, Any]:
    base = {
        "path": "a.py",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "warning",
        "message": "m",
    }
    return {**base, **over}


def _action(**over: Any) -> dict[str, Any]:
    return {"label": "Retry", "description": "Run it again", "identifier": "retry", **over}


OK_OUTPUT = {"title": "t", "summary": "s"}
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("no name", {"name": None}),
    ("no head_sha", {"head_sha": None}),
    ("unknown head_sha", {"head_sha": "0" * 40}),
    ("bad status", {"status": "running"}),
    ("actions-only status waiting", {"status": "waiting"}),
    ("actions-only status requested", {"status": "requested"}),
    ("actions-only status pending", {"status": "pending"}),
    ("completed without conclusion", {"status": "completed"}),
    ("bad conclusion", {"conclusion": "passed"}),
    ("action_required without details_url", {"conclusion": "action_required"}),
    ("output without summary", {"output": {"title": "t"}}),
    ("output without title", {"output": {"summary": "s"}}),
    ("summary too long", {"output": {"title": "t", "summary": "x" * 65536}}),
    ("text too long", {"output": {**OK_OUTPUT, "text": "x" * 65536}}),
    ("51 annotations", {"output": {**OK_OUTPUT, "annotations": [_annotation()] * 51}}),
    (
        "annotation without path",
        {"output": {**OK_OUTPUT, "annotations": [_annotation(path=None) | {}]}},
    ),
    (
        "annotation bad level",
        {"output": {**OK_OUTPUT, "annotations": [_annotation(annotation_level="error")]}},
    ),
    ("4 actions", {"actions": [_action()] * 4}),
    ("label of 21", {"actions": [_action(label="x" * 21)]}),
    ("description of 41", {"actions": [_action(description="x" * 41)]}),
    ("identifier of 21", {"actions": [_action(identifier="x" * 21)]}),
]
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("minimal", {}),
    ("in progress", {"status": "in_progress"}),
    ("conclusion implies completed", {"status": "in_progress", "conclusion": "success"}),
    ("action_required with details", {"conclusion": "action_required", "details_url": "https://x"}),
    ("summary at the limit", {"output": {"title": "t", "summary": "x" * 65535}}),
    ("50 annotations", {"output": {**OK_OUTPUT, "annotations": [_annotation()] * 50}}),
    (
        "3 actions at the limits",
        {"actions": [_action(label="x" * 20, description="y" * 40, identifier="z" * 20)] * 3},
    ),
]


def _body(sim: FakeGitHub, over: dict[str, Any]) -> dict[str, Any]:
    body = {"name": "autopack", "head_sha": _head(sim), **over}
    for key in ("name", "head_sha"):
        if body[key] is None:
            del body[key]
    for item in body.get("output", {}).get("annotations", []):
        if item.get("path") is None:
            item.pop("path", None)
    return body


@pytest.mark.parametrize(("case", "over"), REFUSED, ids=[c for c, _ in REFUSED])
async def test_refused_like_github(sim: FakeGitHub, case: str, over: dict[str, Any]) -> None:
    async with api(sim, first_installation(sim)) as gh:
        status, body = await gh.post(f"{REPO}/check-runs", _body(sim, over))
    assert status == 422, case
    assert set(body) >= {"message", "documentation_url"}
    assert sim.repo("acme/widgets").check_runs == []


@pytest.mark.parametrize(("case", "over"), ACCEPTED, ids=[c for c, _ in ACCEPTED])
async def test_accepted_like_github(sim: FakeGitHub, case: str, over: dict[str, Any]) -> None:
    async with api(sim, first_installation(sim)) as gh:
        status, body = await gh.post(f"{REPO}/check-runs", _body(sim, over))
    assert status == 201, (case, body)
    if "conclusion" in over:
        assert body["status"] == "completed"


async def test_update_completion_and_events(sim: FakeGitHub, webhook_receiver: Receiver) -> None:
    async with api(sim, first_installation(sim)) as gh:
        _, run = await gh.post(f"{REPO}/check-runs", _body(sim, {"status": "in_progress"}))
        status, body = await gh.patch(f"{REPO}/check-runs/{run['id']}", {"status": "completed"})
        assert status == 422
        status, body = await gh.patch(
            f"{REPO}/check-runs/{run['id']}",
            {
                "conclusion": "failure",
                "output": {**OK_OUTPUT, "annotations": [_annotation()] * 2},
                "actions": [_action()],
            },
        )
        assert (status, body["status"], body["output"]["annotations_count"]) == (
            200,
            "completed",
            2,
        )
        _, notes = await gh.get(f"{REPO}/check-runs/{run['id']}/annotations")
        assert [n["path"] for n in notes] == ["a.py", "a.py"]
        _, listed = await gh.get(f"{REPO}/commits/main/check-runs?check_name=autopack")
        assert [r["id"] for r in listed["check_runs"]] == [run["id"]]
        _, none = await gh.get(f"{REPO}/commits/main/check-runs?status=queued")
        assert none["total_count"] == 0
        _, suites = await gh.get(f"{REPO}/commits/main/check-suites")
        assert suites["check_suites"][0]["conclusion"] == "failure"
    await sim.click_action(run["id"], "retry", sender="alice")
    await sim.rerequest_check_run(run["id"], sender="alice")
    await sim.idle()
    assert webhook_receiver.events() == [
        ("check_run", "created"),
        ("check_run", "completed"),
        ("check_suite", "completed"),
        ("check_run", "requested_action"),
        ("check_run", "rerequested"),
    ]
    clicked = webhook_receiver.received[3].payload
    assert clicked["requested_action"] == {"identifier": "retry"}
    assert clicked["sender"]["login"] == "alice"
    assert webhook_receiver.received[0].payload["sender"]["login"] == "autopack[bot]"


async def test_only_the_owning_app_may_update(sim: FakeGitHub) -> None:
    from tests.fakegithub.state import Installation

    ci_inst = Installation(999, sim.ci_app.id, sim.world.user("acme"), None)
    sim.world.installations[ci_inst.id] = ci_inst
    async with api(sim, first_installation(sim)) as gh:
        _, run = await gh.post(f"{REPO}/check-runs", _body(sim, {}))
    async with api(sim, ci_inst) as ci:
        status, _ = await ci.patch(f"{REPO}/check-runs/{run['id']}", {"conclusion": "success"})
    assert status == 403
    assert sim.calls("PATCH")[0].app == "ci"


async def test_click_unknown_action_is_an_error(sim: FakeGitHub) -> None:
    async with api(sim, first_installation(sim)) as gh:
        _, run = await gh.post(f"{REPO}/check-runs", _body(sim, {}))
    with pytest.raises(KeyError):
        await sim.click_action(run["id"], "nope")
