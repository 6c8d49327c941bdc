"""Shared fixtures: databases (SQLite always, PostgreSQL when configured) and payloads."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store import migrate
from app.store.db import create_engine
from tests.fakegithub.fixtures import fakegithub, webhook_receiver  # noqa: F401

PAYLOADS = Path(__file__).parent / "payloads"
POSTGRES_URL = os.environ.get("AUTOPACK_TEST_DATABASE_URL")


def load_payload(name: str) -> dict[str, Any]:
    """A GitHub example payload from tests/payloads (see its README)."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


async def reset_postgres(url: str) -> None:
    """Give a test an empty PostgreSQL schema."""
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
