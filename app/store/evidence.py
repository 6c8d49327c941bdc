"""Evidence rows: what each attempt left (diff, builder log, gate findings, CI output).

Written by the executor as attempts happen, one row per (phase, attempt, kind); a repeated
write (an effect carried out again after a crash) replaces the row. Read for the auditor's
request and the incident pack, which want the latest of each kind for a phase.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.evidence import EvidenceKind, PhaseEvidence, capped
from app.store.db import conflict_insert, session_factory
from app.store.models import RunEvidenceRow


class EvidenceStore:
    """Records and reads the evidence of a run's attempts."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    async def record(
        self,
        run_id: str,
        phase_id: str,
        attempt: int,
        texts: Mapping[EvidenceKind, str],
        at: datetime,
    ) -> None:
        """Keep the non-empty texts (capped by kind) as this attempt's evidence."""
        rows = [
            {
                "run_id": run_id,
                "phase_id": phase_id,
                "attempt": attempt,
                "kind": kind.value,
                "text": capped(kind, text),
                "recorded_at": at,
            }
            for kind, text in texts.items()
            if text
        ]
        if not rows:
            return
        statement = conflict_insert(self._engine.dialect.name, RunEvidenceRow).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["run_id", "phase_id", "attempt", "kind"],
            set_={"text": statement.excluded.text, "recorded_at": statement.excluded.recorded_at},
        )
        async with self._sessions.begin() as session:
            await session.execute(statement)

    async def of_run(self, run_id: str) -> dict[str, PhaseEvidence]:
        """Per phase, the latest evidence of each kind (phases without any are absent)."""
        return await self._latest(RunEvidenceRow.run_id == run_id)

    async def of_phase(self, run_id: str, phase_id: str) -> PhaseEvidence:
        """The latest evidence of each kind the phase's attempts left."""
        found = await self._latest(
            (RunEvidenceRow.run_id == run_id) & (RunEvidenceRow.phase_id == phase_id)
        )
        return found.get(phase_id, PhaseEvidence())

    async def _latest(self, where: ColumnElement[bool]) -> dict[str, PhaseEvidence]:
        statement = (
            select(RunEvidenceRow.phase_id, RunEvidenceRow.kind, RunEvidenceRow.text)
            .where(where)
            .order_by(RunEvidenceRow.attempt)
        )
        latest: dict[str, dict[EvidenceKind, str]] = {}
        async with self._sessions() as session:
            for phase_id, kind, text in await session.execute(statement):
                latest.setdefault(phase_id, {})[EvidenceKind(kind)] = text
        return {phase: PhaseEvidence.from_texts(texts) for phase, texts in latest.items()}
