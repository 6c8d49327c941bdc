"""ruleset_check: pushes and fork pull requests that change `.github/autopack.yml` get the
"Autopack config" check run on their commit, once."""

from __future__ import annotations

from typing import Any

from app.domain.config_feedback import CHECK_NAME
from app.domain.ruleset import RULESET_PATH
from app.engine.config_check import EXTERNAL_ID
from tests.engine.routes.conftest import REPO, RouteWorld

BAD = "builder: default\nbudgts: {}\n"
CONTENTS = f"/repos/{REPO}/contents/{RULESET_PATH}"


def pushed(world: RouteWorld, sha: str, branch: str = "tune") -> dict[str, Any]:
    """The example push, of commit `sha` to `branch`, listing the ruleset as modified."""
    data = world.example("push")
    data["ref"], data["after"] = f"refs/heads/{branch}", sha
    data["commits"][0]["modified"] = [RULESET_PATH]
    return data


def from_fork(world: RouteWorld, action: str, head: str, base: str) -> dict[str, Any]:
    """The example pull request event, its head a fork's commit `head` on `base`."""
    data = world.example(f"pull_request.{action}")
    pull = data["pull_request"]
    pull["head"]["repo"]["full_name"] = "forker/Hello-World"
    pull["head"]["sha"], pull["base"]["sha"] = head, base
    return data


async def test_the_example_push_changes_no_ruleset_and_asks_nothing(world: RouteWorld) -> None:
    assert await world.dispatch("push", world.example("push")) == []


async def test_a_push_changing_the_ruleset_gets_one_completed_check_run(
    world: RouteWorld,
) -> None:
    sha = await world.sim.push(REPO, "tune", {RULESET_PATH: BAD})
    calls = await world.dispatch("push", pushed(world, sha))
    runs = f"/repos/{REPO}/commits/{sha}/check-runs"
    assert [call.line for call in calls] == [
        ("GET", f"{CONTENTS}?ref={sha}"),
        ("GET", f"{runs}?check_name={CHECK_NAME}&filter=all&per_page=100"),
        ("POST", f"/repos/{REPO}/check-runs"),
    ]
    body = calls[-1].body
    assert (body["name"], body["head_sha"], body["external_id"]) == (CHECK_NAME, sha, EXTERNAL_ID)
    assert (body["status"], body["conclusion"]) == ("completed", "failure")
    assert "budgts: unknown key 'budgts'" in body["output"]["summary"]
    assert [a["start_line"] for a in body["output"]["annotations"]] == [2]
    # The same push again (a redelivery, or a worker that died before finishing it).
    again = await world.dispatch("push", pushed(world, sha))
    assert [call.method for call in again] == ["GET", "GET"]
    assert len(world.sim.repo(REPO).check_runs) == 1


async def test_the_example_pull_request_from_the_repository_is_left_to_its_push(
    world: RouteWorld,
) -> None:
    assert await world.dispatch("pull_request", world.example("pull_request.opened")) == []


async def test_a_fork_pull_request_is_checked_only_when_it_changes_the_ruleset(
    world: RouteWorld,
) -> None:
    base = world.sim.repo(REPO).ref("heads/main")
    assert base is not None
    same = await world.sim.push(REPO, "fork-a", {"README.md": "# from a fork\n"})
    changed = await world.sim.push(REPO, "fork-b", {RULESET_PATH: BAD})
    for action in ("opened", "reopened", "synchronize"):
        calls = await world.dispatch("pull_request", from_fork(world, action, same, base))
        assert [call.line for call in calls] == [
            ("GET", f"{CONTENTS}?ref={same}"),
            ("GET", f"{CONTENTS}?ref={base}"),
        ], action
    calls = await world.dispatch("pull_request", from_fork(world, "synchronize", changed, base))
    assert calls[-1].line == ("POST", f"/repos/{REPO}/check-runs")
    assert (calls[-1].body["head_sha"], calls[-1].body["conclusion"]) == (changed, "failure")
