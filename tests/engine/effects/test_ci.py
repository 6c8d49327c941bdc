"""ci: WaitForCI (start watching a pushed commit) and RerunCI (re-run the failed checks once)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.domain.effects import RerunCI, WaitForCI
from app.domain.events import (
    BuilderFinished,
    BuilderOutcome,
    CIFinished,
    CIResult,
    GateEvaluated,
    Pushed,
)
from app.domain.gate import Decision
from app.domain.strategy import CISettings
from app.domain.taxonomy import CIProfile
from app.engine.ci_watch import tick
from app.engine.memo import CIWatch
from tests.engine.effects.conftest import BRANCH, REPO, EffectWorld, Step
from tests.engine.recorded import writes
from tests.fakegithub.ci import ALWAYS_FAIL, FLAKY, PASS, CIScript


async def pushed(world: EffectWorld, step: Step, attempt: int = 1) -> Step:
    """The attempt built, gated and pushed (a commit on the branch): the machine waits for CI."""
    sha = await world.sim.push(REPO, BRANCH, {"work/p1.txt": f"attempt {attempt}\n"})
    await world.sim.idle()  # CI reported on it
    return step.then(
        BuilderFinished("p1", attempt, BuilderOutcome.OK),
        GateEvaluated("p1", attempt, Decision.PASS),
        Pushed("p1", attempt, sha),
    )


async def judged(world: EffectWorld, step: Step) -> Step:
    """The wait set up and CI's verdict taken by the CI watch, as the driver does it."""
    waiting = await world.carry_out(step, WaitForCI)
    env, events = await tick(world.ctx, waiting.env, world.clock.now)
    (verdict,) = events
    return Step(env, ()).then(verdict)


async def test_waiting_for_the_changed_checks_notes_the_commit_without_a_call(
    world: EffectWorld,
) -> None:
    step = await pushed(world, await world.branched(world.strategy()))
    effect = step.effect(WaitForCI)
    done = await world.carry_out(step, WaitForCI)
    assert (done.event, done.calls) == (None, [])
    assert done.env.memo.ci == CIWatch(effect.sha, "p1", 0, world.clock.now)
    # Carried out again with the wait already noted (RerunCI notes its own): left as it is.
    world.clock.now += 5
    again = await world.carry_out(replace(step, env=done.env), WaitForCI)
    assert (again.env, again.calls) == (done.env, [])


async def test_when_every_check_counts_the_bases_names_are_read_once_a_phase(
    world: EffectWorld,
) -> None:
    world.sim.repo(REPO).ci = CIScript({"tests": FLAKY, "lint": PASS})
    strict = replace(
        world.strategy(ci_profile=CIProfile.STRICT, max_builder_attempts=2), ci=CISettings()
    )
    branched = await world.branched(strict)
    base = branched.env.state.head_sha
    step = await pushed(world, branched)
    first = await world.carry_out(step, WaitForCI)
    sha = step.effect(WaitForCI).sha
    assert [call.line for call in first.calls] == [
        ("GET", f"/repos/{REPO}/git/commits/{sha}"),
        ("GET", f"/repos/{REPO}/commits/{base}/check-runs?filter=latest&per_page=100"),
        ("GET", f"/repos/{REPO}/commits/{base}/status?per_page=100"),
    ]
    assert first.env.memo.ci is not None
    assert (first.env.memo.ci.base_sha, first.env.memo.ci.expected) == (base, ("lint", "tests"))
    # Red under the strict profile is a failed attempt; the next one sits on the first.
    env, (verdict,) = await tick(world.ctx, first.env, world.clock.now)
    assert isinstance(verdict, CIFinished)
    assert verdict.failed_checks == ("tests",)
    red = Step(env, ()).then(verdict)
    second = await world.carry_out(await pushed(world, red, attempt=2), WaitForCI)
    assert second.calls == []
    assert second.env.memo.ci is not None
    assert (second.env.memo.ci.base_sha, second.env.memo.ci.expected) == (base, ("lint", "tests"))


async def test_a_rerun_is_asked_for_once_for_the_failed_checks_suite(world: EffectWorld) -> None:
    world.sim.repo(REPO).ci = CIScript({"tests": FLAKY})
    step = await pushed(world, await world.branched(world.strategy()))
    sha = step.effect(WaitForCI).sha
    red = await judged(world, step)
    assert red.effect(RerunCI) == RerunCI(sha, "p1", ("tests",), 1)
    (failed,) = [run for run in world.sim.repo(REPO).check_runs if run.head_sha == sha]
    done = await world.carry_out(red, RerunCI)
    assert [call.line for call in writes(done.calls)] == [
        ("POST", f"/repos/{REPO}/check-suites/{failed.suite_id}/rerequest")
    ]
    assert done.event is None
    watch = done.env.memo.ci
    assert watch is not None
    assert (watch.rerun, watch.rerun_names, watch.failed_before) == (1, ("tests",), ("tests",))
    assert watch.floor_id == max(run.id for run in world.sim.repo(REPO).check_runs)
    await world.sim.idle()  # the re-run's check runs appeared
    runs = len(world.sim.repo(REPO).check_runs)
    again = await world.carry_out(red, RerunCI)
    assert writes(again.calls) == []
    assert again.env.memo.ci == watch
    await world.sim.idle()
    assert len(world.sim.repo(REPO).check_runs) == runs


@pytest.mark.parametrize("via", ["checks", "actions"])
async def test_carried_out_again_before_the_rerun_started_it_asks_no_second_time(
    world: EffectWorld, via: str
) -> None:
    # The worker died after asking, before saving; CI has not started the re-run yet.
    world.sim.repo(REPO).ci = CIScript({"tests": FLAKY}, rerun_delay=0.5).through(via)
    red = await judged(world, await pushed(world, await world.branched(world.strategy())))
    done = await world.carry_out(red, RerunCI)
    again = await world.carry_out(red, RerunCI)
    assert len(writes(done.calls)) == 1
    assert writes(again.calls) == []
    assert again.event is None  # waiting for the re-run, not a refusal
    assert again.env.memo.ci == done.env.memo.ci
    await world.sim.idle()
    sha = red.effect(RerunCI).sha
    tests = [run.conclusion for run in world.sim.repo(REPO).check_runs if run.head_sha == sha]
    assert tests == ["failure", "success"]  # one re-run, not two


async def test_a_failed_commit_status_cannot_be_rerun_and_is_red_with_the_reason(
    world: EffectWorld,
) -> None:
    world.sim.repo(REPO).ci = CIScript({"tests": ALWAYS_FAIL}).through("statuses")
    red = await judged(world, await pushed(world, await world.branched(world.strategy())))
    done = await world.carry_out(red, RerunCI)
    assert writes(done.calls) == []
    assert isinstance(done.event, CIFinished)
    assert (done.event.result, done.event.rerun) == (CIResult.RED, 1)
    assert done.event.summary == (
        "re-run refused: commit status contexts cannot be re-run through GitHub: tests"
    )
    assert done.env.memo.ci is not None
    assert done.env.memo.ci.settled
