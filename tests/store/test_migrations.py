"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import migrate
from app.store.db import create_engine
from app.store.models import Base
from app.store.queue import JobKind, RunQueue


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_fresh_database_is_behind_then_current(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        before = await migrate.schema_status(engine)
        assert before.current is None
        assert not before.up_to_date
        after = await migrate.upgrade(engine)
        assert after.up_to_date
        assert after.current == after.head
        # Running it again is a no-op, not an error.
        assert (await migrate.upgrade(engine)).up_to_date
    finally:
        await engine.dispose()


async def test_models_match_migrations(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        differences = await conn.run_sync(_diff)
    assert differences == []


async def test_sqlite_pragmas(tmp_path: object) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/p.db")
    try:
        async with engine.connect() as conn:
            journal = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert (journal, keys, busy) == ("wal", 1, 5000)
    finally:
        await engine.dispose()


async def test_pending_jobs_of_older_versions_get_their_kind(database_url: str) -> None:
    # Before 0007 a job's kind was inside its payload; the migration reads it out.
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(migrate._config(sync), "0006"))
            await conn.execute(
                text(
                    "INSERT INTO runs (id, installation_id, repository, issue_number, run_number,"
                    " branch, status, state, terminal, created_at, updated_at, version)"
                    " VALUES ('r', 1, 'a/b', 1, 1, 'autopack/x', 'PLAN_BOOTSTRAP', '{}', false,"
                    " :t, :t, 1)"
                ),
                {"t": datetime(2026, 12, 1, tzinfo=UTC)},
            )
            for payload in (
                '{"kick": true}',
                '{"poll": true}',
                '{"event": {"type": "Cancelled", "by": "x"}}',
            ):
                await conn.execute(
                    text(
                        "INSERT INTO jobs (run_id, payload, status, created_at, available_at)"
                        " VALUES ('r', :p, 'pending', :t, :t)"
                    ),
                    {"p": payload, "t": datetime(2026, 12, 1, tzinfo=UTC)},
                )
        await migrate.upgrade(engine)
        queue = RunQueue(engine)
        jobs = await queue.pending("r")
        assert [(job.kind, job.event_type) for job in jobs] == [
            (JobKind.KICK, ""),
            (JobKind.POLL, ""),
            (JobKind.EVENT, "Cancelled"),
        ]
        assert await queue.cancel_pending("r") is True
    finally:
        await engine.dispose()
