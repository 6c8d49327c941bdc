"""CI reads and re-runs against the simulator: values, calls, and GitHub's refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from app.domain.ci import CIState, interpret
from app.github.ci_status import (
    ACTIONS_SLUG,
    RerunRefused,
    RerunRequest,
    check_runs_for,
    commit_parent,
    rerun_suite,
    statuses_for,
)
from app.github.client import GitHubApp, InstallationClient, RateLimited
from tests.fakegithub.ci import FLAKY, PASS, CIScript
from tests.fakegithub.core import RequestRecord
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"
ACTIONS = "acme/gadgets"
STATUSES = "acme/jenkins"


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient

    def api_calls(self) -> list[RequestRecord]:
        """Requests made as the installation (token requests excluded)."""
        return [r for r in self.sim.request_log if r.app == "autopack"]

    async def push(self, repo: str) -> str:
        sha = await self.sim.push(repo, "autopack/issue-1-run-1", {"src/app.py": "print(2)\n"})
        await self.sim.idle()
        return sha


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst, ci=CIScript.flaky())
    actions = CIScript({"tests": FLAKY, "lint": PASS}).through("actions")
    fakegithub.create_repo(ACTIONS, installation=inst, ci=actions)
    fakegithub.create_repo(STATUSES, installation=inst, ci=CIScript.flaky().through("statuses"))
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        yield Env(fakegithub, app.installation(inst.id))


async def test_check_runs_latest_and_all_with_a_flaky_rerun(env: Env) -> None:
    sha = await env.push(REPO)
    first = await check_runs_for(env.gh, REPO, sha)
    assert sorted((r.name, r.conclusion) for r in first) == [
        ("lint", "failure"),
        ("tests", "failure"),
    ]
    assert all(r.app_id == env.sim.ci_app.id and r.suite_id for r in first)
    assert {r.app_slug for r in first} == {"fake-ci"}
    tests = next(r for r in first if r.name == "tests")
    assert (tests.title, tests.summary) == ("tests: failure", "tests failure (attempt 1)")
    assert tests.text == "log of tests, attempt 1: failure"
    assert tests.details_url.startswith("https://ci.example.invalid/")
    assert interpret(first, own_app_id=env.sim.app.id).state is CIState.RED
    suite_id = first[0].suite_id
    assert suite_id is not None
    await rerun_suite(env.gh, REPO, sha, suite_id, "fake-ci")
    await env.sim.idle()
    latest = await check_runs_for(env.gh, REPO, sha)
    everything = await check_runs_for(env.gh, REPO, sha, include_reruns=True)
    assert sorted((r.name, r.conclusion) for r in latest) == [
        ("lint", "success"),
        ("tests", "success"),
    ]
    assert len(everything) == 4
    assert {r.id for r in latest} < {r.id for r in everything}
    assert interpret(everything, own_app_id=env.sim.app.id).state is CIState.GREEN
    queries = [r.query for r in env.api_calls() if r.path.endswith("/check-runs")]
    assert ["filter=all" in q for q in queries] == [False, False, True]
    assert env.sim.calls("POST", f"/repos/{REPO}/check-suites/{suite_id}/rerequest")
    assert not env.sim.calls("GET", f"/repos/{REPO}/actions/")


async def test_check_runs_paginate(env: Env) -> None:
    sha = env.sim.repo(REPO).ref("heads/main")
    assert sha is not None
    for i in range(105):
        await env.gh.post(
            f"/repos/{REPO}/check-runs",
            data={"name": f"c{i}", "head_sha": sha, "status": "queued"},
        )
    before = len(env.api_calls())
    runs = await check_runs_for(env.gh, REPO, sha)
    assert len(runs) == 105
    assert {r.app_id for r in runs} == {env.sim.app.id}
    assert len(env.api_calls()) - before == 2


async def test_statuses_are_the_newest_per_context(env: Env) -> None:
    sha = await env.push(STATUSES)
    found = await statuses_for(env.gh, STATUSES, sha)
    assert sorted((s.context, s.state) for s in found) == [
        ("lint", "failure"),
        ("tests", "failure"),
    ]
    tests = next(s for s in found if s.context == "tests")
    assert tests.description == "tests: failure"
    assert tests.target_url.startswith("https://ci.example.invalid/")
    assert interpret([], found, own_app_id=env.sim.app.id).state is CIState.RED
    # Every status is kept; the combined view shows the newest per context only.
    assert len([s for s in env.sim.repo(STATUSES).statuses if s.sha == sha]) == 4


async def test_statuses_paginate(env: Env) -> None:
    sha = env.sim.repo(REPO).ref("heads/main")
    assert sha is not None
    for i in range(101):
        await env.gh.post(
            f"/repos/{REPO}/statuses/{sha}", data={"state": "success", "context": f"ci/{i}"}
        )
    before = len(env.api_calls())
    found = await statuses_for(env.gh, REPO, sha)
    assert len({s.context for s in found}) == 101
    assert len(env.api_calls()) - before == 2


async def test_commit_parent(env: Env) -> None:
    main = env.sim.repo(REPO).ref("heads/main")
    sha = await env.push(REPO)
    assert await commit_parent(env.gh, REPO, sha) == main
    assert main is not None
    assert await commit_parent(env.gh, REPO, main) is None


async def _actions_suite(env: Env, sha: str) -> int:
    runs = await check_runs_for(env.gh, ACTIONS, sha)
    assert {r.app_slug for r in runs} == {ACTIONS_SLUG}
    suite_id = runs[0].suite_id
    assert suite_id is not None
    return suite_id


async def test_an_actions_suite_is_rerun_through_the_actions_api(env: Env) -> None:
    sha = await env.push(ACTIONS)
    suite_id = await _actions_suite(env, sha)
    await rerun_suite(env.gh, ACTIONS, sha, suite_id, ACTIONS_SLUG)
    await env.sim.idle()
    (listing,) = env.sim.calls("GET", f"/repos/{ACTIONS}/actions/runs")
    assert f"check_suite_id={suite_id}" in listing.query
    (workflow_run,) = env.sim.repo(ACTIONS).workflow_runs.values()
    assert env.sim.calls(
        "POST", f"/repos/{ACTIONS}/actions/runs/{workflow_run.id}/rerun-failed-jobs"
    )
    assert not env.sim.calls("POST", f"/repos/{ACTIONS}/check-suites/")
    assert workflow_run.run_attempt == 2
    runs = await check_runs_for(env.gh, ACTIONS, sha, include_reruns=True)
    # Only the failed job ran again; the passing one kept its single run.
    assert sorted((r.name, r.conclusion) for r in runs) == [
        ("lint", "success"),
        ("tests", "failure"),
        ("tests", "success"),
    ]


@pytest.mark.parametrize(
    ("refusal", "shown"),
    [
        ((403, "Resource not accessible by integration"), "HTTP 403: Resource not accessible"),
        ((422, "Unable to re-run this workflow run"), "HTTP 422: Unable to re-run"),
    ],
)
async def test_a_refused_actions_rerun_says_why(
    env: Env, refusal: tuple[int, str], shown: str
) -> None:
    repo = env.sim.repo(ACTIONS)
    repo.ci = CIScript({"tests": FLAKY}, rerun_refusal=refusal).through("actions")
    sha = await env.push(ACTIONS)
    suite_id = await _actions_suite(env, sha)
    with pytest.raises(RerunRefused, match=f"check suite {suite_id} \\({shown}"):
        await rerun_suite(env.gh, ACTIONS, sha, suite_id, ACTIONS_SLUG)
    assert len(env.sim.calls("POST", f"/repos/{ACTIONS}/actions/runs/")) == 1  # not retried


async def test_rerunning_a_workflow_run_that_is_still_running_is_no_refusal(env: Env) -> None:
    gate = asyncio.Event()
    repo = env.sim.repo(ACTIONS)
    repo.ci = CIScript({"tests": FLAKY}, rerun_gate=gate).through("actions")
    sha = await env.push(ACTIONS)
    suite_id = await _actions_suite(env, sha)
    first = await rerun_suite(env.gh, ACTIONS, sha, suite_id, ACTIONS_SLUG)
    again = await rerun_suite(env.gh, ACTIONS, sha, suite_id, ACTIONS_SLUG)
    assert (first, again) == (RerunRequest.STARTED, RerunRequest.ALREADY_RUNNING)
    posts = env.sim.calls("POST", f"/repos/{ACTIONS}/actions/runs/")
    assert [call.status for call in posts] == [201, 403]
    gate.set()
    await env.sim.idle()
    (workflow_run,) = repo.workflow_runs.values()
    assert workflow_run.run_attempt == 2


@pytest.mark.parametrize(
    "message",
    [
        "This workflow is already running",
        "The workflow run containing this job is already running",
    ],
)
async def test_githubs_already_running_answers_are_recognised(env: Env, message: str) -> None:
    repo = env.sim.repo(ACTIONS)
    repo.ci = CIScript({"tests": FLAKY}, rerun_refusal=(403, message)).through("actions")
    sha = await env.push(ACTIONS)
    suite_id = await _actions_suite(env, sha)
    answer = await rerun_suite(env.gh, ACTIONS, sha, suite_id, ACTIONS_SLUG)
    assert answer is RerunRequest.ALREADY_RUNNING


async def test_a_suite_without_a_workflow_run_is_refused(env: Env) -> None:
    sha = await env.push(REPO)
    (suite,) = env.sim.repo(REPO).suites.values()
    with pytest.raises(RerunRefused, match="no GitHub Actions workflow run"):
        await rerun_suite(env.gh, REPO, sha, suite.id, ACTIONS_SLUG)


async def test_a_rate_limit_is_not_a_refusal(env: Env) -> None:
    sha = await env.push(REPO)
    (suite,) = env.sim.repo(REPO).suites.values()
    await check_runs_for(env.gh, REPO, sha)  # the installation token is fetched (and cached)
    env.sim.rate_limits.set_limit(0)
    with pytest.raises(RateLimited):
        await rerun_suite(env.gh, REPO, sha, suite.id, "fake-ci")
