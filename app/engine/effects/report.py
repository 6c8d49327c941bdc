"""Report and Finish: the run's check run, issue comment, labels and pull request, and (at the
end) the repository's backlog.

A failure to report never ends a run; the next report brings everything up to date again.
Updates are coalesced to spare the API budget: the check run is current at every report (a new
head gets a new one, the older one is completed as superseded); the comment and the pull request
body are edited when what they show changed in kind (state, pull request, phases landed) and at
most once per COALESCE_SECONDS otherwise, and always at the end.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from app.domain.effects import Finish, Report
from app.domain.issue_record import Severity
from app.domain.report import (
    ReportView,
    annotations_for,
    promotion,
    render_check_summary,
    render_check_text,
    render_check_title,
    render_comment,
    render_pull_body,
)
from app.domain.report_backlog import (
    BACKLOG_TITLE,
    backlog_after_run,
    backlog_marker,
    render_backlog_issue,
)
from app.domain.run_state import RunState, RunStatus
from app.engine.context import Outcome, RunContext
from app.engine.effects.views import Rows, report_view
from app.engine.envelope import Envelope
from app.github.backlog_issue import upsert_backlog_issue
from app.github.checks import (
    RETRY,
    Annotation,
    CheckRunOutput,
    create_check_run,
    find_check_run,
    update_check_run,
)
from app.github.comments import upsert_run_comment
from app.github.labels import set_run_labels
from app.github.pulls import ensure_draft_pull, mark_ready_for_review, update_pull

CHECK_NAME = "Autopack"
COALESCE_SECONDS = 10.0
_CONCLUSIONS = {RunStatus.DONE_SUCCESS: "success", RunStatus.DONE_FAILED_CANCELLED: "cancelled"}


def external_id(repository: str, issue_number: int, run_id: str) -> str:
    """What the check run carries so a "Retry run" click names its issue and run."""
    return f"{repository}#{issue_number}/{run_id}"


async def report(ctx: RunContext, env: Envelope, effect: Report) -> Outcome:
    """Bring the check run, the pull request, the comment and the labels up to date."""
    return await _report(ctx, env, final=env.state.status.is_terminal), None


async def finish(ctx: RunContext, env: Envelope, effect: Finish) -> Outcome:
    """The terminal report (nothing, when the terminal Report already went out)."""
    return await _report(ctx, env, final=True), None


async def _report(ctx: RunContext, env: Envelope, *, final: bool) -> Envelope:
    if env.memo.cadence.final_reported:
        return env  # Finish right after the terminal Report: nothing new to say
    rows = await Rows.read(ctx)
    if final:
        env = await _age_backlog(ctx, env, rows)
    env = await _check_run(ctx, env, report_view(ctx, env, rows), final)
    env = await _pull(ctx, env, rows, final)
    env = await _comment(ctx, env, rows, final)
    env = env.put(env.memo.cadence.reported(final))
    status = env.state.status
    label = "running"
    if status.is_terminal:
        label = "done" if status is RunStatus.DONE_SUCCESS else "failed"
    if label != env.memo.github.label:  # labels change three times a run at most
        await set_run_labels(ctx.gh, ctx.record.repository, ctx.record.issue_number, label)
        env = env.put(env.memo.github.labelled(label))
    return env


async def _age_backlog(ctx: RunContext, env: Envelope, rows: Rows) -> Envelope:
    """Fold the run's issues into the repository's backlog (idempotent per run) and bring the
    repository's backlog issue up to date, with the ruleset changes it suggests."""
    state, backlogs = env.state, ctx.services.backlogs
    if backlogs is None or state.strategy is None:
        return env
    repo = ctx.record.repository
    backlog = await backlogs.get(repo)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    update = backlog_after_run(backlog, state, {row.issue_key: row for row in rows.issues}, now)
    updated = update.backlog
    if updated != backlog:
        await backlogs.put(repo, updated)
    body = render_backlog_issue(repo, updated, now, update.suggestions)
    number = await upsert_backlog_issue(
        ctx.gh, repo, BACKLOG_TITLE, backlog_marker(repo), body, create=bool(updated.entries)
    )
    return env.put(env.memo.github.with_backlog_issue(number))


