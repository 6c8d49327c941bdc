"""WriteArtefacts: the run's artefacts (summary, issue index, strategy, phase files, incident
pack), kept on the server and, at the end, committed under `.autonomous_runs/<run>/`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.effects import WriteArtefacts
from app.domain.events import ArtefactsWritten
from app.domain.report import INCIDENT_FILE, issue_index, render_run_summary
from app.domain.report_incident import render_incident
from app.domain.run_state import RunState, RunStatus
from app.domain.secrets_scan import redact
from app.engine.context import Outcome, RunContext
from app.engine.effects.views import ARTEFACTS_DIR, Rows, report_view
from app.engine.envelope import Envelope
from app.github.commits import Attempt, BranchMoved
from app.store.progress import IssueRow


async def write_artefacts(ctx: RunContext, env: Envelope, effect: WriteArtefacts) -> Outcome:
    """Write the artefacts to the data directory; at the end also commit them on the branch."""
    rows = await Rows.read(ctx)
    view = report_view(ctx, env, rows)
    incident = ""
    status = env.state.status
    store = ctx.services.evidence
    if status.is_terminal and status is not RunStatus.DONE_SUCCESS:
        evidence = await store.of_run(ctx.record.id) if store is not None else {}
        incident = render_incident(view, evidence)
    details = {row.issue_key: row for row in rows.issues}
    files = artefact_files(env.state, render_run_summary(view), details, incident)
    folder = ctx.settings.data_dir / "runs" / ctx.record.id
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
    writer, attempt = ctx.writer(env.memo), Attempt(ctx.record.id, "artefacts", 1)
    # Carried out again after a crash, the commit may be there: a second try would leave a
    # tree and a commit on GitHub that no branch holds before it found the first.
    result = await writer.landed(effect.branch, head, attempt)
    if result is None:
        try:
            result = await writer.push(
                effect.branch,
                change,
                expected_head=head,
                base_tree=env.memo.tip.head_tree,
                message=f"Autopack run {ctx.record.id}: artefacts",
                attempt=attempt,
            )
        except BranchMoved:
            return env, ArtefactsWritten(None)
    env = env.put(env.memo.tip.finished(result.tree_sha, result.commit_sha))
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
