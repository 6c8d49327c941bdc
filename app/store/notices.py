"""Refusal comments, at most one per issue per window, across workers and restarts.

A refusal ("only people with write access…", "not configured for this repository") answers
someone who asked Autopack for something; anyone who can label or comment can ask again and
again, so the database, not a process, remembers when the last one was posted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import conflict_insert
from app.store.inbox import utcnow
from app.store.models import RefusalNoticeRow

REFUSAL_WINDOW = timedelta(minutes=10)


class RefusalNotices:
    """Claims the right to post a refusal comment on an issue."""

    def __init__(self, engine: AsyncEngine, window: timedelta = REFUSAL_WINDOW) -> None:
        self._engine = engine
        self._window = window

    async def claim(self, repository: str, issue_number: int, now: datetime | None = None) -> bool:
        """True (and remembered) when no refusal was posted on the issue within the window."""
        now = now or utcnow()
        table = RefusalNoticeRow.__table__
        assert isinstance(table, Table)
        insert = conflict_insert(self._engine.dialect.name, table)
        # One statement: of two workers claiming at once, the second finds the first's time.
        statement = (
            insert.values(repository=repository, issue_number=issue_number, posted_at=now)
            .on_conflict_do_update(
                index_elements=["repository", "issue_number"],
                set_={"posted_at": now},
                where=table.c.posted_at <= now - self._window,
            )
            .returning(table.c.posted_at)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None
