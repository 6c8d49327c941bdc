"""Reporting effects: the run's check run, its issue comment, labels, pull request, artefacts and
the repository's backlog issue.

A failure to report never ends a run; the next report brings everything up to date again.
Updates are coalesced to spare the API budget: the check run is current at every report (a new
head gets a new one, the older one is completed as superseded); the comment and the pull request
body are edited when what they show changed in kind (state, pull request, phases landed) and at
most once per COALESCE_SECONDS otherwise, and always at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings
from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.effects import Effect, Finish, Report, WriteArtefacts
from app.domain.events import ArtefactsWritten, Event
from app.domain.issue_record import Severity
from app.domain.report import (
    INCIDENT_FILE,
    ReportView,
    annotations_for,
    issue_index,
    promotion,
    render_check_summary,
    render_check_text,
    render_check_title,
    render_comment,
    render_pull_body,
    render_run_summary,
    web_root,
)
from app.domain.report_backlog import (
    BACKLOG_TITLE,
    backlog_after_run,
    backlog_marker,
    render_backlog_issue,
)
from app.domain.report_incident import render_incident
from app.domain.run_state import RunState, RunStatus
from app.domain.secrets_scan import redact
from app.domain.triggers import RETRY_ACTION
from app.engine.envelope import Envelope
from app.github.backlog_issue import upsert_backlog_issue
from app.github.checks import (
    Annotation,
    CheckAction,
    CheckRunOutput,
    create_check_run,
    find_check_run,
    update_check_run,
)
from app.github.client import GitHubApp
from app.github.comments import upsert_run_comment
from app.github.commits import Attempt, BranchMoved
from app.github.labels import set_run_labels
from app.github.pulls import ensure_draft_pull, mark_ready_for_review, update_pull
from app.store.backlogs import BacklogStore
from app.store.evidence import EvidenceStore
from app.store.progress import AttemptRow, IssueRow, ProgressStore

if TYPE_CHECKING:
    from app.engine.executor import RunContext

CHECK_NAME = "Autopack"
COALESCE_SECONDS = 10.0
ARTEFACTS_DIR = ".autonomous_runs"
RETRY = CheckAction("Retry run", "Start a new run for this issue", RETRY_ACTION)
_CONCLUSIONS = {RunStatus.DONE_SUCCESS: "success", RunStatus.DONE_FAILED_CANCELLED: "cancelled"}


_Rows = tuple[tuple[IssueRow, ...], tuple[AttemptRow, ...]]


def _effective(state: RunState) -> dict[str, Severity]:
    return dict(state.strategy.effective_severity) if state.strategy is not None else {}


def external_id(repository: str, issue_number: int, run_id: str) -> str:
    """What the check run carries so a "Retry run" click names its issue and run."""
    return f"{repository}#{issue_number}/{run_id}"


class Reporter:
    """Carries out Report, Finish and WriteArtefacts."""

    def __init__(
        self,
        app: GitHubApp,
        settings: Settings,
        backlogs: BacklogStore | None = None,
        progress: ProgressStore | None = None,
        evidence: EvidenceStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.settings = settings
        self.backlogs = backlogs
        self.progress = progress
        self.evidence = evidence
        self.clock = clock

    def handles(self, effect: Effect) -> bool:
        """True for the effects this class carries out."""
        return isinstance(effect, Report | Finish | WriteArtefacts)

    async def execute(
        self, ctx: RunContext, env: Envelope, effect: Effect
    ) -> tuple[Envelope, Event | None]:
        """Carry out one reporting effect."""
        if isinstance(effect, WriteArtefacts):
            return await self._artefacts(ctx, env, effect)
        final = isinstance(effect, Finish) or env.state.status.is_terminal
        if env.memo.final_reported:
            return env, None  # Finish right after the terminal Report: nothing new to say
        rows = await self._rows(ctx)
        if final:
            env = await self._age_backlog(ctx, env, rows)
        env = await self._check_run(ctx, env, self._view(ctx, env, rows), final)
        env = await self._pull(ctx, env, rows, final)
        env = await self._comment(ctx, env, rows, final)
        env = env.note(final_reported=final)
        state = env.state
        label = "running"
        if state.status.is_terminal:
            label = "done" if state.status is RunStatus.DONE_SUCCESS else "failed"
        if label != env.memo.label:  # labels change three times a run at most
            await set_run_labels(ctx.gh, ctx.record.repository, ctx.record.issue_number, label)
            env = env.note(label=label)
        return env, None

    async def _age_backlog(self, ctx: RunContext, env: Envelope, rows: _Rows) -> Envelope:
        """Fold the run's issues into the repository's backlog (idempotent per run) and bring
        the repository's backlog issue up to date, with the ruleset changes it suggests."""
        state = env.state
        if self.backlogs is None or state.strategy is None:
            return env
        repo = ctx.record.repository
        backlog = await self.backlogs.get(repo)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        update = backlog_after_run(backlog, state, {row.issue_key: row for row in rows[0]}, now)
        updated = update.backlog
        if updated != backlog:
            await self.backlogs.put(repo, updated)
        body = render_backlog_issue(repo, updated, now, update.suggestions)
        number = await upsert_backlog_issue(
            ctx.gh, repo, BACKLOG_TITLE, backlog_marker(repo), body, create=bool(updated.entries)
        )
        return env.note(backlog_issue=number)

    async def _rows(self, ctx: RunContext) -> _Rows:
        """The run's issues and attempts as stored (none without a progress store)."""
        if self.progress is None:
            return (), ()
        run_id = ctx.record.id
        return tuple(await self.progress.issues(run_id)), tuple(
            await self.progress.attempts(run_id)
        )

    def _view(self, ctx: RunContext, env: Envelope, rows: _Rows) -> ReportView:
        """Everything the renderers need about the run as `env` has it now."""
        record = ctx.record
        web = web_root(self.settings.github_api_url)
        issues, attempts = rows
        check_url = None
        if env.memo.check_run_id is not None:
            check_url = f"{web}/{record.repository}/runs/{env.memo.check_run_id}"
        return ReportView(
            state=env.state,
            repository=record.repository,
            issue_number=record.issue_number,
            run_number=record.run_number,
            title=env.memo.issue_title,
            branch=record.branch,
            html_url=web,
            started_at=record.created_at.timestamp(),
            now=self.clock(),
            pull_number=env.memo.pull_number,
            check_run_url=check_url,
            issues=issues,
            attempts=attempts,
            artefacts_path=f"{ARTEFACTS_DIR}/{record.id}/",
        )

    async def _comment(self, ctx: RunContext, env: Envelope, rows: _Rows, final: bool) -> Envelope:
        """Create the run's comment, or edit it when what it shows changed in kind."""
        memo, now = env.memo, self.clock()
        status = env.state.status.value
        changed = (memo.commented_status, memo.commented_pull) != (status, memo.pull_number)
        due = now - memo.commented_at >= COALESCE_SECONDS
        if memo.comment_id is not None and not (final or changed or due):
            return env
        comment = await upsert_run_comment(
            ctx.gh,
            ctx.record.repository,
            ctx.record.issue_number,
            ctx.record.id,
            render_comment(self._view(ctx, env, rows)),
            memo.comment_id,
        )
        return env.note(
            comment_id=comment,
            commented_status=status,
            commented_pull=memo.pull_number,
            commented_at=now,
        )

    async def _check_run(
        self, ctx: RunContext, env: Envelope, view: ReportView, final: bool
    ) -> Envelope:
        state = env.state
        head = env.memo.final_head or state.head_sha
        if head is None:
            return env
        output = CheckRunOutput(
            title=render_check_title(view),
            summary=render_check_summary(view),
            text=render_check_text(view),
        )
        repo = ctx.record.repository
        if env.memo.check_run_id is None or env.memo.check_run_sha != head:
            if env.memo.check_run_id is not None:
                # The head moved on: the older commit's check run is superseded.
                await update_check_run(
                    ctx.gh,
                    repo,
                    env.memo.check_run_id,
                    conclusion="neutral",
                    output=CheckRunOutput(title="Superseded", summary=f"Continued on {head}."),
                )
            marker = external_id(repo, ctx.record.issue_number, ctx.record.id)
            # A worker that died after creating it, before noting its id, left one to reuse.
            found = await find_check_run(ctx.gh, repo, head, CHECK_NAME, marker)
            check_id = found or await create_check_run(
                ctx.gh, repo, head, CHECK_NAME, marker, output
            )
            env = env.note(
                check_run_id=check_id,
                check_run_sha=head,
                checked_status=state.status.value if found is None else "",
                checked_at=self.clock(),
            )
            if not final and found is None:
                return env  # created with the current output: nothing to update
        if final:
            conclusion = _CONCLUSIONS.get(state.status, "failure")
            actions = (RETRY,) if conclusion == "failure" else ()
            # Annotations only now: GitHub appends them on every update, so sent once, at the
            # end, on the final head (where the paths they point at are).
            notes = annotations_for(view.issues, effective=_effective(state))
            output = dataclasses.replace(
                output, annotations=tuple(Annotation(**dataclasses.asdict(a)) for a in notes)
            )
            await update_check_run(
                ctx.gh,
                repo,
                env.memo.check_run_id or 0,
                conclusion=conclusion,
                output=output,
                actions=actions,
            )
        else:
            now, memo = self.clock(), env.memo
            recent = now - memo.checked_at < COALESCE_SECONDS
            if memo.checked_status == state.status.value and recent:
                return env  # same state, same head, updated moments ago: the next one will do
            await update_check_run(ctx.gh, repo, memo.check_run_id or 0, output=output)
            env = env.note(checked_status=state.status.value, checked_at=now)
        return env

    async def _pull(self, ctx: RunContext, env: Envelope, rows: _Rows, final: bool) -> Envelope:
        state = env.state
        if not any(phase.last_commit for phase in state.phases) or not env.memo.default_branch:
            return env
        repo = ctx.record.repository
        title = f"Autopack: {env.memo.issue_title}"
        landed = sum(1 for phase in state.phases if phase.last_commit)
        memo, now = env.memo, self.clock()
        if memo.pull_number is None:
            body = render_pull_body(self._view(ctx, env, rows))
            pull = await ensure_draft_pull(
                ctx.gh, repo, ctx.record.branch, memo.default_branch, title, body
            )
            env = env.note(
                pull_number=pull.number,
                pull_node_id=pull.node_id,
                pull_refreshed_landed=landed,
                pull_refreshed_at=now,
            )
        elif final or (
            landed != memo.pull_refreshed_landed
            and now - memo.pull_refreshed_at >= COALESCE_SECONDS
        ):
            # The body is the run summary: refreshed as phases land (coalesced) and at the end.
            body = render_pull_body(self._view(ctx, env, rows))
            await update_pull(ctx.gh, repo, memo.pull_number, body=body)
            env = env.note(pull_refreshed_landed=landed, pull_refreshed_at=now)
        if final and not env.memo.pull_ready and promotion(state).eligible:
            await mark_ready_for_review(ctx.gh, env.memo.pull_node_id)
            env = env.note(pull_ready=True)
        return env

    async def _artefacts(
        self, ctx: RunContext, env: Envelope, effect: WriteArtefacts
    ) -> tuple[Envelope, Event | None]:
        rows = await self._rows(ctx)
        view = self._view(ctx, env, rows)
        incident = ""
        if env.state.status.is_terminal and env.state.status is not RunStatus.DONE_SUCCESS:
            evidence = await self.evidence.of_run(ctx.record.id) if self.evidence else {}
            incident = render_incident(view, evidence)
        files = artefact_files(
            env.state, render_run_summary(view), {row.issue_key: row for row in rows[0]}, incident
        )
        folder = self.settings.data_dir / "runs" / ctx.record.id
        await asyncio.to_thread(_write_all, folder, files)
        head = env.state.head_sha
        if not effect.final or effect.branch is None or head is None:
            return env, ArtefactsWritten(None)
        change = Change(
            base_commit=head,
            files=tuple(
                FileChange(
                    f"{ARTEFACTS_DIR}/{ctx.record.id}/{name}",
                    ChangeKind.ADDED,
                    EntryType.FILE,
                    content.encode(),
                )
                for name, content in sorted(files.items())
            ),
        )
        try:
            result = await ctx.writer.push(
                effect.branch,
                change,
                expected_head=head,
                base_tree=env.memo.head_tree,
                message=f"Autopack run {ctx.record.id}: artefacts",
                attempt=Attempt(ctx.record.id, "artefacts", 1),
            )
        except BranchMoved:
            return env, ArtefactsWritten(None)
        env = env.note(head_tree=result.tree_sha, final_head=result.commit_sha)
        return env, ArtefactsWritten(result.commit_sha)


