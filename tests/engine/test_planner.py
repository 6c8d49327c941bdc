"""PLAN_BOOTSTRAP with the operator's planner profile: an issue without a checklist gets a plan."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.plan import has_checklist
from app.domain.run_state import RunStatus
from tests.engine.harness import REPO, autopack
from tests.fakegithub.scenario import FakeGitHub

WISH = "Make widgets configurable.\n\nSettings should live in one place and be documented."


async def test_the_planner_writes_the_plan_and_the_run_follows_it(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d", planner_env={}) as h:
        run, env = await h.finished(await h.start_run(WISH, title="Configurable widgets"))
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    strategy = env.state.strategy
    assert strategy is not None
    assert [(p.phase_id, p.title) for p in strategy.phases] == [
        ("T1.P1", "Add the settings module"),
        ("T1.P2", "Add the loader"),
        ("T2.P1", "Describe it in the README"),
    ]
    assert strategy.phase("T1.P1").description == "Put the defaults in one place."
    assert str(strategy.phase("T2.P1").task_category) == "docs"
    assert any("planner profile 'planner'" in w for w in strategy.plan_warnings)
    # The planner's 700 tokens count against the run, beside three builder attempts.
    assert env.state.tokens == 700 + 3 * 1000
    files = fakegithub.repo(REPO).files(f"heads/{run.branch}")
    assert files["README.md"] == b"# widgets\n"  # the planner's scribbles were thrown away
    assert "AUTOPACK_PLAN.md" not in files


async def test_a_written_checklist_wins_over_the_planner(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d", planner_env={}) as h:
        run, env = await h.finished(await h.start_run("- [ ] Only this\n"))
    assert run.status == RunStatus.DONE_SUCCESS.value
    assert env.state.strategy is not None
    assert [p.title for p in env.state.strategy.phases] == ["Only this"]
    assert env.state.tokens == 1000  # the planner was never asked


async def test_a_failing_planner_leaves_the_issue_as_one_phase_and_says_so(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(
        fakegithub, engine, tmp_path / "d", planner_env={"TEST_PLANNER_MODE": "fail"}
    ) as h:
        run, env = await h.finished(await h.start_run(WISH, title="Configurable widgets"))
    assert run.status == RunStatus.DONE_SUCCESS.value
    strategy = env.state.strategy
    assert strategy is not None
    assert [p.title for p in strategy.phases] == ["Configurable widgets"]
    (warning,) = [w for w in strategy.plan_warnings if "planner" in w]
    assert "gave no plan" in warning
    assert env.state.tokens == 300 + 1000


async def test_a_planner_answer_without_a_checklist_is_not_a_plan(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(
        fakegithub, engine, tmp_path / "d", planner_env={"TEST_PLANNER_MODE": "empty"}
    ) as h:
        run, env = await h.finished(await h.start_run(WISH, title="Configurable widgets"))
    assert env.state.strategy is not None
    assert [p.title for p in env.state.strategy.phases] == ["Configurable widgets"]
    assert any("no checklist" in w for w in env.state.strategy.plan_warnings)
    assert run.status == RunStatus.DONE_SUCCESS.value


def test_has_checklist_ignores_items_in_code_fences() -> None:
    assert has_checklist("intro\n- [ ] a phase\n")
    assert has_checklist("## Tier 1: x\n* [x] done already\n")
    assert not has_checklist("text only")
    assert not has_checklist("```\n- [ ] not a phase\n```\n")
    assert not has_checklist(None)
    assert not has_checklist("    - [ ] indented four: code, not an item\n")
