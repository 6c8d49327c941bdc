"""WaitForCI and RerunCI: start watching a pushed commit's CI, and re-run failed checks."""

from __future__ import annotations

from dataclasses import replace

from app.domain.ci import Reports
from app.domain.effects import RerunCI, WaitForCI
from app.engine.ci_watch import own_app_id, refused_verdict, reports_of, request_reruns
from app.engine.context import Outcome, RunContext
from app.engine.envelope import Envelope
from app.engine.memo import CIWatch
from app.github.ci_status import RerunRefused, check_runs_for, commit_parent, statuses_for


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
    """Ask CI to re-run the failed checks; a refused re-run is a red verdict with the reason.

    A re-run GitHub finds already under way (a replay after a crash, or a workflow run not
    concluded yet) is waited for: the CI watch asks again until a newer run shows or GitHub
    accepts.
    """
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
    reports = reports_of(ctx.settings, env, runs, statuses)
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
        covered, running = await request_reruns(ctx, reports, effect.sha, effect.checks)
    except RerunRefused as refused:
        event = refused_verdict(watch, reports, effect.checks, refused)
        return env.put(watch.settle(floor)), event
    # A name nothing was asked to re-run is judged as it stands, not waited for.
    return env.put(replace(watch, rerun_names=covered, rerun_unconfirmed=running)), None
