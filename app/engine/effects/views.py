"""The run as the report renderers see it: its state, its progress rows and its links."""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.report import ReportView, web_root
from app.engine.context import RunContext
from app.engine.envelope import Envelope
from app.store.progress import AttemptRow, IssueRow

ARTEFACTS_DIR = ".autonomous_runs"


@dataclass(frozen=True)
class Rows:
    """The run's issue and attempt rows as stored (none without a progress store)."""

    issues: tuple[IssueRow, ...] = ()
    attempts: tuple[AttemptRow, ...] = ()

    @classmethod
    async def read(cls, ctx: RunContext) -> Rows:
        """Read them for the run of `ctx`."""
        progress = ctx.services.progress
        if progress is None:
            return cls()
        run_id = ctx.record.id
        return cls(tuple(await progress.issues(run_id)), tuple(await progress.attempts(run_id)))


def report_view(ctx: RunContext, env: Envelope, rows: Rows) -> ReportView:
    """Everything the renderers need about the run as `env` has it now."""
    record, memo = ctx.record, env.memo
    web = web_root(ctx.settings.github_api_url)
    check_url = None
    if memo.github.check_run_id is not None:
        check_url = f"{web}/{record.repository}/runs/{memo.github.check_run_id}"
    return ReportView(
        state=env.state,
        repository=record.repository,
        issue_number=record.issue_number,
        run_number=record.run_number,
        title=memo.facts.issue_title,
        branch=record.branch,
        html_url=web,
        started_at=record.created_at.timestamp(),
        now=ctx.now(),
        pull_number=memo.github.pull_number,
        check_run_url=check_url,
        issues=rows.issues,
        attempts=rows.attempts,
        artefacts_path=f"{ARTEFACTS_DIR}/{record.id}/",
    )
