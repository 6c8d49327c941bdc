"""audit: RunAuditor, an escalation after failed attempts or a review before a push."""

from __future__ import annotations

import json

from app.domain.effects import EvaluateGate, RunAuditor, RunBuilder
from app.domain.events import AttemptLost, AuditorFinished, AuditorVerdict
from app.domain.run_state import AuditReason
from tests.engine.effects.conftest import EffectWorld, Step
from tests.engine.recorded import writes


async def escalated(world: EffectWorld, auditor: str) -> Step:
    """The only builder attempt failed: the machine asks the auditor `auditor` to take over."""
    strategy = world.strategy(max_builder_attempts=1, auditor_backend=auditor)
    step = await world.branched(world.titled(strategy, "Phase p1 [dirty-fail]"))
    failed = await world.carry_out(step, RunBuilder)
    asked = failed.step()
    assert asked.effect(RunAuditor).reason is AuditReason.BUILDER_FAILURES
    return asked


async def reviewing(world: EffectWorld) -> Step:
    """A phase pushed only after a review: built and gated, the machine asks the reviewer."""
    strategy = world.strategy(auto_apply=False, auditor_backend="approver")
    built = await world.carry_out(await world.branched(strategy), RunBuilder)
    gated = await world.carry_out(built.step(), EvaluateGate)
    asked = gated.step()
    assert asked.effect(RunAuditor).reason is AuditReason.PRE_PUSH_REVIEW
    return asked


async def test_an_escalation_reads_the_evidence_and_works_from_the_branch_head(
    world: EffectWorld,
) -> None:
    step = await escalated(world, "auditor")
    done = await world.carry_out(step, RunAuditor)
    assert isinstance(done.event, AuditorFinished)
    assert (done.event.phase_id, done.event.attempt) == ("p1", 2)
    assert (done.event.verdict, done.event.tokens_used) == (AuditorVerdict.REJECT, 1)
    seen = json.loads(done.event.summary)
    assert seen["builder_log"] is True  # the failed attempt's log, from the evidence
    assert seen["diff_files"] == ["README.md", "leak/p1-1.txt"]  # ...and its change
    assert not (world.tree() / "leak").exists()  # the tree is the branch head again
    assert writes(done.calls) == []
    again = await world.carry_out(step, RunAuditor)
    assert again.event == done.event
    assert writes(again.calls) == []


async def test_an_auditors_patch_is_applied_to_the_head_once_for_the_gate(
    world: EffectWorld,
) -> None:
    step = await escalated(world, "patcher")
    done = await world.carry_out(step, RunAuditor)
    assert isinstance(done.event, AuditorFinished)
    assert done.event.verdict is AuditorVerdict.PATCH
    gate = done.step().effect(EvaluateGate)
    assert (gate.attempt, gate.auditor_patch) == (2, True)
    again = await world.carry_out(step, RunAuditor)
    assert again.event == done.event
    change = world.ctx.workspace.compute_change()
    assert [(f.path, f.content) for f in change.files] == [
        ("work/fixed.txt", b"fixed by the auditor\n")
    ]
    assert writes(done.calls + again.calls) == []


async def test_without_the_auditor_profile_the_answer_is_a_reject_and_nothing_runs(
    world: EffectWorld,
) -> None:
    step = await escalated(world, "nobody")
    done = await world.carry_out(step, RunAuditor)
    assert isinstance(done.event, AuditorFinished)
    assert (done.event.verdict, done.event.summary) == (
        AuditorVerdict.REJECT,
        "no auditor configured",
    )
    assert done.calls == []
    assert (world.tree() / "leak").exists()  # nothing touched the tree


async def test_a_review_judges_the_change_in_the_tree_and_leaves_it_there(
    world: EffectWorld,
) -> None:
    step = await reviewing(world)
    done = await world.carry_out(step, RunAuditor)
    assert isinstance(done.event, AuditorFinished)
    assert (done.event.attempt, done.event.verdict) == (1, AuditorVerdict.APPROVE)
    assert json.loads(done.event.summary)["diff_files"] == ["work/p1.txt"]
    assert (world.tree() / "work" / "p1.txt").is_file()
    assert done.calls == []


async def test_a_review_after_the_worker_moved_is_an_attempt_lost(world: EffectWorld) -> None:
    step = await reviewing(world)
    done = await world.moved().carry_out(step, RunAuditor)
    assert done.event == AttemptLost(
        "p1", 1, "its change was lost with the work tree (the worker stopped before pushing it)"
    )
    assert done.calls == []
