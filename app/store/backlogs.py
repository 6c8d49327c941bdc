"""The per-repository backlog: read when a run's strategy is compiled, updated when a run ends."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.backlog import Backlog
from app.store.db import session_factory
from app.store.models import BacklogRow


class BacklogStore:
    """Repository interface over `repo_backlogs`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def get(self, repository: str) -> Backlog:
        """The repository's backlog (empty if it has none yet)."""
        async with self._sessions() as session:
            row = await session.get(BacklogRow, repository)
            return Backlog() if row is None else Backlog.from_json(json.loads(row.backlog))

    async def put(self, repository: str, backlog: Backlog) -> None:
        """Replace the repository's backlog."""
        async with self._sessions.begin() as session:
            row = await session.get(BacklogRow, repository)
            if row is None:
                row = BacklogRow(repository=repository)
                session.add(row)
            row.backlog = json.dumps(backlog.to_json(), sort_keys=True)
            row.updated_at = datetime.now(UTC)
