"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import migrate
from app.store.db import create_engine
from app.store.models import Base


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