async def _comment(ctx: RunContext, env: Envelope, rows: Rows, final: bool) -> Envelope:
    """Create the run's comment, or edit it when what it shows changed in kind."""
    ids, cadence, now = env.memo.github, env.memo.cadence, ctx.now()
    status = env.state.status.value
    changed = (cadence.commented_status, cadence.commented_pull) != (status, ids.pull_number)
    due = now - cadence.commented_at >= COALESCE_SECONDS
    if ids.comment_id is not None and not (final or changed or due):
        return env
    record = ctx.record
    comment = await upsert_run_comment(
        ctx.gh,
        record.repository,
        record.issue_number,
        record.id,
        render_comment(report_view(ctx, env, rows)),
        ids.comment_id,
    )
    env = env.put(ids.with_comment(comment))
    return env.put(cadence.commented(status, ids.pull_number, now))


async def _check_run(ctx: RunContext, env: Envelope, view: ReportView, final: bool) -> Envelope:
    state = env.state
    head = env.memo.tip.final_head or state.head_sha
    if head is None:
        return env
    output = CheckRunOutput(
        title=render_check_title(view),
        summary=render_check_summary(view),
        text=render_check_text(view),
    )
    repo, ids = ctx.record.repository, env.memo.github
    if ids.check_run_id is None or ids.check_run_sha != head:
        if ids.check_run_id is not None:
            # The head moved on: the older commit's check run is superseded.
            superseded = CheckRunOutput(title="Superseded", summary=f"Continued on {head}.")
            await update_check_run(
                ctx.gh, repo, ids.check_run_id, conclusion="neutral", output=superseded
            )
        marker = external_id(repo, ctx.record.issue_number, ctx.record.id)
        # A worker that died after creating it, before noting its id, left one to reuse.
        found = await find_check_run(ctx.gh, repo, head, CHECK_NAME, marker)
        check_id = found or await create_check_run(ctx.gh, repo, head, CHECK_NAME, marker, output)
        env = env.put(ids.with_check_run(check_id, head))
        shown = state.status.value if found is None else ""
        env = env.put(env.memo.cadence.checked(shown, ctx.now()))
        if not final and found is None:
            return env  # created with the current output: nothing to update
    check_run_id = env.memo.github.check_run_id or 0
    if final:
        conclusion = _CONCLUSIONS.get(state.status, "failure")
        actions = (RETRY,) if conclusion == "failure" else ()
        # Annotations only now: GitHub appends them on every update, so sent once, at the end,
        # on the final head (where the paths they point at are).
        notes = annotations_for(view.issues, effective=_effective(state))
        output = dataclasses.replace(
            output, annotations=tuple(Annotation(**dataclasses.asdict(a)) for a in notes)
        )
        await update_check_run(
            ctx.gh, repo, check_run_id, conclusion=conclusion, output=output, actions=actions
        )
        return env
    cadence, now = env.memo.cadence, ctx.now()
    recent = now - cadence.checked_at < COALESCE_SECONDS
    if cadence.checked_status == state.status.value and recent:
        return env  # same state, same head, updated moments ago: the next one will do
    await update_check_run(ctx.gh, repo, check_run_id, output=output)
    return env.put(cadence.checked(state.status.value, now))


async def _pull(ctx: RunContext, env: Envelope, rows: Rows, final: bool) -> Envelope:
    state, facts = env.state, env.memo.facts
    if not any(phase.last_commit for phase in state.phases) or not facts.default_branch:
        return env
    repo = ctx.record.repository
    title = f"Autopack: {facts.issue_title}"
    landed = sum(1 for phase in state.phases if phase.last_commit)
    ids, cadence, now = env.memo.github, env.memo.cadence, ctx.now()
    if ids.pull_number is None:
        body = render_pull_body(report_view(ctx, env, rows))
        pull = await ensure_draft_pull(
            ctx.gh, repo, ctx.record.branch, facts.default_branch, title, body
        )
        env = env.put(ids.with_pull(pull.number, pull.node_id))
        env = env.put(cadence.pull_refreshed(landed, now))
    elif final or (
        landed != cadence.pull_refreshed_landed
        and now - cadence.pull_refreshed_at >= COALESCE_SECONDS
    ):
        # The body is the run summary: refreshed as phases land (coalesced) and at the end.
        body = render_pull_body(report_view(ctx, env, rows))
        await update_pull(ctx.gh, repo, ids.pull_number, body=body)
        env = env.put(cadence.pull_refreshed(landed, now))
    ids = env.memo.github
    if final and not ids.pull_ready and promotion(state).eligible:
        await mark_ready_for_review(ctx.gh, ids.pull_node_id)
        env = env.put(ids.pull_marked_ready())
    return env


def _effective(state: RunState) -> dict[str, Severity]:
    return dict(state.strategy.effective_severity) if state.strategy is not None else {}
