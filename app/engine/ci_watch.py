"""Watching CI and the clocks: turns check runs, commit statuses and deadlines into machine events.

CI is looked at when a check_run or status webhook names the commit (a poll job), and on the
run's timer as a fallback for webhooks that never came. Every verdict rests on what GitHub reports
now (`domain/ci.py`): a re-run check stays pending until a run newer than the request completed,
and with `required: all` a check the phase's base commit had stays pending until it reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

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
from app.domain.effects import RerunCI, WaitForCI
from app.domain.events import CIFinished, CIResult, Event, PhaseTimedOut, RunTimedOut
from app.domain.run_state import AwaitKind
from app.engine.envelope import CIWatch, Envelope
from app.github.ci_status import (
    RerunRefused,
    RerunRequest,
    check_runs_for,
    commit_parent,
    rerun_suite,
    statuses_for,
)
from app.github.client import GitHubApp

if TYPE_CHECKING:
    from app.engine.executor import RunContext


class CIWatcher:
    """Timeouts of runs and phases, and the CI verdict on the awaited commit."""

    Clock = Callable[[], float]

    def __init__(self, app: GitHubApp, settings: Settings, clock: Clock | None = None) -> None:
        self.app = app
        self.settings = settings
        self.clock: CIWatcher.Clock = clock or (lambda: datetime.now(UTC).timestamp())

    @property
    def own_app_id(self) -> int:
        """Autopack's app id: its own check run never decides CI."""
        return self.settings.app_id or 0

    async def wait(self, ctx: RunContext, env: Envelope, effect: WaitForCI) -> Envelope:
        """Start waiting for CI on a pushed commit (with the base's names when all are required)."""
        current = env.memo.ci
        if current and (current.sha, current.rerun) == (effect.sha, effect.rerun):
            return env  # RerunCI already set up this wait (and what to ignore)
        base_sha, expected = await self._base(ctx, env, effect)
        watch = CIWatch(
            effect.sha,
            effect.phase_id,
            effect.rerun,
            self.clock(),
            base_sha=base_sha,
            expected=expected,
        )
        return env.note(ci=watch)

    async def _base(
        self, ctx: RunContext, env: Envelope, effect: WaitForCI
    ) -> tuple[str, tuple[str, ...]]:
        """The phase's base commit and every check/status name seen on it, read once a phase."""
        strategy = env.state.strategy
        assert strategy is not None
        if "all" not in strategy.ci.profile(effect.ci_profile).required:
            return "", ()
        previous = env.memo.ci
        if previous is not None and previous.phase_id == effect.phase_id and previous.base_sha:
            # A later attempt of the phase sits on the earlier one: the base stays the phase's.
            return previous.base_sha, previous.expected
        repo = ctx.record.repository
        parent = await commit_parent(ctx.gh, repo, effect.sha)
        if parent is None:
            return "", ()
        reports = Reports.collect(
            await check_runs_for(ctx.gh, repo, parent),
            await statuses_for(ctx.gh, repo, parent),
            own_app_id=self.own_app_id,
            ignore=strategy.ci.ignore_checks,
        )
        return parent, tuple(sorted(reports.names))

    async def rerun(
        self, ctx: RunContext, env: Envelope, effect: RerunCI
    ) -> tuple[Envelope, CIFinished | None]:
        """Ask CI to re-run the failed checks; a refused re-run is a red verdict with the reason."""
        repo = ctx.record.repository
        runs = await check_runs_for(ctx.gh, repo, effect.sha, include_reruns=True)
        statuses = await statuses_for(ctx.gh, repo, effect.sha)
        previous = env.memo.ci
        judged = (
            previous
            if previous is not None
            and previous.settled
            and (previous.sha, previous.rerun) == (effect.sha, effect.rerun - 1)
            else None
        )
        # The floor is what the red verdict saw, so a re-run that appeared since counts as new.
        floor = judged.seen_floor if judged else max((run.id for run in runs), default=0)
        reports = self._reports(env, runs, statuses)
        earlier = previous.failed_before if previous else ()
        watch = CIWatch(
            sha=effect.sha,
            phase_id=effect.phase_id,
            rerun=effect.rerun,
            since=self.clock(),
            failed_before=tuple(sorted({*earlier, *effect.checks})),
            rerun_names=tuple(sorted(effect.checks)),
            floor_id=floor,
            base_sha=previous.base_sha if previous else "",
            expected=previous.expected if previous else (),
        )
        if any(run.name in effect.checks and run.id > floor for run in runs):
            return env.note(ci=watch), None  # carried out again: the re-run already started
        try:
            covered, running = await self._request_reruns(ctx, reports, effect.sha, effect.checks)
        except RerunRefused as refused:
            event = _refused(watch, reports, effect.checks, refused)
            return env.note(ci=replace(watch, settled=True, seen_floor=floor)), event
        # A name nothing was asked to re-run is judged as it stands, not waited for.
        return env.note(ci=replace(watch, rerun_names=covered, rerun_unconfirmed=running)), None

    async def _ask_again(
        self,
        ctx: RunContext,
        env: Envelope,
        watch: CIWatch,
        runs: list[CheckRunView],
        statuses: list[StatusView],
    ) -> tuple[CIWatch, CIFinished | None]:
        """Ask again for the re-runs GitHub found already running, until a newer run of each
        shows (the re-run was under way) or GitHub accepts (the run had not concluded yet)."""
        newer = {run.name for run in runs if run.id > watch.floor_id}
        waiting = tuple(name for name in watch.rerun_unconfirmed if name not in newer)
        if waiting:
            reports = self._reports(env, runs, statuses)
            try:
                _, waiting = await self._request_reruns(ctx, reports, watch.sha, waiting)
            except RerunRefused as refused:
                return watch, _refused(watch, reports, waiting, refused)
        return replace(watch, rerun_unconfirmed=waiting), None

    async def _request_reruns(
        self, ctx: RunContext, reports: Reports, sha: str, names: Iterable[str]
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
        for suite_id, slug in sorted(suites.items()):
            answer = await rerun_suite(ctx.gh, ctx.record.repository, sha, suite_id, slug)
            if answer is RerunRequest.ALREADY_RUNNING:
                running += covered[suite_id]
        every = sorted(name for group in covered.values() for name in group)
        return tuple(every), tuple(sorted(running))

    def _reports(
        self, env: Envelope, runs: list[CheckRunView], statuses: list[StatusView]
    ) -> Reports:
        strategy = env.state.strategy
        assert strategy is not None
        return Reports.collect(
            runs, statuses, own_app_id=self.own_app_id, ignore=strategy.ci.ignore_checks
        )

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
            watch, event = await self._ask_again(ctx, env, watch, runs, statuses)
            env = env.note(ci=watch)
        if event is None:
            event = self._verdict(env, watch, runs, statuses, now)
        if event is None:
            return env, []
        seen = max((run.id for run in runs), default=0)
        return env.note(ci=replace(watch, settled=True, seen_floor=seen)), [event]

    def _verdict(
        self,
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
            runs, statuses, own_app_id=self.own_app_id, ignore=strategy.ci.ignore_checks
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
        watch = memo.ci
        if watch is not None and not watch.settled and waiting and waiting.kind is AwaitKind.CI:
            times.append(watch.since + strategy.ci.start_timeout_seconds + 1)
            times.append(now + self.settings.ci_poll_seconds)
        future = [t for t in times if t > now]
        return min(future) if future else (now + 1 if times else None)


def _refused(
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
