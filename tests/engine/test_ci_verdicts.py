"""Whole runs against CI that is slow, flaky, status-only, Actions-based or missing a check.

Each test drives a run through the simulator and reads the verdicts Autopack took from its event
log: a verdict must rest on what CI reported, never on what had not arrived yet.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.events import CIFinished, CIResult, event_from_json
from app.domain.run_state import RunStatus
from app.engine.envelope import Envelope
from app.store.runs import EventKind, RunRecord
from tests.engine.harness import REPO, Harness, autopack, ruleset
from tests.fakegithub.ci import ALWAYS_FAIL, FLAKY, PASS, CIScript, gone_after
from tests.fakegithub.scenario import FakeGitHub

ONE = "Do one thing.\n\n- [ ] Add the settings module\n"
ONE_ATTEMPT = ruleset("budgets: {phase: {max_builder_attempts: 1}}\n")


async def verdicts(h: Harness, run: RunRecord) -> list[CIFinished]:
    """The CI verdicts the run received, in order."""
    found = []
    for entry in await h.store.events(run.id):
        if entry.kind is EventKind.EVENT and entry.name == "CIFinished":
            event = event_from_json(json.loads(entry.payload))
            assert isinstance(event, CIFinished)
            found.append(event)
    return found


async def one_run(
    sim: FakeGitHub,
    engine: AsyncEngine,
    data_dir: Path,
    ci: CIScript,
    rules: str | None = None,
    **options: Any,
) -> tuple[RunRecord, Envelope, list[CIFinished]]:
    """Run the one-phase plan to its end: the run, its final envelope and its CI verdicts."""
    async with autopack(sim, engine, data_dir, ci=ci, ruleset_text=rules, **options) as h:
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
        return run, env, await verdicts(h, run)


def outcomes(found: list[CIFinished]) -> list[tuple[int, CIResult]]:
    return [(event.rerun, event.result) for event in found]


async def test_red_ci_stays_red_when_its_rerun_appears_late(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    ci = CIScript({"tests": ALWAYS_FAIL, "lint": PASS}, rerun_delay=1.0)
    run, env, found = await one_run(fakegithub, engine, tmp_path / "d", ci, ONE_ATTEMPT)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    assert outcomes(found) == [(0, CIResult.RED), (1, CIResult.RED)]
    rerun = found[1]
    assert rerun.failed_checks == ("tests",)
    assert "tests failure (attempt 2)" in rerun.output  # judged on the late re-run itself
    assert len(fakegithub.calls("POST", f"/repos/{REPO}/check-suites/")) == 1
    repo = fakegithub.repo(REPO)
    assert repo.ref(f"tags/autopack/{run.id}/T1.P1") is None  # never landed
    assert env.state.phases[0].status.value == "failed"


async def test_a_flaky_check_is_a_flake_once_its_late_rerun_passed(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    ci = CIScript({"tests": FLAKY, "lint": PASS}, rerun_delay=0.5)
    run, env, found = await one_run(fakegithub, engine, tmp_path / "d", ci)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert outcomes(found) == [(0, CIResult.RED), (1, CIResult.GREEN)]
    assert found[1].flaky_checks == ("tests",)
    phase = env.state.phases[0]
    assert (phase.builder_attempts, dict(phase.issues).get("ci:flaky:tests")) == (1, "minor")
    assert "ci:flaky:lint" not in dict(phase.issues)


async def test_a_red_commit_status_fails_the_phase(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    ci = CIScript({"ci/jenkins": ALWAYS_FAIL, "ci/lint": PASS}).through("statuses")
    run, env, found = await one_run(fakegithub, engine, tmp_path / "d", ci, ONE_ATTEMPT)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    assert outcomes(found) == [(0, CIResult.RED), (1, CIResult.RED)]
    red, refused = found
    assert red.failed_checks == ("ci/jenkins",)
    assert "### ci/jenkins (commit status: failure)" in red.output
    assert "ci/jenkins: failure" in red.output
    assert "https://ci.example.invalid/" in red.output
    assert refused.summary.startswith("re-run refused: commit status contexts cannot be re-run")
    phase = env.state.phases[0]
    assert "ci:none" not in dict(phase.issues)  # statuses are CI: never "no CI"
    assert any("ci/jenkins" in entry for entry in phase.feedback)


async def test_green_commit_statuses_land_the_phase_woken_by_their_webhooks(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    ci = CIScript.pass_(names=("ci/jenkins", "ci/lint")).through("statuses")
    rules = "builder: default\nci: {start_timeout_minutes: 10}\n"
    # Polling only every ten minutes: the run can only move on the `status` webhooks.
    run, env, found = await one_run(
        fakegithub, engine, tmp_path / "d", ci, rules, ci_poll_seconds=600
    )
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert outcomes(found) == [(0, CIResult.GREEN)]
    assert found[0].summary == "CI green: 2 passed"
    stored = [d for d in fakegithub.deliveries if d.event == "status" and d.status_code == 202]
    answers = {(d.payload["state"], json.loads(d.response_body)["outcome"]) for d in stored}
    assert answers == {("pending", "ignored"), ("success", "queued")}
    assert fakegithub.repo(REPO).ref(f"tags/autopack/{run.id}/T1.P1") is not None


STRICT = """Do one risky thing.

