"""Whole runs end to end: label an issue in the simulator, Autopack drives the run to its end."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.backlog import AgingRules, effective_severity
from app.domain.issue_record import Severity
from app.domain.run_state import RunStatus
from app.github.commits import parse_trailers
from app.store.backlogs import BacklogStore
from tests.engine.harness import FILES, REPO, autopack, ruleset
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub

PLAN = """Make widgets better.

## Tier 1: groundwork
- [ ] Add the settings module
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low mode=tweak_light}
"""


async def test_happy_path_two_tiers_three_phases(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "data") as h:
        issue = await h.start_run(PLAN)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    repo = fakegithub.repo(REPO)
    branch = f"heads/{run.branch}"
    files = repo.files(branch)
    assert files["work/T1_P1.txt"].startswith(b"Add the settings module")
    assert files["work/T2_P1.txt"].startswith(b"Describe it in the README")
    assert f".autonomous_runs/{run.id}/RUN_SUMMARY.md" in files
    assert f".autonomous_runs/{run.id}/strategy.json" in files
    # Exactly one commit per phase attempt (plus the artefacts), and main never written.
    phases = [parse_trailers(c.message).get("Autopack-Phase") for c in repo.commits(branch)]
    assert phases[:4] == ["artefacts", "T2.P1", "T1.P2", "T1.P1"]
    assert repo.files("heads/main") == {
        **{k: v.encode() for k, v in FILES.items()},
        ".github/autopack.yml": repo.files("heads/main")[".github/autopack.yml"],
    }
    assert all(r.path != f"/repos/{REPO}/git/refs/heads/main" for r in fakegithub.request_log)
    # Snapshots of green phases.
    for phase in ("T1.P1", "T1.P2", "T2.P1"):
        assert repo.ref(f"tags/autopack/{run.id}/{phase}") is not None
    # What the maintainer sees.
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    assert ours[-1].conclusion == "success"
    assert ours[-1].head_sha == repo.ref(branch)
    (pull,) = repo.pulls
    assert pull.pull is not None
    assert not pull.pull.draft
    assert pull.pull.head_ref == run.branch
    assert f"Refs #{issue}" in (pull.body or "")
    comments = repo.comments(issue)
    assert len([c for c in comments if f"autopack:run:{run.id}" in c.body]) == 1
    labels = {label.name for label in repo.issues[issue].labels}
    assert "autopack:done" in labels
    assert "autopack:running" not in labels


ONE = "Do one thing.\n\n- [ ] Add the settings module\n"


async def test_ci_red_then_green_gives_the_builder_the_failure(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d", ci=CIScript.fail_times(2)) as h:
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    phase = env.state.phases[0]
    assert phase.builder_attempts == 2
    assert any("tests" in entry or "lint" in entry for entry in phase.feedback)
    content = fakegithub.repo(REPO).files(f"heads/{run.branch}")["work/T1_P1.txt"]
    assert b"attempt 2" in content
    assert b"feedback: 0" not in content  # the second attempt was told why the first failed


async def test_ci_always_red_escalates_then_needs_a_human(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("auditor: reviewer\nbudgets: {phase: {max_builder_attempts: 2}}\n")
    async with autopack(
        fakegithub, engine, tmp_path / "d", ci=CIScript.always_fail(), ruleset_text=rules
    ) as h:
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    phase = env.state.phases[0]
    assert phase.builder_attempts == 2
    assert phase.auditor_attempts == 1
    repo = fakegithub.repo(REPO)
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    assert ours[-1].conclusion == "failure"
    assert [a["identifier"] for a in ours[-1].actions] == ["autopack-retry"]
    (pull,) = repo.pulls
    assert pull.pull is not None
    assert pull.pull.draft  # not eligible for promotion: stays a draft
    assert "autopack:failed" in {label.name for label in repo.issues[issue].labels}
    incident = repo.files(f"heads/{run.branch}")[f".autonomous_runs/{run.id}/INCIDENT.md"]
    assert b"DONE_FAILED_REQUIRES_HUMAN_REVIEW" in incident


async def test_token_cap_ends_the_run_as_budget_exhausted(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("budgets: {run: {token_cap: 1500}}\n")
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        ruleset_text=rules,
        builder_env={"TEST_BUILDER_TOKENS": "1000"},
    ) as h:
        issue = await h.start_run(PLAN)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_BUDGET_EXHAUSTED.value
    assert env.state.tokens <= 1500 + 1000  # at most the one attempt in flight over the cap


async def test_gate_violation_ends_the_run_and_pushes_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Add the key [secret]\n")
        run, _ = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_POLICY_VIOLATION.value
    repo = fakegithub.repo(REPO)
    files = repo.files(f"heads/{run.branch}")
    assert "work/T1_P1.txt" not in files
    assert not any(b"PRIVATE KEY-----\nMII" in content for content in files.values())


async def test_github_down_ends_the_run_as_environment(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        fakegithub.faults.fail_next(1000, status=503, path_prefix=f"/repos/{REPO}/git/trees")
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
        fakegithub.faults.clear()
    assert run.status == RunStatus.DONE_FAILED_ENVIRONMENT.value
    assert "503" in env.state.terminal_reason or "PushChange" in env.state.terminal_reason


async def test_cancel_mid_phase_stops_the_builder(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Take your time [slow]\n")

        async def building() -> bool:
            run = await h.run_of(issue)
            return run is not None and run.status == RunStatus.PHASE_EXECUTION.value

        await h.until(building)
        await fakegithub.label_issue(REPO, issue, "autopack:cancel", sender="alice")
        async with asyncio.timeout(20):  # far less than the builder's minute of sleep
            run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_CANCELLED.value
    assert env.state.phases[0].status.value == "failed"


async def test_senders_without_write_permission_are_refused(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        number = await fakegithub.open_issue(REPO, "Do it", ONE, user="mallory")
        await fakegithub.label_issue(REPO, number, "autopack:run", sender="mallory")
        body = await h.comment_containing(number, "write access")
        assert "@mallory" in body
        assert await h.run_of(number) is None


async def test_plan_preview_runs_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        number = await fakegithub.open_issue(REPO, "Plan it", PLAN, user="alice")
        await fakegithub.comment(REPO, number, "/autopack plan", sender="alice")
        answer = await h.comment_containing(number, "Autopack plan")
        assert "Add the settings module" in answer
        assert "docs / low / tweak_light" in answer
        assert await h.run_of(number) is None
        assert len(fakegithub.repo(REPO).check_runs) == 0


async def test_flaky_check_passes_on_rerun_and_is_recorded(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d", ci=CIScript.flaky()) as h:
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    phase = env.state.phases[0]
    assert phase.builder_attempts == 1
    assert {key for key, _ in phase.issues} >= {"ci:flaky:tests"}


async def test_duplicated_and_reordered_webhooks_change_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        fakegithub.faults.duplicate_next = 50
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    commits = fakegithub.repo(REPO).commits(f"heads/{run.branch}")
    phases = [parse_trailers(c.message).get("Autopack-Phase") for c in commits]
    assert phases.count("T1.P1") == 1
    assert len(await h.store.list_runs(repository=REPO)) == 1


async def test_lost_ci_webhooks_are_caught_by_polling(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        fakegithub.subscribed_events.discard("check_run")
        fakegithub.subscribed_events.discard("check_suite")
        issue = await h.start_run(ONE)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert not [d for d in fakegithub.deliveries if d.event in ("check_run", "check_suite")]


async def test_issues_age_in_the_backlog_across_runs(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("aging: {minor_to_major_after_runs: 1, minor_to_major_after_tiers: 1}\n")
    async with autopack(
        fakegithub, engine, tmp_path / "d", ci=CIScript.flaky(), ruleset_text=rules
    ) as h:
        issue = await h.start_run(ONE)
        first, _ = await h.finished(issue)
        backlog = await BacklogStore(engine).get(REPO)
        entry = backlog.get("ci:flaky:tests")
        assert entry is not None
        assert (entry.age_in_runs, entry.last_seen_run) == (1, first.id)
        # The same problem again in a second run of the issue: it ages and now counts as major.
        await fakegithub.unlabel_issue(REPO, issue, "autopack:run", sender="alice")
        await fakegithub.label_issue(REPO, issue, "autopack:run", sender="alice")

        async def second_done() -> bool:
            runs = await h.store.list_runs(repository=REPO)
            return len(runs) == 2 and all(run.terminal for run in runs)

        await h.until(second_done)
        backlog = await BacklogStore(engine).get(REPO)
    entry = backlog.get("ci:flaky:tests")
    assert entry is not None
    assert entry.age_in_runs == 2
    aging = AgingRules(minor_to_major_after_runs=1, minor_to_major_after_tiers=1)
    assert effective_severity(entry, aging) is Severity.MAJOR


async def test_out_of_order_webhooks_change_nothing(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        number = await fakegithub.open_issue(REPO, "Reordered", ONE, user="alice")
        # The label and a comment arrive newest first; CI deliveries are reordered too.
        fakegithub.faults.reorder_next = 2
        await fakegithub.comment(REPO, number, "Looks good", sender="alice")
        await fakegithub.label_issue(REPO, number, "autopack:run", sender="alice")
        fakegithub.release_held()
        fakegithub.faults.reorder_next = 4
        run, env = await h.finished(number)
        fakegithub.release_held()
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert len(await h.store.list_runs(repository=REPO)) == 1
