"""GET /health reports the database."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.db import create_engine
from app.web.app import create_app


async def test_up(aiohttp_client: Any, engine: AsyncEngine) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(Settings(), engine=engine, with_worker=False)
    )
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["webhook_secret_configured"] is False


async def test_down_postgres(aiohttp_client: Any) -> None:
    # Nothing listens on port 1: connection refused, at once.
    engine = create_engine("postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/none")
    client = await aiohttp_client(create_app(Settings(), engine=engine, with_worker=False))
    response = await client.get("/health")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "unavailable"
    assert body["database"].startswith("unreachable: ")
    assert "hunter2" not in await response.text()
    await engine.dispose()
