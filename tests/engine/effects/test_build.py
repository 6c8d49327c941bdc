"""build: RunBuilder, one builder attempt from the branch head, its change left in the tree."""

from __future__ import annotations

from app.domain.effects import RunBuilder
from app.domain.events import BuilderFinished, BuilderOutcome
from tests.engine.effects.conftest import REPO, RUN_ID, EffectWorld
from tests.engine.recorded import writes


async def test_an_attempt_builds_on_the_branch_head_and_keeps_its_evidence(
    world_db: EffectWorld,
) -> None:
    world = world_db
    step = await world.branched(world.strategy())
    head = step.env.state.head_sha
    done = await world.carry_out(step, RunBuilder)
    assert [call.line for call in done.calls] == [("GET", f"/repos/{REPO}/tarball/{head}")]
    assert done.event == BuilderFinished(
        "p1", 1, BuilderOutcome.OK, tokens_used=10, summary="wrote work/p1.txt"
    )
    tree = world.tree()
    assert (tree / "NOTES.md").read_text() == "integration\n"  # the branch head, not main
    assert (tree / "work" / "p1.txt").read_text().startswith("Phase p1\nattempt 1\n")
    assert done.env.memo.clocks.phase_started_at == world.clock.now
    evidence = world.ctx.services.evidence
    assert evidence is not None
    kept = await evidence.of_phase(RUN_ID, "p1")
    assert "+++ b/work/p1.txt" in kept.diff
    assert "building p1, attempt 1" in kept.builder_log


async def test_carried_out_again_it_starts_clean_and_writes_nothing_on_github(
    world: EffectWorld,
) -> None:
    step = await world.branched(world.strategy())
    first = await world.carry_out(step, RunBuilder)
    (world.tree() / "left-behind.txt").write_text("by the attempt before the crash\n")
    world.clock.now += 30
    again = await world.carry_out(step, RunBuilder)
    assert again.calls == []  # the base is kept: no second download
    assert again.event == first.event
    assert not (world.tree() / "left-behind.txt").exists()
    assert [change.path for change in world.ctx.workspace.compute_change().files] == ["work/p1.txt"]
    assert again.env.memo.clocks.phase_started_at == world.clock.now
    assert writes(first.calls + again.calls) == []


async def test_a_failing_builder_is_a_failed_attempt_and_a_retry_keeps_the_phase_clock(
    world: EffectWorld,
) -> None:
    strategy = world.titled(world.strategy(max_builder_attempts=2), "Phase p1 [fail]")
    step = await world.branched(strategy)
    done = await world.carry_out(step, RunBuilder)
    assert isinstance(done.event, BuilderFinished)
    assert (done.event.outcome, done.event.summary) == (BuilderOutcome.FAILED, "could not do it")
    started = done.env.memo.clocks.phase_started_at
    retry = done.step()
    assert retry.effect(RunBuilder).attempt == 2
    world.clock.now += 30
    second = await world.carry_out(retry, RunBuilder)
    assert second.env.memo.clocks.phase_started_at == started
    assert writes(done.calls + second.calls) == []
