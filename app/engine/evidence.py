"""Keeping and reading the evidence a run's attempts leave (diffs, logs, findings, CI output).

The auditor's request and the incident pack read it (app/domain/evidence.py renders it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime

from app.agents.tarball import WorkspaceError
from app.domain.events import CIFinished, Event
from app.domain.evidence import EvidenceKind, PhaseEvidence, change_diff
from app.engine.context import RunContext
from app.engine.envelope import Envelope


async def attempt_diff(ctx: RunContext) -> str:
    """The work tree's change against the branch head as a unified diff."""
    workspace = ctx.workspace

    def render() -> str:
        return change_diff(workspace.compute_change())

    try:
        return await asyncio.to_thread(render)
    except WorkspaceError as exc:
        return f"(the change could not be read: {exc})"


async def keep(
    ctx: RunContext, phase_id: str, attempt: int, texts: dict[EvidenceKind, str]
) -> None:
    """Keep the texts as the evidence of one attempt (no store: nothing is kept)."""
    store = ctx.services.evidence
    if store is not None:
        at = datetime.fromtimestamp(ctx.now(), UTC)
        await store.record(ctx.record.id, phase_id, attempt, texts, at)


async def of_phase(ctx: RunContext, phase_id: str) -> PhaseEvidence:
    """The latest evidence of each kind the phase's attempts left."""
    store = ctx.services.evidence
    if store is None:
        return PhaseEvidence()
    return await store.of_phase(ctx.record.id, phase_id)


async def note_ci_output(ctx: RunContext, env: Envelope, events: Iterable[Event]) -> None:
    """What failing checks said, kept as the evidence of the attempt CI judged."""
    waiting = env.state.awaiting
    for event in events:
        if isinstance(event, CIFinished) and event.output and waiting is not None:
            texts = {EvidenceKind.CI_OUTPUT: event.output}
            await keep(ctx, event.phase_id, waiting.attempt, texts)
