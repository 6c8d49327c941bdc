"""gate: EvaluateGate, the gate's verdict on the change the builder left in the work tree."""

from __future__ import annotations

from app.domain.effects import EvaluateGate, RunBuilder
from app.domain.events import AttemptLost, GateEvaluated
from app.domain.gate import Decision
from tests.engine.effects.conftest import EffectWorld, Step


async def built(world: EffectWorld, title: str = "Phase p1") -> Step:
    """The first attempt built: the machine asks for its gate."""
    step = await world.branched(world.titled(world.strategy(), title))
    done = await world.carry_out(step, RunBuilder)
    return done.step()


async def test_a_clean_change_passes_without_a_call(world: EffectWorld) -> None:
    step = await built(world)
    done = await world.carry_out(step, EvaluateGate)
    assert done.event == GateEvaluated("p1", 1, Decision.PASS)
    assert done.calls == []
    # Carried out again: the same verdict on the same, untouched tree.
    again = await world.carry_out(step, EvaluateGate)
    assert (again.event, again.calls) == (done.event, [])
    assert (world.tree() / "work" / "p1.txt").is_file()


async def test_a_secret_in_the_change_is_a_policy_failure_with_its_finding(
    world: EffectWorld,
) -> None:
    done = await world.carry_out(await built(world, "Phase p1 [secret]"), EvaluateGate)
    assert isinstance(done.event, GateEvaluated)
    assert done.event.decision is Decision.FAIL_POLICY
    assert [(f.category, f.path) for f in done.event.findings] == [("secret", "work/p1.txt")]
    assert done.calls == []


async def test_after_the_worker_moved_the_attempt_is_lost(world: EffectWorld) -> None:
    step = await built(world)
    moved = world.moved()
    done = await moved.carry_out(step, EvaluateGate)
    assert isinstance(done.event, AttemptLost)
    assert (done.event.phase_id, done.event.attempt) == ("p1", 1)
    assert done.calls == []
