"""Watching CI and the clocks: turns check runs, commit statuses and deadlines into machine events.

CI is looked at when a check_run or status webhook names the commit (a poll job), and on the
run's timer as a fallback for webhooks that never came. Every verdict rests on what GitHub reports
now (`domain/ci.py`): a re-run check stays pending until a run newer than the request completed,
and with `required: all` a check the phase's base commit had stays pending until it reports.
Starting a wait and asking for re-runs are effects (`effects/ci.py`).
"""

from __future__ import annotations

from dataclasses import replace

from app.config import Settings
from app.domain.ci import (
    CheckRunView,
    Reports,
    Rerun,
    StatusView,
    decide,
    failure_output,
    flaky,
    judge,
)
from app.domain.events import CIFinished, CIResult, Event, PhaseTimedOut, RunTimedOut
from app.domain.run_state import AwaitKind
from app.engine.context import RunContext
from app.engine.envelope import Envelope
from app.engine.memo import CIWatch
from app.github.ci_status import check_runs_for, statuses_for


def own_app_id(settings: Settings) -> int:
    """Autopack's app id: its own check run never decides CI."""
    return settings.app_id or 0


async def tick(ctx: RunContext, env: Envelope, now: float) -> tuple[Envelope, list[Event]]:
    """Events due now: run/phase timeouts, or a CI verdict."""
    state = env.state
    strategy = state.strategy
    if state.status.is_terminal or strategy is None:
        return env, []
    memo = env.memo
    if memo.clocks.started_at and now - memo.clocks.started_at > strategy.budget.wall_seconds:
        return env, [RunTimedOut()]
    waiting = state.awaiting
    if waiting is None or not waiting.phase_id:
        return env, []
    phase = strategy.phase(waiting.phase_id)
    if memo.clocks.phase_started_at and now - memo.clocks.phase_started_at > phase.wall_seconds:
        return env, [PhaseTimedOut(waiting.phase_id, waiting.attempt)]
    watch = memo.ci
    if (
        waiting.kind is not AwaitKind.CI
        or watch is None
        or watch.settled
        or watch.sha != waiting.sha
        or watch.rerun != waiting.rerun
    ):
        return env, []
    repo = ctx.record.repository
    runs = await check_runs_for(ctx.gh, repo, watch.sha, include_reruns=True)
    statuses = await statuses_for(ctx.gh, repo, watch.sha)
    event = _verdict(ctx.settings, env, watch, runs, statuses, now)
    if event is None:
        return env, []
    seen = max((run.id for run in runs), default=0)
    return env.put(watch.settle(seen)), [event]


def _verdict(
    settings: Settings,
    env: Envelope,
    watch: CIWatch,
    runs: list[CheckRunView],
    statuses: list[StatusView],
    now: float,
) -> CIFinished | None:
    strategy = env.state.strategy
    assert strategy is not None
    profile = strategy.ci.profile(strategy.phase(watch.phase_id).ci_profile)
    reports = Reports.collect(
        runs, statuses, own_app_id=own_app_id(settings), ignore=strategy.ci.ignore_checks
    )
    rerun = Rerun(watch.rerun_names, watch.floor_id) if watch.rerun_names else None
    verdict = judge(reports, required=profile.required, expected=watch.expected, rerun=rerun)
    result = decide(
        verdict,
        elapsed=now - watch.since,
        start_timeout=strategy.ci.start_timeout_seconds,
        finish_timeout=strategy.ci.finish_timeout_seconds,
    )
    if result is None:
        return None
    finished = CIFinished(watch.phase_id, watch.sha, result, rerun=watch.rerun)
    if result is CIResult.GREEN:
        flakes = flaky(watch.failed_before, verdict)
        return replace(finished, summary=verdict.summary, flaky_checks=flakes)
    if result is CIResult.NO_CI:
        return replace(finished, summary="no CI reported in time")
    output = failure_output(reports, verdict.failed)
    if result is CIResult.RED:
        return replace(
            finished, summary=verdict.summary, failed_checks=verdict.failed, output=output
        )
    waiting = "Not reported or not finished: " + ", ".join(verdict.pending)
    return replace(
        finished,
        summary=f"CI did not finish in time: {verdict.summary}",
        failed_checks=verdict.failed + verdict.pending,
        output="\n\n".join(part for part in (output, waiting) if part),
    )


def next_wake(env: Envelope, now: float, poll_seconds: float) -> float | None:
    """The earliest deadline, or the next CI poll."""
    state = env.state
    strategy = state.strategy
    if state.status.is_terminal or strategy is None:
        return None
    times: list[float] = []
    memo = env.memo
    if memo.clocks.started_at:
        times.append(memo.clocks.started_at + strategy.budget.wall_seconds + 1)
    waiting = state.awaiting
    if waiting is not None and waiting.phase_id and memo.clocks.phase_started_at:
        times.append(
            memo.clocks.phase_started_at + strategy.phase(waiting.phase_id).wall_seconds + 1
        )
    watch = memo.ci
    if watch is not None and not watch.settled and waiting and waiting.kind is AwaitKind.CI:
        times.append(watch.since + strategy.ci.start_timeout_seconds + 1)
        times.append(now + poll_seconds)
    future = [t for t in times if t > now]
    return min(future) if future else (now + 1 if times else None)
