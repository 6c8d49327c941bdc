"""Whole runs for the playbook's rules: builder routing, best-effort debt cleanup, clean
safety-critical tiers, issue aging by the tiers an issue was seen in, and learned rules."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.backlog import AgingRules, Backlog, BacklogEntry
from app.domain.issue_record import Severity
from app.domain.report_backlog import BACKLOG_TITLE
from app.domain.ruleset import load_ruleset
from app.domain.run_state import PhaseStatus, RunStatus
from app.store.backlogs import BacklogStore
from app.store.progress import ProgressStore
from app.web.readmodel import ReadModel
from tests.engine.harness import REPO, autopack, ruleset
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import Issue

ROUTED = ruleset("builders: {default: default, tweak_light: cheap}\n")
TWO_PHASES = "- [ ] Add the settings module\n- [ ] Fix the typo in it {mode=tweak_light}\n"


def backlog_issue(issues: dict[int, Issue]) -> Issue:
    (issue,) = [i for i in issues.values() if i.title == BACKLOG_TITLE]
    return issue


async def test_a_mode_routed_to_a_second_profile_runs_that_profile(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        ruleset_text=ROUTED,
        builder_env={"TEST_BUILDER_PROFILE": "default", "TEST_BUILDER_TOKENS": "700"},
        extra_builders={"cheap": {"TEST_BUILDER_PROFILE": "cheap", "TEST_BUILDER_TOKENS": "90"}},
    ) as h:
        number = await fakegithub.open_issue(REPO, "Plan it", TWO_PHASES, user="alice")
        await fakegithub.comment(REPO, number, "/autopack plan", sender="alice")
        preview = await h.comment_containing(number, "Autopack plan")
        issue = await h.start_run(TWO_PHASES)
        run, env = await h.finished(issue)
        report = await ReadModel(engine).budget_report(repository=REPO)
        detail = await ReadModel(engine).run_detail(run.id)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    # The builders' own output says which profile ran each phase.
    files = fakegithub.repo(REPO).files(f"heads/{run.branch}")
    assert b"profile: default\n" in files["work/T1_P1.txt"]
    assert b"profile: cheap\n" in files["work/T1_P2.txt"]
    strategy = env.state.strategy
    assert strategy is not None
    assert [p.builder_profile for p in strategy.phases] == ["default", "cheap"]
    # /autopack plan said so before anything ran.
    rows = [line for line in preview.splitlines() if line.startswith("| T1 |")]
    assert ["`default`" in rows[0], "`cheap`" in rows[1]] == [True, True]
    # Each attempt keeps its profile; the budget report sums the spend per profile.
    assert detail is not None
    assert [(a["phase_id"], a["profile"]) for a in detail["attempts"]] == [
        ("T1.P1", "default"),
        ("T1.P2", "cheap"),
    ]
    spend = {(p["profile"], p["role"]): (p["attempts"], p["tokens"]) for p in report["profiles"]}
    assert spend == {("default", "builder"): (1, 700), ("cheap", "builder"): (1, 90)}


async def test_a_route_to_a_profile_repositories_may_not_name_is_refused(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("builders: {tweak_light: ghost}\n")
    async with autopack(fakegithub, engine, tmp_path / "d", ruleset_text=rules) as h:
        number = await fakegithub.open_issue(REPO, "Plan it", TWO_PHASES, user="alice")
        await fakegithub.comment(REPO, number, "/autopack plan", sender="alice")
        answer = await h.comment_containing(number, "would not start a run")
        assert "'ghost' (builders.tweak_light)" in answer
        assert await h.run_of(number) is None


def aged(key: str, category: str = "style") -> BacklogEntry:
    """A minor issue earlier runs kept seeing: past the default thresholds."""
    return BacklogEntry(
        key, category, Severity.MINOR, 4, 4, 6, "earlier-1", "earlier-4", "2026-11-01T00:00:00Z"
    )


async def test_a_failed_debt_cleanup_does_not_fail_the_work_asked_for(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    key = "lint:[fail-debt]:unused-import"  # the cleanup's builder cannot fix it
    await BacklogStore(engine).put(REPO, Backlog((aged(key),), last_run="earlier-4"))
    plan = "## Tier 1: groundwork\n- [ ] Add the settings module\n## Tier 2: docs\n- [ ] Doc it\n"
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run(plan)
        run, env = await h.finished(issue)
        backlog = await BacklogStore(engine).get(REPO)
    state = env.state
    assert run.status == RunStatus.DONE_SUCCESS.value, state.terminal_reason
    assert [(p.phase_id, p.status) for p in state.phases] == [
        ("T1.P1", PhaseStatus.GREEN),
        ("T2.P1", PhaseStatus.GREEN),
        ("T2.DEBT", PhaseStatus.FAILED),
    ]
    assert "debt cleanup (T2.DEBT) did not succeed" in state.terminal_reason
    repo = fakegithub.repo(REPO)
    # Nothing of the cleanup landed, so the green work is ready for review.
    assert "work/T2_DEBT.txt" not in repo.files(f"heads/{run.branch}")
    pull = next(i for i in repo.issues.values() if i.pull is not None)
    assert pull.pull is not None
    assert not pull.pull.draft
    # The issue stays in the backlog and keeps aging (one run, the cleanup's one tier).
    entry = backlog.get(key)
    assert entry is not None
    assert (entry.age_in_runs, entry.age_in_tiers, entry.last_seen_run) == (5, 5, run.id)
    # The backlog issue suggests the ruleset change that would have prevented it; the snippet
    # is valid against the ruleset schema.
    body = backlog_issue(repo.issues).body or ""
    assert "## 💡 Suggested ruleset changes (1)" in body
    (snippet,) = re.findall(r"```yaml\n(.*?)\n```", body, re.DOTALL)
    assert load_ruleset(snippet).aging.minor_to_major_after_runs == 5
    assert load_ruleset(f"{ruleset()}{snippet}\n")  # pasted into the repository's file


async def test_a_safety_critical_run_with_a_tier_not_clean_does_not_succeed(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset(
        "safety_profile: safety_critical\nbudgets: {tier: {minor_per_phase_safety_critical: 0}}\n"
    )
    plan = "## Tier 1\n- [ ] Add the settings module [issue]\n## Tier 2\n- [ ] Document it\n"
    async with autopack(fakegithub, engine, tmp_path / "d", ruleset_text=rules) as h:
        issue = await h.start_run(plan)
        run, env = await h.finished(issue)
    state = env.state
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    assert state.terminal_reason == (
        "Tier T1 is not clean in a safety-critical run: 1 minor issue(s), tolerance 0."
    )
    assert state.phases[0].status is PhaseStatus.GREEN  # its work is on the branch...
    assert state.phases[1].status is PhaseStatus.SKIPPED  # ...and nothing was built on it
    repo = fakegithub.repo(REPO)
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    assert ours[-1].conclusion == "failure"
    pull = next(i for i in repo.issues.values() if i.pull is not None)
    assert pull.pull is not None
    assert pull.pull.draft


async def test_an_issue_ages_only_by_the_tiers_it_was_seen_in_under_the_repository_thresholds(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("aging: {minor_to_major_after_runs: 5, minor_to_major_after_tiers: 7}\n")
    plan = (
        "## Tier 1\n- [ ] Add the settings module [issue]\n"
        "## Tier 2\n- [ ] Add the loader\n## Tier 3\n- [ ] Document it\n"
    )
    async with autopack(fakegithub, engine, tmp_path / "d", ruleset_text=rules) as h:
        issue = await h.start_run(plan)
        run, env = await h.finished(issue)
        backlog = await BacklogStore(engine).get(REPO)
        api = await ReadModel(engine).repo_backlog(REPO)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert len(env.state.tiers) == 3
    entry = backlog.get("builder:todo:T1_P1")
    assert entry is not None
    assert (entry.age_in_runs, entry.age_in_tiers) == (1, 1)  # seen in one tier of three
    # The repository's own thresholds, kept with the backlog, are what the API and the issue use.
    assert backlog.aging == AgingRules(5, 7)
    assert api["aging"] == {"minor_to_major_after_runs": 5, "minor_to_major_after_tiers": 7}
    body = backlog_issue(fakegithub.repo(REPO).issues).body or ""
    assert "a minor issue seen in more than 5 runs or more than 7 tiers counts as major" in body
    assert "after 5 more runs or 7 more tiers" in body


async def test_a_pre_push_review_is_spent_by_the_auditor_profile_not_the_builder(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("auditor: reviewer\n")
    plan = "- [ ] Rotate the session keys {category=security_auth}\n"
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        ruleset_text=rules,
        auditor_env={"AUDITOR_VERDICT": "approve"},
    ) as h:
        run, env = await h.finished(await h.start_run(plan))
        attempts = await ProgressStore(engine).attempts(run.id)
        spend = await ProgressStore(engine).spend_by_profile(repository=REPO)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    (attempt,) = attempts
    assert (attempt.profile, attempt.review_profile) == ("default", "reviewer")
    assert (attempt.tokens, attempt.review_tokens) == (1001, 1)  # the review is part of it
    assert [(s.profile, s.role, s.attempts, s.runs, s.tokens) for s in spend] == [
        ("default", "builder", 1, 1, 1000),
        ("reviewer", "reviewer", 1, 1, 1),
    ]
