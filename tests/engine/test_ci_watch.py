"""The CI watcher against the simulator: waits, verdicts and re-runs, effect by effect.

The whole-run tests (test_ci_verdicts.py) show the outcomes; these show the watcher's own
guarantees: a verdict is taken once, a re-run is asked for once even when its effect is carried
out again, a status cannot be re-run, and the base's names are read once per phase.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.config import Settings
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
from app.domain.machine import advance
from app.domain.strategy import CISettings
from app.domain.taxonomy import CIProfile
from app.engine.ci_watch import next_wake, tick
from app.engine.context import RunContext
from app.engine.effects.ci import rerun_ci, wait_for_ci
from app.engine.envelope import Envelope
from app.engine.memo import Memo, RunFacts
from tests.domain.machine_fixtures import bootstrap, drive, make_strategy
from tests.engine.contexts import Clock, run_context
from tests.fakegithub.ci import ALWAYS_FAIL, FLAKY, PASS, CIScript
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"
BRANCH = "autopack/issue-7-run-1"


@dataclass
class World:
    sim: FakeGitHub
    ctx: RunContext
    clock: Clock

    async def push(self, text: str = "1") -> str:
        sha = await self.sim.push(REPO, BRANCH, {"a.txt": text})
        await self.sim.idle()
        return sha

    def envelope(self, sha: str, profile: CIProfile = CIProfile.NORMAL) -> Envelope:
        """A run waiting for CI on `sha` (attempt 1 of phase p1), with the default CI profiles."""
        events = [
            *bootstrap(replace(make_strategy(ci_profile=profile), ci=CISettings())),
            BuilderFinished("p1", 1, BuilderOutcome.OK),
            GateEvaluated("p1", 1, Decision.PASS),
            Pushed("p1", 1, sha),
        ]
        state, _ = drive(events)
        return Envelope(state, Memo(RunFacts(installation_id=1, repository=REPO, issue_number=7)))


@pytest.fixture
async def world(fakegithub: FakeGitHub, tmp_path: Path) -> AsyncIterator[World]:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst, ci=CIScript({"tests": FLAKY, "lint": PASS}))
    settings = Settings(
        app_id=fakegithub.app.id,
        private_key=fakegithub.app.private_key_pem,  # type: ignore[arg-type]
        github_api_url=fakegithub.url,
        data_dir=tmp_path,
        ci_poll_seconds=1,
    )
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        yield World(fakegithub, run_context(settings, session, inst.id, clock), clock)


def apply(env: Envelope, event: CIFinished) -> tuple[Envelope, RerunCI]:
    """Feed a red verdict to the machine; the envelope it leaves and the RerunCI it asks for."""
    state, effects = advance(env.state, event)
    (rerun,) = [effect for effect in effects if isinstance(effect, RerunCI)]
    return env.advanced(state, ()), rerun


async def wait(world: World, sha: str, profile: CIProfile = CIProfile.NORMAL) -> Envelope:
    env = world.envelope(sha, profile)
    env, _ = await wait_for_ci(world.ctx, env, WaitForCI(sha, "p1", profile))
    return env


async def test_a_verdict_is_taken_once(world: World) -> None:
    sha = await world.push()
    env = await wait(world, sha)
    assert next_wake(env, world.clock(), poll_seconds=1) == world.clock() + 1  # polling
    env, events = await tick(world.ctx, env, world.clock())
    assert [(e.result, e.failed_checks) for e in events] == [(CIResult.RED, ("tests",))]
    assert env.memo.ci is not None
    assert env.memo.ci.settled
    assert next_wake(env, world.clock(), poll_seconds=1) is None  # nothing left to poll for
    env, again = await tick(world.ctx, env, world.clock())
    assert again == []


async def test_a_rerun_is_asked_for_once_even_when_carried_out_again(world: World) -> None:
    sha = await world.push()
    env, (red,) = await tick(world.ctx, await wait(world, sha), world.clock())
    env, effect = apply(env, red)
    assert effect == RerunCI(sha, "p1", ("tests",), 1)
    after, refused = await rerun_ci(world.ctx, env, effect)
    assert refused is None
    await world.sim.idle()
    # A worker died before saving: the effect runs again on the state before it.
    replayed, refused = await rerun_ci(world.ctx, env, effect)
    assert refused is None
    assert len(world.sim.calls("POST", f"/repos/{REPO}/check-suites/")) == 1
    assert after.memo.ci == replayed.memo.ci
    watch = replayed.memo.ci
    assert watch is not None
    assert (watch.rerun, watch.rerun_names, watch.failed_before) == (1, ("tests",), ("tests",))
    _, (green,) = await tick(world.ctx, replayed, world.clock())
    assert (green.result, green.rerun, green.flaky_checks) == (CIResult.GREEN, 1, ("tests",))


async def test_a_rerun_that_appeared_before_the_request_counts(world: World) -> None:
    sha = await world.push()
    env, (red,) = await tick(world.ctx, await wait(world, sha), world.clock())
    env, effect = apply(env, red)
    (suite,) = world.sim.repo(REPO).suites.values()
    await world.sim.rerequest_check_suite(suite.id)  # a person pressed "Re-run" first
    await world.sim.idle()
    env, refused = await rerun_ci(world.ctx, env, effect)
    assert refused is None
    assert not world.sim.calls("POST", f"/repos/{REPO}/check-suites/")
    _, (green,) = await tick(world.ctx, env, world.clock())
    assert green.result is CIResult.GREEN


async def test_a_failing_status_is_not_rerun_but_red_at_once(world: World) -> None:
    world.sim.repo(REPO).ci = CIScript({"ci/jenkins": ALWAYS_FAIL}).through("statuses")
    sha = await world.push()
    env, (red,) = await tick(world.ctx, await wait(world, sha), world.clock())
    assert "### ci/jenkins (commit status: failure)" in red.output
    env, effect = apply(env, red)
    env, refused = await rerun_ci(world.ctx, env, effect)
    assert refused is not None
    assert (refused.result, refused.rerun, refused.failed_checks) == (
        CIResult.RED,
        1,
        ("ci/jenkins",),
    )
    assert refused.summary == (
        "re-run refused: commit status contexts cannot be re-run through GitHub: ci/jenkins"
    )
    assert not world.sim.calls("POST", f"/repos/{REPO}/check-suites/")
    assert env.memo.ci is not None
    assert env.memo.ci.settled  # the refusal is the verdict: no poll takes another


async def test_the_base_is_read_once_per_phase(world: World) -> None:
    base = await world.push("base")
    first = await world.push("attempt 1")
    env = await wait(world, first, CIProfile.STRICT)
    watch = env.memo.ci
    assert watch is not None
    assert (watch.base_sha, watch.expected) == (base, ("lint", "tests"))
    reads = len(world.sim.calls("GET", f"/repos/{REPO}/git/commits/"))
    # The next attempt of the phase sits on the first: its base stays the phase's.
    second = await world.push("attempt 2")
    env, _ = await wait_for_ci(world.ctx, env, WaitForCI(second, "p1", CIProfile.STRICT))
    assert env.memo.ci is not None
    assert (env.memo.ci.sha, env.memo.ci.base_sha) == (second, base)
    assert len(world.sim.calls("GET", f"/repos/{REPO}/git/commits/")) == reads


async def test_changed_needs_no_base(world: World) -> None:
    sha = await world.push()
    env = await wait(world, sha)
    assert env.memo.ci is not None
    assert (env.memo.ci.base_sha, env.memo.ci.expected) == ("", ())
    assert not world.sim.calls("GET", f"/repos/{REPO}/git/commits/")


def rerun_answers(world: World) -> list[int]:
    """The statuses GitHub answered the Actions re-run requests with, in order."""
    return [call.status for call in world.sim.calls("POST", f"/repos/{REPO}/actions/runs/")]


async def red_on_actions(world: World, **script: Any) -> tuple[Envelope, RerunCI]:
    """A flaky Actions CI (with `script` options) judged red: the envelope and its RerunCI."""
    ci = CIScript({"tests": FLAKY, "lint": PASS}, **script).through("actions")
    world.sim.repo(REPO).ci = ci
    sha = await world.push()
    env, (red,) = await tick(world.ctx, await wait(world, sha), world.clock())
    return apply(env, red)


async def test_a_replayed_actions_rerun_asks_nothing_while_its_suite_is_queued(
    world: World,
) -> None:
    gate = asyncio.Event()  # the re-run's check runs appear when the test says
    env, effect = await red_on_actions(world, rerun_gate=gate)
    _, verdict = await rerun_ci(world.ctx, env, effect)
    assert verdict is None
    # The worker died before saving: the effect is carried out again on the state before it,
    # while the re-run it asked for has not shown a check run yet. GitHub shows the suite
    # queued again, so nothing is asked (a second request would meet "already running").
    replayed, verdict = await rerun_ci(world.ctx, env, effect)
    assert verdict is None
    assert rerun_answers(world) == [201]
    watch = replayed.memo.ci
    assert watch is not None
    assert (watch.rerun_names, watch.rerun_unconfirmed, watch.settled) == (("tests",), (), False)
    waiting, events = await tick(world.ctx, replayed, world.clock())
    assert events == []  # still running
    gate.set()
    await world.sim.idle()
    _, (green,) = await tick(world.ctx, waiting, world.clock())
    assert (green.result, green.rerun, green.flaky_checks) == (CIResult.GREEN, 1, ("tests",))
    assert rerun_answers(world) == [201]
    (workflow_run,) = world.sim.repo(REPO).workflow_runs.values()
    assert workflow_run.run_attempt == 2  # one re-run, however often the effect was carried out


async def test_a_rerun_asked_before_github_concluded_the_run_is_asked_again(
    world: World,
) -> None:
    gate = asyncio.Event()  # GitHub concludes the workflow run when the test says
    env, effect = await red_on_actions(world, conclusion_gate=gate)
    env, verdict = await rerun_ci(world.ctx, env, effect)
    assert verdict is None
    env, events = await tick(world.ctx, env, world.clock())
    assert events == []
    assert rerun_answers(world) == [403, 403]
    gate.set()
    env, events = await tick(world.ctx, env, world.clock())
    assert events == []  # accepted now; its check runs are not there yet
    assert rerun_answers(world) == [403, 403, 201]
    assert env.memo.ci is not None
    assert env.memo.ci.rerun_unconfirmed == ()
    await world.sim.idle()
    _, (green,) = await tick(world.ctx, env, world.clock())
    assert (green.result, green.flaky_checks) == (CIResult.GREEN, ("tests",))
    assert rerun_answers(world) == [403, 403, 201]


async def test_a_refusal_while_asking_again_is_red_with_the_reason(world: World) -> None:
    env, effect = await red_on_actions(world, conclusion_gate=asyncio.Event())
    env, verdict = await rerun_ci(world.ctx, env, effect)
    assert verdict is None
    world.sim.repo(REPO).ci = replace(
        world.sim.repo(REPO).ci, rerun_refusal=(403, "Unable to retry this workflow run")
    )
    env, (refused,) = await tick(world.ctx, env, world.clock())
    assert (refused.result, refused.rerun, refused.failed_checks) == (CIResult.RED, 1, ("tests",))
    assert "(HTTP 403: Unable to retry this workflow run)" in refused.summary
    assert env.memo.ci is not None
    assert env.memo.ci.settled