def artefact_files(
    state: RunState,
    summary: str,
    details: Mapping[str, IssueRow] | None = None,
    incident: str = "",
) -> dict[str, str]:
    """The run artefacts: strategy, issue index, summary, and the incident pack if given."""
    index = issue_index(state, details)
    files = {
        "RUN_SUMMARY.md": summary,
        "run_issue_index.json": _json(index.to_json()),
    }
    if state.strategy is not None:
        files["strategy.json"] = json.dumps(state.strategy.to_json(), indent=2) + "\n"
    for phase in state.phases:
        if phase.issues or phase.feedback or phase.needs_review:
            files[f"phase_{phase.phase_id}_issues.json"] = _json(
                {
                    "issues": [[k, s.value] for k, s in phase.issues],
                    "feedback": list(phase.feedback),
                    "needs_human_review": list(phase.needs_review),
                }
            )
    if incident:
        files[INCIDENT_FILE] = incident
    return files


def _json(data: object) -> str:
    """An artefact's JSON, every string in it redacted (evidence and feedback echo builders)."""
    return json.dumps(_redacted(data), indent=2) + "\n"


def _redacted(data: object) -> object:
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, list | tuple):
        return [_redacted(item) for item in data]
    if isinstance(data, dict):
        return {redact(str(key)): _redacted(value) for key, value in data.items()}
    return data


def _write_all(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        temporary = folder / f".{name}.tmp"
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(folder / name)
