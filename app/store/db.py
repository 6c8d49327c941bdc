"""Engine and session factory: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for `url`, with the SQLite pragmas Autopack relies on."""
    if url.startswith("sqlite"):
        # One connection per process: SQLite has one writer at a time anyway, and sessions
        # queueing in the pool is far cheaper than connections colliding on the file lock,
        # where SQLite's busy handler sleeps in steps of milliseconds. Never nest sessions.
        kwargs.setdefault("pool_size", 1)
        kwargs.setdefault("max_overflow", 0)
        engine = create_async_engine(
            url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL + NORMAL is durable against application crashes; only an OS crash can lose the tail.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Round-trip to the database; raises when it is unreachable."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; SQLite returns naive ones that were stored as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def conflict_insert(dialect: str, table: Any) -> Any:
    """`INSERT INTO table` that takes ON CONFLICT clauses: each backend has its own construct."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
