"""Whole runs against a GitHub that blips: transient failures are retried, writes stay single, and
a run ends as an environment failure only when the retries are spent, naming the call."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.github.commits import parse_trailers
from tests.engine.harness import REPO, autopack
from tests.fakegithub.scenario import FakeGitHub

PLAN = "## Tier 1\n- [ ] Add the settings module\n- [ ] Add the loader\n"
GIT = f"/repos/{REPO}/git/"


def _phases_on_branch(sim: FakeGitHub, branch: str) -> list[str]:
    """The Autopack-Phase trailer of each commit on the branch, newest first."""
    commits = sim.repo(REPO).commits(f"heads/{branch}")
    return [parse_trailers(c.message).get("Autopack-Phase", "") for c in commits]


async def test_a_503_on_the_tarball_and_the_first_git_writes_is_retried(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    faults = fakegithub.faults
    faults.fail_next(1, 503, f"/repos/{REPO}/tarball")
    faults.fail_next(1, 503, "/_codeload/")
    faults.fail_next(1, 503, GIT + "trees")
    faults.fail_next(1, 503, GIT + "commits")
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run(PLAN)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    served = [r for r in fakegithub.request_log if r.status == 503]
    assert len(served) == 4  # every fault was hit, and each was followed by a retry
    phases = _phases_on_branch(fakegithub, run.branch)
    assert phases[:3] == ["artefacts", "T1.P2", "T1.P1"]  # one commit per phase


async def test_answers_lost_after_the_write_leave_one_commit_per_phase(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    faults = fakegithub.faults
    faults.lose_response_next(1, GIT + "commits")
    faults.lose_response_next(1, GIT + "refs/heads/")
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run(PLAN)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    lost = [r for r in fakegithub.request_log if r.status == 502]
    assert len(lost) == 2
    phases = _phases_on_branch(fakegithub, run.branch)
    assert phases[:3] == ["artefacts", "T1.P2", "T1.P1"]


async def test_when_the_retries_are_spent_the_report_names_the_call(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    fakegithub.faults.fail_next(10, 503, f"/repos/{REPO}/tarball")
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run(PLAN)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_ENVIRONMENT.value
    reason = env.state.terminal_reason
    assert f"GET /repos/{REPO}/tarball/" in reason
    assert "HTTP 503" in reason
    assert "gave up after 4 tries" in reason
    ours = [c for c in fakegithub.repo(REPO).check_runs if c.name == "Autopack"]
    assert f"/repos/{REPO}/tarball/" in (ours[-1].output.get("summary") or "")


async def test_lost_answers_to_creates_make_no_second_check_run_comment_or_issue(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    # GitHub does not de-duplicate these creates: a blind repeat would make a second one.
    faults = fakegithub.faults
    faults.lose_response_next(1, f"/repos/{REPO}/check-runs", method="POST")
    faults.lose_response_next(1, f"/repos/{REPO}/issues/1/comments", method="POST")
    faults.lose_response_next(1, f"/repos/{REPO}/issues", method="POST")
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Add the settings module [issue]\n")
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert len([r for r in fakegithub.request_log if r.status == 502]) == 3
    repo = fakegithub.repo(REPO)
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    assert all(c.status == "completed" for c in ours)  # none left spinning forever
    assert len({c.head_sha for c in ours}) == len(ours)  # one per head
    marked = [c for c in repo.comments(issue) if f"autopack:run:{run.id}" in c.body]
    assert len(marked) == 1
    backlog = [n for n, i in repo.issues.items() if "Autopack backlog" in i.title]
    assert len(backlog) == 1
