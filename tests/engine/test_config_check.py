"""The "Autopack config" check run on pushes and fork pull requests that change the ruleset."""

from __future__ import annotations

import copy
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.config_feedback import CHECK_NAME
from app.domain.ruleset import RULESET_PATH
from app.store.inbox import Inbox
from tests.conftest import load_payload
from tests.engine.harness import REPO, Harness, autopack
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import CheckRun

BAD = "builder: default\nbudgts: {}\nrun_scope: multi\nauditor: nobody\n"


def _config_checks(sim: FakeGitHub, sha: str | None = None) -> list[CheckRun]:
    runs = [r for r in sim.repo(REPO).check_runs if r.name == CHECK_NAME]
    return [r for r in runs if sha is None or r.head_sha == sha]


async def _checked(h: Harness, sha: str) -> CheckRun:
    async def present() -> bool:
        return bool(_config_checks(h.sim, sha))

    await h.until(present)
    (run,) = _config_checks(h.sim, sha)
    return run


async def test_a_push_with_problems_gets_a_failed_check_listing_each_with_annotations(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        sha = await fakegithub.push(REPO, "tune", {RULESET_PATH: BAD}, sender="alice")
        run = await _checked(h, sha)
        # The same push processed again (a worker that died before marking it done) finds the
        # check run it made: still one.
        push = next(d for d in fakegithub.deliveries if d.event == "push")
        await fakegithub.deliver("push", push.payload)
        await h.until(lambda: _inbox_drained(h))
        assert len(_config_checks(fakegithub, sha)) == 1
    assert run.status == "completed"
    assert run.conclusion == "failure"
    assert run.output["title"] == f"3 problems in {RULESET_PATH}"
    summary = run.output["summary"]
    assert "line 2: budgts: unknown key 'budgts' (did you mean 'budgets'?)" in summary
    assert "line 3: run_scope:" in summary
    assert "line 4: auditor: 'nobody' is not an auditor profile" in summary
    assert "yaml-language-server: $schema=" in summary
    levels = {(a["start_line"], a["annotation_level"]) for a in run.annotations}
    assert levels == {(2, "failure"), (3, "failure"), (4, "warning")}
    assert {a["path"] for a in run.annotations} == {RULESET_PATH}


async def _inbox_drained(h: Harness) -> bool:
    counts = await Inbox(h.engine).counts()
    return not counts.get("pending") and not counts.get("processing") and bool(counts)


async def test_a_valid_change_succeeds_and_other_pushes_get_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        other = await fakegithub.push(REPO, "docs", {"README.md": "# widgets!\n"})
        good = await fakegithub.push(REPO, "tune", {RULESET_PATH: "builder: default\n"})
        run = await _checked(h, good)
    assert run.conclusion == "success"
    assert run.output["title"] == f"{RULESET_PATH} is valid"
    assert _config_checks(fakegithub, other) == []
    # The README push was answered and dropped by the webhook endpoint: never stored.
    readme_push = next(d for d in fakegithub.deliveries if d.payload.get("after") == other)
    assert "cannot drive a run" in readme_push.response_body


async def test_a_fork_pull_request_is_compared_with_its_base(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        repo = fakegithub.repo(REPO)
        base = repo.ref("heads/main")
        assert base is not None
        # Commits a fork made: their objects are shared with the base repository, but no push
        # event reaches this repository's App.
        fakegithub.subscribed_events.discard("push")
        same = await fakegithub.push(REPO, "fork-a", {"README.md": "# from a fork\n"})
        changed = await fakegithub.push(REPO, "fork-b", {RULESET_PATH: "builder: nope\n"})
        fakegithub.subscribed_events.add("push")
        for number, head in ((7, same), (8, changed)):
            await fakegithub.deliver("pull_request", _fork_pull(fakegithub, number, head, base))
        run = await _checked(h, changed)
        await h.until(lambda: _inbox_drained(h))
    assert run.conclusion == "failure"
    assert "'nope' is not a builder profile" in run.output["summary"]
    assert "did you mean" not in run.output["summary"]
    assert _config_checks(fakegithub, same) == []


def _fork_pull(sim: FakeGitHub, number: int, head: str, base: str) -> dict[str, object]:
    payload = copy.deepcopy(load_payload("pull_request.opened"))
    repo = sim.repo(REPO)
    inst = sim.world.installation_for(sim.app.id, repo)
    assert inst is not None
    payload["number"] = number
    payload["repository"]["full_name"] = REPO
    payload["installation"] = {"id": inst.id, "node_id": "x"}
    payload["sender"] = {"login": "forker", "type": "User", "id": 1}
    pull = payload["pull_request"]
    pull["head"]["sha"], pull["base"]["sha"] = head, base
    pull["head"]["repo"]["full_name"] = "forker/widgets"
    pull["base"]["repo"]["full_name"] = REPO
    return payload


async def test_no_file_and_no_default_profile_is_said_at_push_and_at_plan_time(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d", builder_name="claude") as h:
        removed = await fakegithub.push(REPO, "main", {RULESET_PATH: None}, sender="alice")
        run = await _checked(h, removed)
        number = await fakegithub.open_issue(REPO, "Try", "- [ ] One thing\n", user="alice")
        await fakegithub.comment(REPO, number, "/autopack plan", sender="alice")
        answer = await h.comment_containing(number, "would not start a run")
    expected = (
        "This repository has no `.github/autopack.yml`, so runs use the builder profile "
        "`default`, which this Autopack deployment does not define. Add the file with "
        "`builder: <profile>` naming one of its profiles (`claude`), or ask the operator to "
        "define `[builders.default]` in AUTOPACK_CONFIG."
    )
    assert run.conclusion == "failure"
    assert expected in run.output["summary"]
    assert run.annotations == []  # no line to point at
    assert expected in answer
