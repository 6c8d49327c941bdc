"""WaitForCI and RerunCI: start watching a pushed commit's CI, and re-run failed checks."""

from __future__ import annotations

from dataclasses import replace

from app.domain.ci import Outcome as CheckOutcome
from app.domain.ci import Reports, check_outcome, failure_output, status_outcome
from app.domain.effects import RerunCI, WaitForCI
from app.domain.events import CIFinished, CIResult
from app.engine.ci_watch import own_app_id
from app.engine.context import Outcome, RunContext
from app.engine.envelope import Envelope
from app.engine.memo import CIWatch
from app.github.ci_status import (
    RerunRefused,
    check_runs_for,
    commit_parent,
    rerun_requested,
    rerun_suite,
    statuses_for,
)


async def wait_for_ci(ctx: RunContext, env: Envelope, effect: WaitForCI) -> Outcome:
    """Start waiting for CI on a pushed commit (with the base's names when all are required)."""
    current = env.memo.ci
    if current and (current.sha, current.rerun) == (effect.sha, effect.rerun):
        return env, None  # RerunCI already set up this wait (and what to ignore)
    base_sha, expected = await _base(ctx, env, effect)
    watch = CIWatch(
        effect.sha, effect.phase_id, effect.rerun, ctx.now(), base_sha=base_sha, expected=expected
    )
    return env.put(watch), None


async def _base(ctx: RunContext, env: Envelope, effect: WaitForCI) -> tuple[str, tuple[str, ...]]:
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
        own_app_id=own_app_id(ctx.settings),
        ignore=strategy.ci.ignore_checks,
    )
    return parent, tuple(sorted(reports.names))


async def rerun_ci(ctx: RunContext, env: Envelope, effect: RerunCI) -> Outcome:
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
    strategy = env.state.strategy
    assert strategy is not None
    reports = Reports.collect(
        runs, statuses, own_app_id=own_app_id(ctx.settings), ignore=strategy.ci.ignore_checks
    )
    earlier = previous.failed_before if previous else ()
    watch = CIWatch(
        sha=effect.sha,
        phase_id=effect.phase_id,
        rerun=effect.rerun,
        since=ctx.now(),
        failed_before=tuple(sorted({*earlier, *effect.checks})),
        rerun_names=tuple(sorted(effect.checks)),
        floor_id=floor,
        base_sha=previous.base_sha if previous else "",
        expected=previous.expected if previous else (),
    )
    if any(run.name in effect.checks and run.id > floor for run in runs):
        return env.put(watch), None  # carried out again: the re-run already started
    try:
        covered = await _request_reruns(ctx, reports, effect)
    except RerunRefused as refused:
        event = CIFinished(
            phase_id=effect.phase_id,
            sha=effect.sha,
            result=CIResult.RED,
            failed_checks=tuple(sorted(effect.checks)),
            summary=f"re-run refused: {refused}",
            rerun=effect.rerun,
            output=failure_output(reports, effect.checks),
        )
        return env.put(watch.settle(floor)), event
    # A name nothing was asked to re-run is judged as it stands, not waited for.
    return env.put(replace(watch, rerun_names=covered)), None


async def _request_reruns(ctx: RunContext, reports: Reports, effect: RerunCI) -> tuple[str, ...]:
    """Re-run the suites of the failed check runs (the names they cover); only CI itself can
    re-run a status."""
    statuses = sorted(
        name
        for name in effect.checks
        if (status := reports.statuses.get(name)) is not None
        and status_outcome(status) is CheckOutcome.FAILED
    )
    if statuses:
        raise RerunRefused(
            "commit status contexts cannot be re-run through GitHub: " + ", ".join(statuses)
        )
    suites: dict[int, str] = {}
    covered = []
    for name in sorted(effect.checks):
        run = reports.runs.get(name)
        if run is None or run.suite_id is None or check_outcome(run) is not CheckOutcome.FAILED:
            continue
        suites[run.suite_id] = run.app_slug
        covered.append(name)
    repo = ctx.record.repository
    for suite_id, slug in sorted(suites.items()):
        # A suite judged red is completed; queued again, it was asked already (this effect
        # carried out again after a crash): asking twice runs CI twice, or Actions refuses.
        if not await rerun_requested(ctx.gh, repo, suite_id):
            await rerun_suite(ctx.gh, repo, effect.sha, suite_id, slug)
    return tuple(covered)
