"""The `autopack` command as an operator runs it: real subprocesses, real ports."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from alembic.script import ScriptDirectory

from app.store.migrate import MIGRATIONS_DIR
from app.web.signature import sign
from tests.conftest import POSTGRES_URL, reset_postgres
from tests.engine.processes import free_port
from tests.web.helpers import SECRET

AUTOPACK = str(Path(sys.executable).with_name("autopack"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}",
        **extra,
    }


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUTOPACK, *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_then_again(tmp_path: Path) -> None:
    first = _run(tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert f"database schema is up to date (revision {head})" in first.stdout
    assert (tmp_path / "autopack.db").exists()
    assert _run(tmp_path, "migrate").returncode == 0


@pytest.mark.parametrize("command", ["serve", "web", "worker", "migrate"])
def test_config_error_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    result = _run(tmp_path, command, APP_ID="twelve")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "autopack: configuration error: APP_ID: must be a positive integer "
        "(the GitHub App id), got 'twelve'"
    ]


@pytest.mark.parametrize("variable", ["WEBHOOK_SECRET", "AUTOPACK_API_TOKEN"])
def test_a_short_secret_is_a_config_error(tmp_path: Path, variable: str) -> None:
    result = _run(tmp_path, "serve", **{variable: "only-19-characters!"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"autopack: configuration error: {variable}: must be at least 20 characters "
        "(e.g. openssl rand -hex 32), got 19"
    ]


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = _run(tmp_path, "serve", DATABASE_URL="postgresql+asyncpg://u:secretpw@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot use the PostgreSQL database at DATABASE_URL" in result.stderr
    assert "secretpw" not in result.stderr


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="AUTOPACK_TEST_DATABASE_URL is not set")
async def test_serve_refuses_an_out_of_date_postgres_schema(tmp_path: Path) -> None:
    assert POSTGRES_URL is not None
    await reset_postgres(POSTGRES_URL)
    result = await asyncio.to_thread(_run, tmp_path, "serve", DATABASE_URL=POSTGRES_URL)
    assert result.returncode == 1
    assert "run `autopack migrate` first" in result.stderr
    migrated = await asyncio.to_thread(_run, tmp_path, "migrate", DATABASE_URL=POSTGRES_URL)
    assert migrated.returncode == 0, migrated.stderr


async def test_serve_without_webhook_secret_refuses_deliveries(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        AUTOPACK,
        "serve",
        cwd=tmp_path,
        env=_env(tmp_path, PORT=str(port)),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"{url}/health") as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            body = b'{"action": "opened"}'
            async with session.post(
                f"{url}/api/github/webhooks",
                data=body,
                headers={
                    "X-GitHub-Event": "issues",
                    "X-GitHub-Delivery": "d-1",
                    "X-Hub-Signature-256": sign(body, SECRET),
                },
            ) as response:
                assert response.status == 401
                assert "WEBHOOK_SECRET" in (await response.json())["message"]
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    messages = [line["message"] for line in lines]
    assert any("WEBHOOK_SECRET is not set" in message for message in messages)
    refused = [line for line in lines if line.get("delivery") == "d-1"]
    assert refused[0]["outcome"] == "refused_no_secret"
    assert (tmp_path / "autopack.db").exists()  # serve migrated the embedded SQLite itself
