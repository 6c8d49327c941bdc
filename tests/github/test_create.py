"""Creates GitHub does not de-duplicate happen once, whatever becomes of the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import gidgethub
import pytest

from app.github.checks import CheckRunOutput, create_check_run
from app.github.client import GitHubApp, InstallationClient
from app.github.comments import post_comment
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient
    sha: str

    def posts(self, path: str) -> list[int]:
        return [r.status for r in self.sim.request_log if r.method == "POST" and r.path == path]


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    repo = fakegithub.create_repo(REPO, installation=inst)
    sha = repo.ref("heads/main")
    assert sha is not None
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(
            session,
            fakegithub.url,
            fakegithub.app.id,
            fakegithub.app.private_key_pem,
            sleep=_no_sleep,
        )
        yield Env(fakegithub, app.installation(inst.id), sha)


async def _no_sleep(_seconds: float) -> None:
    return None


async def _check_run(env: Env) -> int:
    output = CheckRunOutput("t", "s")
    return await create_check_run(env.gh, REPO, env.sha, "Autopack", "ext-1", output)


async def test_a_lost_answer_finds_the_check_run_it_made(env: Env) -> None:
    env.sim.faults.lose_response_next(1, f"/repos/{REPO}/check-runs", method="POST")
    made = await _check_run(env)
    runs = env.sim.repo(REPO).check_runs
    assert [run.id for run in runs] == [made]
    assert env.posts(f"/repos/{REPO}/check-runs") == [502]  # looked, did not post again


async def test_a_refused_create_is_posted_again(env: Env) -> None:
    env.sim.faults.fail_next(1, 503, f"/repos/{REPO}/check-runs")
    made = await _check_run(env)
    assert [run.id for run in env.sim.repo(REPO).check_runs] == [made]
    assert env.posts(f"/repos/{REPO}/check-runs") == [503, 201]


async def test_a_create_that_keeps_failing_raises_naming_the_call(env: Env) -> None:
    env.sim.faults.fail_next(5, 503, f"/repos/{REPO}/check-runs")
    with pytest.raises(gidgethub.GitHubBroken) as caught:
        await _check_run(env)
    assert f"GitHub call: POST /repos/{REPO}/check-runs" in caught.value.__notes__
    assert env.sim.repo(REPO).check_runs == []
    assert len(env.posts(f"/repos/{REPO}/check-runs")) == 3


async def test_a_lost_answer_finds_the_comment_it_made(env: Env) -> None:
    number = await env.sim.open_issue(REPO, "Something", "body", user="alice")
    path = f"/repos/{REPO}/issues/{number}/comments"
    env.sim.faults.lose_response_next(1, path, method="POST")
    made = await post_comment(env.gh, REPO, number, "hello there")
    comments = env.sim.repo(REPO).comments(number)
    assert [c.id for c in comments] == [made]
    assert env.posts(path) == [502]
