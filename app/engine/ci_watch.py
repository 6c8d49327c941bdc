"""Watching CI and the clocks: turns check runs, commit statuses and deadlines into machine events.

CI is looked at when a check_run or status webhook names the commit (a poll job), and on the
run's timer as a fallback for webhooks that never came. Every verdict rests on what GitHub reports
now (`domain/ci.py`): a re-run check stays pending until a run newer than the request completed,
and with `required: all` a check the phase's base commit had stays pending until it reports.
Starting a wait and asking for re-runs are effects (`effects/ci.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from app.config import Settings
from app.domain.ci import (
    CheckRunView,
    Outcome,
    Reports,
    Rerun,
    StatusView,
    check_outcome,
    decide,
    failure_output,
    flaky,
    judge,
    status_outcome,
)
from app.domain.events import CIFinished, CIResult, Event, PhaseTimedOut, RunTimedOut
from app.domain.run_state import AwaitKind
from app.engine.context import RunContext
from app.engine.envelope import Envelope
from app.engine.memo import CIWatch
from app.github.ci_status import (
    RerunRefused,
    RerunRequest,
    check_runs_for,
    rerun_requested,
    rerun_suite,
    statuses_for,
)


def own_app_id(settings: Settings) -> int:
    """Autopack's app id: its own check run never decides CI."""
    return settings.app_id or 0


def reports_of(
    settings: Settings, env: Envelope, runs: list[CheckRunView], statuses: list[StatusView]
) -> Reports:
    """What CI reported on a commit, as the run's strategy reads it (ignored checks left out)."""
    strategy = env.state.strategy
    assert strategy is not None
    return Reports.collect(
        runs, statuses, own_app_id=own_app_id(settings), ignore=strategy.ci.ignore_checks
    )


async def request_reruns(
    ctx: RunContext, reports: Reports, sha: str, names: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Re-run the suites of the failed check runs: the names they cover, and those of them
    whose workflow run GitHub found already running. Only CI itself can re-run a status."""
    wanted = sorted(set(names))
    statuses = [
        name
        for name in wanted
        if (status := reports.statuses.get(name)) is not None
        and status_outcome(status) is Outcome.FAILED
    ]
    if statuses:
        raise RerunRefused(
            "commit status contexts cannot be re-run through GitHub: " + ", ".join(statuses)
        )
    suites: dict[int, str] = {}
    covered: dict[int, list[str]] = {}
    for name in wanted:
        run = reports.runs.get(name)
        if run is None or run.suite_id is None or check_outcome(run) is not Outcome.FAILED:
            continue
        suites[run.suite_id] = run.app_slug
        covered.setdefault(run.suite_id, []).append(name)
    running: list[str] = []
    repo = ctx.record.repository
    for suite_id, slug in sorted(suites.items()):
        # A suite judged red is completed; queued again, it was asked already (this effect
        # carried out again after a crash): asking twice runs CI twice, or Actions refuses.
        if await rerun_requested(ctx.gh, repo, suite_id):
            continue
        answer = await rerun_suite(ctx.gh, repo, sha, suite_id, slug)
        if answer is RerunRequest.ALREADY_RUNNING:
            running += covered[suite_id]
    every = sorted(name for group in covered.values() for name in group)
    return tuple(every), tuple(sorted(running))


def refused_verdict(
    watch: CIWatch, reports: Reports, names: tuple[str, ...], refused: RerunRefused
) -> CIFinished:
    """The red verdict on a re-run GitHub refused, with its reason and the checks' output."""
    return CIFinished(
        phase_id=watch.phase_id,
        sha=watch.sha,
        result=CIResult.RED,
        failed_checks=tuple(sorted(names)),
        summary=f"re-run refused: {refused}",
        rerun=watch.rerun,
        output=failure_output(reports, names),
    )


async def _ask_again(
    ctx: RunContext,
    env: Envelope,
    watch: CIWatch,
    runs: list[CheckRunView],
    statuses: list[StatusView],
) -> tuple[CIWatch, CIFinished | None]:
    """Ask again for the re-runs GitHub found already running, until a newer run of each shows
    (the re-run was under way) or GitHub accepts (the run had not concluded yet)."""
    newer = {run.name for run in runs if run.id > watch.floor_id}
    waiting = tuple(name for name in watch.rerun_unconfirmed if name not in newer)
    if waiting:
        reports = reports_of(ctx.settings, env, runs, statuses)
        try:
            _, waiting = await request_reruns(ctx, reports, watch.sha, waiting)
        except RerunRefused as refused:
            return watch, refused_verdict(watch, reports, waiting, refused)
    return replace(watch, rerun_unconfirmed=waiting), None


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
    event: CIFinished | None = None
    if watch.rerun_unconfirmed:
        watch, event = await _ask_again(ctx, env, watch, runs, statuses)
        env = env.put(watch)
    if event is None:
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
    reports = reports_of(settings, env, runs, statuses)
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
