"""bootstrap: CompileStrategy, CreateBranch and QueuePhases, the run's first effects."""

from __future__ import annotations

import pytest

from app.domain.effects import CompileStrategy, CreateBranch, QueuePhases
from app.domain.events import (
    BranchReady,
    EnvironmentFailed,
    PhasesQueued,
    StrategyReady,
    StrategyRejected,
)
from app.domain.ruleset import RULESET_PATH
from tests.engine.effects.conftest import BRANCH, REPO, EffectWorld
from tests.engine.recorded import writes

RULESET = f"/repos/{REPO}/contents/{RULESET_PATH}"


async def test_compile_reads_the_repository_and_freezes_the_plan_as_labelled(
    world: EffectWorld,
) -> None:
    head = world.sim.repo(REPO).ref("heads/main")
    done = await world.carry_out(world.start(), CompileStrategy)
    assert [call.line for call in done.calls] == [
        ("GET", f"/repos/{REPO}"),
        ("GET", f"/repos/{REPO}/git/ref/heads/main"),
        ("GET", f"{RULESET}?ref={head}"),  # 404: no ruleset, the defaults hold
    ]
    assert isinstance(done.event, StrategyReady)
    strategy = done.event.strategy
    assert (strategy.run_id, strategy.branch) == (world.ctx.record.id, BRANCH)
    assert [phase.title for phase in strategy.phases] == ["Phase one"]
    facts = done.env.memo.facts
    assert (facts.issue_title, facts.default_branch) == ("Build the thing", "main")
    # Carried out again after a crash: the same strategy, and nothing written on GitHub.
    again = await world.carry_out(world.start(), CompileStrategy)
    assert again.event == done.event
    assert writes(done.calls + again.calls) == []


async def test_compile_refuses_a_ruleset_naming_a_builder_the_operator_lacks(
    world: EffectWorld,
) -> None:
    await world.sim.push(REPO, "main", {RULESET_PATH: "builder: claude\n"})
    done = await world.carry_out(world.start(), CompileStrategy)
    assert isinstance(done.event, StrategyRejected)
    assert "builder profile 'claude'" in done.event.reason
    assert writes(done.calls) == []


async def test_compile_asks_the_planner_for_a_plan_and_throws_its_tree_away(
    world: EffectWorld,
) -> None:
    world.plan_with("planner")
    done = await world.carry_out(world.start("Just a wish, no checklist."), CompileStrategy)
    assert isinstance(done.event, StrategyReady)
    assert [tier.title for tier in done.event.strategy.tiers] == ["groundwork", "polish"]
    assert done.event.planner_tokens == 700
    assert (world.tree() / "README.md").read_text() == "# widgets\n"  # the scribble is gone
    assert len([call for call in done.calls if "/tarball/" in call.path]) == 1
    assert writes(done.calls) == []


async def test_create_branch_makes_the_ref_once_at_the_default_head(world: EffectWorld) -> None:
    step = world.start().then(StrategyReady(world.strategy()))
    main = world.sim.repo(REPO).ref("heads/main")
    done = await world.carry_out(step, CreateBranch)
    assert [call.line for call in writes(done.calls)] == [("POST", f"/repos/{REPO}/git/refs")]
    assert writes(done.calls)[0].body == {"ref": f"refs/heads/{BRANCH}", "sha": main}
    assert done.event == BranchReady(main)
    assert world.sim.repo(REPO).ref(f"heads/{BRANCH}") == main
    memo = done.env.memo
    assert (memo.facts.default_branch, memo.facts.protected) == ("main", ())
    assert memo.tip.head_tree  # the next push builds on it
    assert memo.clocks.started_at == world.clock.now
    # Carried out again: GitHub answers 422, the branch is where it should be, no new ref.
    refs = dict(world.sim.repo(REPO).refs)
    again = await world.carry_out(step, CreateBranch)
    assert again.event == done.event
    assert world.sim.repo(REPO).refs == refs


async def test_create_branch_never_moves_a_branch_someone_else_made(world: EffectWorld) -> None:
    theirs = await world.sim.push(REPO, BRANCH, {"theirs.txt": "not Autopack's\n"})
    step = world.start().then(StrategyReady(world.strategy()))
    done = await world.carry_out(step, CreateBranch)
    assert isinstance(done.event, EnvironmentFailed)
    assert "refusing to force" in done.event.reason
    assert world.sim.repo(REPO).ref(f"heads/{BRANCH}") == theirs
    assert "PATCH" not in [call.method for call in done.calls]


@pytest.mark.parametrize("protected", [True, False])
async def test_create_branch_notes_the_protected_branches(
    world: EffectWorld, protected: bool
) -> None:
    if protected:
        world.sim.repo(REPO).protected.add("release")
    await world.sim.push(REPO, "release", {"r.txt": "1\n"})
    step = world.start().then(StrategyReady(world.strategy()))
    done = await world.carry_out(step, CreateBranch)
    assert done.env.memo.facts.protected == (("release",) if protected else ())


async def test_queue_phases_has_nothing_to_do_at_the_edge(world: EffectWorld) -> None:
    step = world.start().then(StrategyReady(world.strategy()), BranchReady("sha0"))
    done = await world.carry_out(step, QueuePhases)
    assert (done.event, done.calls, done.env) == (PhasesQueued(), [], step.env)
