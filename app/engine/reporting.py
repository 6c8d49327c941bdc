"""Reporting effects: the run's check run, its issue comment, labels, pull request and artefacts.

A failure to report never ends a run; the next report brings everything up to date again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import Settings
from app.domain.backlog import update_backlog
from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.effects import Effect, Finish, Report, WriteArtefacts
from app.domain.events import ArtefactsWritten, Event
from app.domain.report import issue_index, promotion, render_summary, status_line
from app.domain.run_state import RunState, RunStatus, TierStatus
from app.domain.triggers import RETRY_ACTION
from app.engine.envelope import Envelope
from app.github.checks import CheckAction, CheckRunOutput, create_check_run, update_check_run
from app.github.client import GitHubApp
from app.github.comments import upsert_run_comment
from app.github.commits import Attempt, BranchMoved
from app.github.labels import set_run_labels
from app.github.pulls import ensure_draft_pull, mark_ready_for_review, update_pull
from app.store.backlogs import BacklogStore

if TYPE_CHECKING:
    from app.engine.executor import RunContext

CHECK_NAME = "Autopack"
ARTEFACTS_DIR = ".autonomous_runs"
RETRY = CheckAction("Retry run", "Start a new run for this issue", RETRY_ACTION)
_CONCLUSIONS = {RunStatus.DONE_SUCCESS: "success", RunStatus.DONE_FAILED_CANCELLED: "cancelled"}


def external_id(repository: str, issue_number: int, run_id: str) -> str:
    """What the check run carries so a "Retry run" click names its issue and run."""
    return f"{repository}#{issue_number}/{run_id}"


class Reporter:
    """Carries out Report, Finish and WriteArtefacts."""

    def __init__(
        self, app: GitHubApp, settings: Settings, backlogs: BacklogStore | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.backlogs = backlogs

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
        if final:
            await self._age_backlog(ctx, env)
        env = await self._check_run(ctx, env, final)
        env = await self._pull(ctx, env, final)
        body = self._summary(ctx, env)
        comment = await upsert_run_comment(
            ctx.gh,
            ctx.record.repository,
            ctx.record.issue_number,
            ctx.record.id,
            body,
            env.memo.comment_id,
        )
        env = env.note(comment_id=comment, final_reported=final)
        state = env.state
        label = "running"
        if state.status.is_terminal:
            label = "done" if state.status is RunStatus.DONE_SUCCESS else "failed"
        if label != env.memo.label:  # labels change three times a run at most
            await set_run_labels(ctx.gh, ctx.record.repository, ctx.record.issue_number, label)
            env = env.note(label=label)
        return env, None

    async def _age_backlog(self, ctx: RunContext, env: Envelope) -> None:
        """Fold the run's issues into the repository's backlog (idempotent per run)."""
        state = env.state
        if self.backlogs is None or state.strategy is None:
            return
        ran = sum(
            1 for tier in state.tiers if tier.status in (TierStatus.COMPLETE, TierStatus.FAILED)
        )
        backlog = await self.backlogs.get(ctx.record.repository)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        updated = update_backlog(backlog, issue_index(state), ctx.record.id, ran, now)
        if updated != backlog:
            await self.backlogs.put(ctx.record.repository, updated)

    def _summary(self, ctx: RunContext, env: Envelope) -> str:
        url = f"#{env.memo.pull_number}" if env.memo.pull_number else None
        return render_summary(
            env.state, title=env.memo.issue_title, branch=ctx.record.branch, pull_url=url
        )

    async def _check_run(self, ctx: RunContext, env: Envelope, final: bool) -> Envelope:
        state = env.state
        head = env.memo.final_head or state.head_sha
        if head is None:
            return env
        summary = self._summary(ctx, env)
        output = CheckRunOutput(
            title=f"Autopack: {state.status.value}", summary=summary[:60000] or status_line(state)
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
            check_id = await create_check_run(
                ctx.gh,
                repo,
                head,
                CHECK_NAME,
                external_id(repo, ctx.record.issue_number, ctx.record.id),
                output,
            )
            env = env.note(check_run_id=check_id, check_run_sha=head)
            if not final:
                return env  # created with the current output: nothing to update
        if final:
            conclusion = _CONCLUSIONS.get(state.status, "failure")
            actions = (RETRY,) if conclusion == "failure" else ()
            await update_check_run(
                ctx.gh,
                repo,
                env.memo.check_run_id or 0,
                conclusion=conclusion,
                output=output,
                actions=actions,
            )
        else:
            await update_check_run(ctx.gh, repo, env.memo.check_run_id or 0, output=output)
        return env

    async def _pull(self, ctx: RunContext, env: Envelope, final: bool) -> Envelope:
        state = env.state
        landed = any(phase.last_commit for phase in state.phases)
        if not landed or not env.memo.default_branch:
            return env
        repo = ctx.record.repository
        title = f"Autopack: {env.memo.issue_title}"
        body = self._summary(ctx, env) + f"\nRefs #{ctx.record.issue_number}\n"
        if env.memo.pull_number is None:
            pull = await ensure_draft_pull(
                ctx.gh, repo, ctx.record.branch, env.memo.default_branch, title, body
            )
            env = env.note(pull_number=pull.number, pull_node_id=pull.node_id)
        elif final:  # the body is the run summary: refreshed at the end, not on every step
            await update_pull(ctx.gh, repo, env.memo.pull_number, body=body)
        if final and not env.memo.pull_ready and promotion(state).eligible:
            await mark_ready_for_review(ctx.gh, env.memo.pull_node_id)
            env = env.note(pull_ready=True)
        return env

    async def _artefacts(
        self, ctx: RunContext, env: Envelope, effect: WriteArtefacts
    ) -> tuple[Envelope, Event | None]:
        files = artefact_files(env.state, self._summary(ctx, env))
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


def artefact_files(state: RunState, summary: str) -> dict[str, str]:
    """The run artefacts: strategy, issue index, summary, and an incident pack on failure."""
    files = {
        "RUN_SUMMARY.md": summary,
        "run_issue_index.json": json.dumps(issue_index(state).to_json(), indent=2) + "\n",
    }
    if state.strategy is not None:
        files["strategy.json"] = json.dumps(state.strategy.to_json(), indent=2) + "\n"
    for phase in state.phases:
        if phase.issues or phase.feedback:
            files[f"phase_{phase.phase_id}_issues.json"] = (
                json.dumps(
                    {
                        "issues": [[k, s.value] for k, s in phase.issues],
                        "feedback": list(phase.feedback),
                    },
                    indent=2,
                )
                + "\n"
            )
    if state.status.is_terminal and state.status is not RunStatus.DONE_SUCCESS:
        files["INCIDENT.md"] = (
            f"# Incident: run {state.run_id}\n\n{status_line(state)}\n\n"
            "What happened, phase by phase, is in RUN_SUMMARY.md; the strategy in force is "
            "strategy.json; issues and builder feedback per phase are in the phase files.\n"
        )
    return files


def _write_all(folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        temporary = folder / f".{name}.tmp"
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(folder / name)
