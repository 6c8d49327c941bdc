"""push: PushChange (one commit per attempt on the head it was made on) and CreateSnapshot (the
green phase's tag), each carried out again after a crash without a second object on GitHub."""

from __future__ import annotations

from app.domain.effects import CreateSnapshot, EvaluateGate, PushChange, RunBuilder
from app.domain.events import (
    AttemptLost,
    CIFinished,
    CIResult,
    Pushed,
    PushRejected,
    SnapshotCreated,
)
from app.github.commits import parse_trailers
from tests.engine.effects.conftest import BRANCH, REPO, RUN_ID, EffectWorld, Step
from tests.engine.recorded import writes

GIT = f"/repos/{REPO}/git"


async def gated(world: EffectWorld) -> Step:
    """The first attempt built and passed: the machine asks to push it."""
    step = await world.branched(world.strategy())
    built = await world.carry_out(step, RunBuilder)
    return (await world.carry_out(built.step(), EvaluateGate)).step()


async def test_the_change_lands_as_one_commit_with_the_attempts_trailers(
    world: EffectWorld,
) -> None:
    step = await gated(world)
    head = step.env.state.head_sha
    done = await world.carry_out(step, PushChange)
    assert [call.line for call in writes(done.calls)] == [
        ("POST", f"{GIT}/trees"),
        ("POST", f"{GIT}/commits"),
        ("PATCH", f"{GIT}/refs/heads/{BRANCH}"),
    ]
    tree, commit, ref = (call.body for call in writes(done.calls))
    assert [item["path"] for item in tree["tree"]] == ["work/p1.txt"]
    assert commit["parents"] == [head]
    assert parse_trailers(commit["message"]) == {
        "Autopack-Run": RUN_ID,
        "Autopack-Phase": "p1",
        "Autopack-Attempt": "1",
    }
    assert ref["force"] is False
    pushed = world.sim.repo(REPO).ref(f"heads/{BRANCH}")
    assert done.event == Pushed("p1", 1, pushed)
    assert world.sim.repo(REPO).files(BRANCH)["work/p1.txt"].startswith(b"Phase p1\n")
    assert done.env.memo.tip.head_tree == world.sim.repo(REPO).git.get_commit(pushed).tree
    assert world.ctx.workspace.holds(pushed)  # the next attempt builds on it


async def test_carried_out_again_it_finds_its_commit_and_makes_no_other(
    world: EffectWorld,
) -> None:
    step = await gated(world)
    done = await world.carry_out(step, PushChange)
    # The worker saved nothing of it: the same effect on the same envelope, on this worker...
    again = await world.carry_out(step, PushChange)
    # ...and on another one, whose work tree is gone.
    elsewhere = await world.moved().carry_out(step, PushChange)
    assert again.event == elsewhere.event == done.event
    assert writes(again.calls + elsewhere.calls) == []
    assert again.env.memo.tip == elsewhere.env.memo.tip == done.env.memo.tip
    assert len(world.sim.repo(REPO).commits(BRANCH)) == 3  # main, the branch's own, the push


async def test_a_change_lost_with_the_work_tree_before_the_push_is_an_attempt_lost(
    world: EffectWorld,
) -> None:
    step = await gated(world)
    head = world.sim.repo(REPO).ref(f"heads/{BRANCH}")
    done = await world.moved().carry_out(step, PushChange)
    assert isinstance(done.event, AttemptLost)
    assert writes(done.calls) == []
    assert world.sim.repo(REPO).ref(f"heads/{BRANCH}") == head


async def test_a_branch_someone_else_moved_is_never_forced(world: EffectWorld) -> None:
    step = await gated(world)
    theirs = await world.sim.push(REPO, BRANCH, {"theirs.txt": "pushed by a person\n"})
    done = await world.carry_out(step, PushChange)
    assert isinstance(done.event, PushRejected)
    assert "refusing to force" in done.event.reason
    assert world.sim.repo(REPO).ref(f"heads/{BRANCH}") == theirs


async def test_a_green_phase_is_tagged_once(world: EffectWorld) -> None:
    step = await gated(world)
    pushed = await world.carry_out(step, PushChange)
    assert isinstance(pushed.event, Pushed)
    sha = pushed.event.commit_sha
    green = pushed.step().then(CIFinished("p1", sha, CIResult.GREEN))
    tag = f"refs/tags/autopack/{RUN_ID}/p1"
    done = await world.carry_out(green, CreateSnapshot)
    assert [(call.line, call.body) for call in writes(done.calls)] == [
        (("POST", f"{GIT}/refs"), {"ref": tag, "sha": sha})
    ]
    assert done.event == SnapshotCreated("p1", tag)
    refs = dict(world.sim.repo(REPO).refs)
    assert refs[tag] == sha
    again = await world.carry_out(green, CreateSnapshot)
    assert again.event == done.event
    assert world.sim.repo(REPO).refs == refs
