"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and payloads."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import migrate
from app.store.db import create_engine
from tests.fakegithub.fixtures import fakegithub, webhook_receiver  # noqa: F401

PAYLOADS = Path(__file__).parent / "payloads"

# A deadline is a timed assertion, and a 2-core machine running tests in parallel is slow at
# times: examples have no deadline and slow generation is no failure. Examples stay as many.
settings.register_profile("autopack", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("autopack")


def _postgres_url() -> str | None:
    """AUTOPACK_TEST_DATABASE_URL; under pytest-xdist each worker gets its own database
    (`<name>_gw0`, ...), since tests reset the schema of the one they use."""
    url = os.environ.get("AUTOPACK_TEST_DATABASE_URL")
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not url or not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


POSTGRES_URL = _postgres_url()
_created: set[str] = set()


def load_payload(name: str) -> dict[str, Any]:
    """A GitHub example payload from tests/payloads (see its README)."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


async def _ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist (once per process)."""
    if url in _created:
        return
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    try:
        async with admin.connect() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            )
            if not found:
                await conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        await admin.dispose()
    _created.add(url)


async def reset_postgres(url: str) -> None:
    """Give a test an empty PostgreSQL schema."""
    await _ensure_database(url)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite in tmp_path, or PostgreSQL from AUTOPACK_TEST_DATABASE_URL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}"
    if not POSTGRES_URL:
        pytest.skip("AUTOPACK_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    await reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database engine, disposed after the test."""
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite engine, for tests whose subject does not depend on the database."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def postgres_url() -> str:
    """An empty PostgreSQL database (AUTOPACK_TEST_DATABASE_URL), for tests that need one.

    Skipped without it on a workstation; under CI=true a missing URL is a broken CI.
    """
    if not POSTGRES_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but AUTOPACK_TEST_DATABASE_URL is not set")
        pytest.skip("AUTOPACK_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    await reset_postgres(POSTGRES_URL)
    return POSTGRES_URL
