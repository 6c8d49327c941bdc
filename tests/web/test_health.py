"""GET /health reports the database; GET /health/ready the schema and GitHub credentials too."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.db import create_engine
from app.store.migrate import MIGRATIONS_DIR
from app.web.app import create_app
from tests.fakegithub.scenario import FakeGitHub


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


def _sim_settings(sim: FakeGitHub, **extra: Any) -> Settings:
    return Settings(
        app_id=sim.app.id,
        private_key=sim.app.private_key_pem,  # type: ignore[arg-type]
        github_api_url=sim.url,
        **extra,
    )


async def test_ready_when_the_schema_is_current_and_github_accepts_the_app(
    aiohttp_client: Any, engine: AsyncEngine, fakegithub: FakeGitHub
) -> None:
    app = create_app(_sim_settings(fakegithub), engine=engine, with_worker=False)
    client = await aiohttp_client(app)
    for _ in range(3):
        response = await client.get("/health/ready")
        assert response.status == 200
        assert await response.json() == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "github": "ok"},
        }
    # Probes come every few seconds; GitHub was asked once and the verdict kept.
    assert [r.status for r in fakegithub.calls("GET", "/app")] == [200]
    assert fakegithub.calls("GET", "/app")[0].app == "jwt"


async def test_not_ready_without_credentials_saying_what_to_do(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    client = await aiohttp_client(create_app(Settings(), engine=engine, with_worker=False))
    response = await client.get("/health/ready")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["github"] == (
        "not configured: set APP_ID and PRIVATE_KEY (or run `autopack setup`)"
    )
    assert (await client.get("/health")).status == 200  # alive all the same


async def test_not_ready_when_github_refuses_the_key(
    aiohttp_client: Any, engine: AsyncEngine, fakegithub: FakeGitHub
) -> None:
    settings = _sim_settings(fakegithub).model_copy(update={"app_id": fakegithub.ci_app.id + 999})
    client = await aiohttp_client(create_app(settings, engine=engine, with_worker=False))
    body = await (await client.get("/health/ready")).json()
    assert body["checks"]["github"] == (
        "GitHub refused the App's credentials (GET /app: HTTP 401 Integration not found)"
    )


async def test_not_ready_on_an_old_schema(
    aiohttp_client: Any, database_url: str, fakegithub: FakeGitHub
) -> None:
    engine = create_engine(database_url)  # empty: never migrated
    try:
        client = await aiohttp_client(
            create_app(_sim_settings(fakegithub), engine=engine, with_worker=False)
        )
        response = await client.get("/health/ready")
        assert response.status == 503
        checks = (await response.json())["checks"]
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert checks["migrations"] == (
            f"the schema is at no revision, this version needs {head}: run `autopack migrate`"
        )
        assert checks["github"] == "ok"
    finally:
        await engine.dispose()


async def test_not_ready_when_the_database_is_down(aiohttp_client: Any) -> None:
    engine = create_engine("postgresql+asyncpg://nobody:hunter2@127.0.0.1:1/none")
    client = await aiohttp_client(create_app(Settings(), engine=engine, with_worker=False))
    response = await client.get("/health/ready")
    body = await response.json()
    assert response.status == 503
    assert body["checks"]["database"].startswith("unreachable: ")
    assert body["checks"]["migrations"] == "unknown"
    assert "hunter2" not in await response.text()
    await engine.dispose()