- [ ] Rework the settings module {complexity=high}
"""


async def test_strict_waits_for_a_base_check_that_never_reports_then_times_out(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    # e2e ran on the branch's first commit (the phase's base) and never reports again.
    ci = CIScript({"tests": PASS, "e2e": gone_after(1)})
    rules = (
        "builder: default\nci: {start_timeout_minutes: 1, finish_timeout_minutes: 5}\n"
        "budgets: {phase: {max_builder_attempts: 1}}\n"
    )
    async with autopack(fakegithub, engine, tmp_path / "d", ci=ci, ruleset_text=rules) as h:
        issue = await h.start_run(STRICT)
        sha = await awaited_commit(h, issue)
        await fakegithub.idle()
        repo = fakegithub.repo(REPO)
        ci_runs = [r for r in repo.check_runs if r.app_id == fakegithub.ci_app.id]
        parent = repo.git.get_commit(sha).parents[0]
        assert {r.name for r in ci_runs if r.head_sha == parent} == {"tests", "e2e"}
        assert [(r.name, r.conclusion) for r in ci_runs if r.head_sha == sha] == [
            ("tests", "success")
        ]
        # Autopack looks again and again after `tests` passed, and keeps waiting.
        polls = len(fakegithub.calls("GET", f"/repos/{REPO}/commits/{sha}/check-runs"))
        await h.until(lambda: _more_polls(fakegithub, sha, polls + 2))
        run = await h.run_of(issue)
        assert run is not None
        assert run.status == RunStatus.CI_RUNNING.value
        h.clock.advance(6 * 60)  # past the finish timeout
        run, env = await h.finished(issue)
        found = await verdicts(h, run)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    assert outcomes(found) == [(0, CIResult.TIMED_OUT)]
    assert found[0].failed_checks == ("e2e",)
    assert "Not reported or not finished: e2e" in found[0].output
    watch = env.memo.ci
    assert watch is not None
    assert (watch.base_sha, watch.expected) == (parent, ("e2e", "tests"))
    assert fakegithub.repo(REPO).ref(f"tags/autopack/{run.id}/T1.P1") is None


async def awaited_commit(h: Harness, issue: int) -> str:
    """The commit the issue's run waits on CI for, once it waits."""
    sha = ""

    async def waiting() -> bool:
        nonlocal sha
        run = await h.run_of(issue)
        if run is None or run.status != RunStatus.CI_RUNNING.value:
            return False
        awaiting = Envelope.loads(run.state).state.awaiting
        sha = awaiting.sha if awaiting is not None else ""
        return bool(sha)

    await h.until(waiting)
    return sha


async def _more_polls(sim: FakeGitHub, sha: str, at_least: int) -> bool:
    return len(sim.calls("GET", f"/repos/{REPO}/commits/{sha}/check-runs")) >= at_least


async def test_an_actions_suite_is_rerun_through_the_actions_api(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    ci = CIScript({"tests": FLAKY, "lint": PASS}).through("actions")
    run, env, found = await one_run(fakegithub, engine, tmp_path / "d", ci)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert outcomes(found) == [(0, CIResult.RED), (1, CIResult.GREEN)]
    assert "ci:flaky:tests" in dict(env.state.phases[0].issues)
    repo = fakegithub.repo(REPO)
    (rerun,) = fakegithub.calls("POST", f"/repos/{REPO}/actions/runs/")
    workflow_run = next(r for r in repo.workflow_runs.values() if r.run_attempt == 2)
    assert rerun.path == f"/repos/{REPO}/actions/runs/{workflow_run.id}/rerun-failed-jobs"
    assert rerun.status == 201
    assert workflow_run.head_sha == found[0].sha
    assert not fakegithub.calls("POST", f"/repos/{REPO}/check-suites/")


async def test_a_rerun_github_refuses_is_red_with_the_reason(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    refusal = (403, "Resource not accessible by integration")
    ci = CIScript({"tests": FLAKY, "lint": PASS}, rerun_refusal=refusal).through("actions")
    run, env, found = await one_run(fakegithub, engine, tmp_path / "d", ci, ONE_ATTEMPT)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    assert outcomes(found) == [(0, CIResult.RED), (1, CIResult.RED)]
    refused = found[1]
    assert refused.summary.startswith("re-run refused: GitHub refused to re-run check suite")
    assert "(HTTP 403: Resource not accessible by integration)" in refused.summary
    assert refused.failed_checks == ("tests",)
    assert "### tests (check run: failure)" in refused.output
    phase = env.state.phases[0]
    assert any("Resource not accessible by integration" in entry for entry in phase.feedback)
    assert "ci:flaky:tests" not in dict(phase.issues)


async def test_a_rerun_asked_before_github_concluded_the_workflow_run_is_asked_again(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    # GitHub concludes a workflow run a moment after its last job: a re-run asked for in between
    # is answered 403 "This workflow is already running", which is no refusal.
    concluded = asyncio.Event()
    ci = CIScript({"tests": FLAKY, "lint": PASS}, conclusion_gate=concluded).through("actions")
    rerun_posts = f"/repos/{REPO}/actions/runs/"
    async with autopack(fakegithub, engine, tmp_path / "d", ci=ci) as h:
        issue = await h.start_run(ONE)

        async def refused_while_running() -> bool:
            return [c.status for c in fakegithub.calls("POST", rerun_posts)][:2] == [403, 403]

        await h.until(refused_while_running)  # asked, and asked again at the next look
        concluded.set()
        run, env = await h.finished(issue)
        found = await verdicts(h, run)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert outcomes(found) == [(0, CIResult.RED), (1, CIResult.GREEN)]
    assert found[1].flaky_checks == ("tests",)
    answers = [c.status for c in fakegithub.calls("POST", rerun_posts)]
    assert answers[-1] == 201  # accepted once, when the run had concluded
    assert set(answers[:-1]) == {403}
    runs = fakegithub.repo(REPO).workflow_runs.values()
    (phase_run,) = [r for r in runs if r.head_sha == found[0].sha]
    assert phase_run.run_attempt == 2
