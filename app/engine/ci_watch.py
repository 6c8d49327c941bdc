"""Watching CI and the clocks: turns check runs and deadlines into machine events.

CI is looked at when a check_run/check_suite webhook names the commit (a poll job), and on the
run's timer as a fallback for webhooks that never came.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.config import Settings
from app.domain.ci import CheckRunView, CIState, flaky, interpret
from app.domain.effects import RerunCI
from app.domain.events import CIFinished, CIResult, Event, PhaseTimedOut, RunTimedOut
from app.domain.run_state import AwaitKind
from app.engine.envelope import CIWatch, Envelope
from app.github.client import GitHubApp
from app.github.repo import check_runs_for, rerequest_suite

if TYPE_CHECKING:
    from app.engine.executor import RunContext


class CIWatcher:
    """Timeouts of runs and phases, and the CI verdict on the awaited commit."""

    Clock = Callable[[], float]

    def __init__(self, app: GitHubApp, settings: Settings, clock: Clock | None = None) -> None:
        self.app = app
        self.settings = settings
        self.clock: CIWatcher.Clock = clock or (lambda: datetime.now(UTC).timestamp())

    async def rerun(self, ctx: RunContext, env: Envelope, effect: RerunCI) -> Envelope:
        """Re-request the suites of the failed checks; later results supersede the old ones."""
        runs = await check_runs_for(ctx.gh, ctx.record.repository, effect.sha)
        suites = {run.suite_id for run in runs if run.name in effect.checks and run.suite_id}
        for suite_id in sorted(suites):
            await rerequest_suite(ctx.gh, ctx.record.repository, suite_id)
        previous = env.memo.ci
        failed = tuple(sorted({*(previous.failed_before if previous else ()), *effect.checks}))
        watch = CIWatch(
            sha=effect.sha,
            phase_id=effect.phase_id,
            rerun=effect.rerun,
            since=self.clock(),
            failed_before=failed,
            rerun_names=tuple(sorted(effect.checks)),
            floor_id=max((run.id for run in runs), default=0),
        )
        return env.note(ci=watch)

    async def tick(
        self, ctx: RunContext, env: Envelope, now: float
    ) -> tuple[Envelope, list[Event]]:
        """Events due now: run/phase timeouts, or a CI verdict."""
        state = env.state
        strategy = state.strategy
        if state.status.is_terminal or strategy is None:
            return env, []
        memo = env.memo
        if memo.started_at and now - memo.started_at > strategy.budget.wall_seconds:
            return env, [RunTimedOut()]
        waiting = state.awaiting
        if waiting is None or not waiting.phase_id:
            return env, []
        phase = strategy.phase(waiting.phase_id)
        if memo.phase_started_at and now - memo.phase_started_at > phase.wall_seconds:
            return env, [PhaseTimedOut(waiting.phase_id, waiting.attempt)]
        watch = memo.ci
        if (
            waiting.kind is not AwaitKind.CI
            or watch is None
            or watch.sha != waiting.sha
            or watch.rerun != waiting.rerun
        ):
            return env, []
        runs = await check_runs_for(ctx.gh, ctx.record.repository, watch.sha, include_reruns=True)
        current = [r for r in runs if r.name not in watch.rerun_names or r.id > watch.floor_id]
        event = self._verdict(env, watch, current, now)
        if event is None:
            return env, []
        return env.note(ci=None), [event]

    def _verdict(
        self, env: Envelope, watch: CIWatch, runs: list[CheckRunView], now: float
    ) -> CIFinished | None:
        strategy = env.state.strategy
        assert strategy is not None
        phase = strategy.phase(watch.phase_id)
        profile = strategy.ci.profile(phase.ci_profile)
        verdict = interpret(
            runs,
            own_app_id=self.settings.app_id or 0,
            required=profile.required,
            ignore=strategy.ci.ignore_checks,
        )
        elapsed = now - watch.since

        def finished(result: CIResult, summary: str, **more: tuple[str, ...]) -> CIFinished:
            return CIFinished(
                phase_id=watch.phase_id,
                sha=watch.sha,
                result=result,
                summary=summary,
                rerun=watch.rerun,
                **more,
            )

        if verdict.state is CIState.GREEN:
            return finished(
                CIResult.GREEN, verdict.summary, flaky_checks=flaky(watch.failed_before, verdict)
            )
        if verdict.state is CIState.RED and not verdict.pending:
            return finished(CIResult.RED, verdict.summary, failed_checks=verdict.failed)
        if verdict.state is CIState.NO_CHECKS and elapsed > strategy.ci.start_timeout_seconds:
            return finished(CIResult.NO_CI, "no CI reported in time")
        if elapsed > strategy.ci.finish_timeout_seconds:
            return finished(
                CIResult.TIMED_OUT,
                f"CI did not finish in time: {verdict.summary}",
                failed_checks=verdict.failed + verdict.pending,
            )
        return None

    def next_wake(self, env: Envelope, now: float) -> float | None:
        """The earliest deadline, or the next CI poll."""
        state = env.state
        strategy = state.strategy
        if state.status.is_terminal or strategy is None:
            return None
        times: list[float] = []
        memo = env.memo
        if memo.started_at:
            times.append(memo.started_at + strategy.budget.wall_seconds + 1)
        waiting = state.awaiting
        if waiting is not None and waiting.phase_id and memo.phase_started_at:
            times.append(memo.phase_started_at + strategy.phase(waiting.phase_id).wall_seconds + 1)
        if memo.ci is not None and waiting is not None and waiting.kind is AwaitKind.CI:
            times.append(memo.ci.since + strategy.ci.start_timeout_seconds + 1)
            times.append(now + self.settings.ci_poll_seconds)
        future = [t for t in times if t > now]
        return min(future) if future else (now + 1 if times else None)
