"""The `autopack` command as an operator runs it: real subprocesses, real ports."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from alembic.script import ScriptDirectory

from app.store.migrate import MIGRATIONS_DIR
from app.web.signature import sign
from tests.conftest import POSTGRES_URL, load_payload, reset_postgres
from tests.engine.processes import free_port, wait_healthy
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
            await wait_healthy(url)
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


def test_version(tmp_path: Path) -> None:
    result = _run(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"autopack {importlib.metadata.version('autopack')}"


@pytest.mark.parametrize(
    ("command", "setting"), [("serve", "PORT"), ("worker", "AUTOPACK_METRICS_PORT")]
)
def test_a_busy_port_is_one_line_and_exit_2(tmp_path: Path, command: str, setting: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 - as the server would
        taken.listen()
        port = taken.getsockname()[1]
        result = _run(tmp_path, command, **{setting: str(port)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"autopack: port {port} is already in use: stop what listens there, or set {setting} "
        "to another port"
    )
    assert "Traceback" not in result.stderr


async def _spawn(tmp_path: Path, command: str, **env: str) -> asyncio.subprocess.Process:
    """`autopack COMMAND` in the background, its first line (it is listening) read."""
    process = await asyncio.create_subprocess_exec(
        AUTOPACK,
        command,
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdout is not None
    first = await asyncio.wait_for(process.stdout.readline(), 30)
    assert first.startswith(b"autopack: listening on "), first
    return process


async def test_start_says_where_it_listens_and_what_to_do_next(tmp_path: Path) -> None:
    port = free_port()
    process = await _spawn(tmp_path, "serve", PORT=str(port))
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/", allow_redirects=False) as response,
        ):
            assert (response.status, response.headers["Location"]) == (302, "/setup")
        process.send_signal(signal.SIGTERM)
        rest, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 0  # a container's stop is clean
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    url = f"http://localhost:{port}"
    assert rest.decode().splitlines() == [
        f"autopack: next: register the GitHub App: open {url}/ in a browser, or run "
        "`autopack setup` (or set APP_ID)",
        "autopack: next: set AUTOPACK_API_TOKEN to sign in to the dashboard and the API",
        "autopack: next: define a builder profile in the AUTOPACK_CONFIG file (docs/builders.md)",
    ]


# -- autopack receive ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "env", "message"),
    [
        (None, {"WEBHOOK_SECRET": SECRET}, "cannot read missing.json: No such file or directory"),
        (b'{"action": "opened",}', {"WEBHOOK_SECRET": SECRET}, "is not valid JSON: Expecting"),
        (b"[1, 2]", {"WEBHOOK_SECRET": SECRET}, "holds JSON, but not an object"),
        (b'{"action": "opened"}', {}, "WEBHOOK_SECRET is not set: it signs the payload"),
    ],
)
def test_receive_refuses_bad_input_in_one_line(
    tmp_path: Path, payload: bytes | None, env: dict[str, str], message: str
) -> None:
    name = "missing.json"
    if payload is not None:
        name = "payload.json"
        (tmp_path / name).write_bytes(payload)
    result = _run(tmp_path, "receive", "issues", name, **env)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("autopack: ")
    assert message in line


def test_receive_says_when_nothing_listens(tmp_path: Path) -> None:
    (tmp_path / "ping.json").write_text('{"zen": "Keep it logically awesome."}')
    port = free_port()
    result = _run(tmp_path, "receive", "ping", "ping.json", WEBHOOK_SECRET=SECRET, PORT=str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"autopack: cannot reach http://localhost:{port}/api/github/webhooks: Connection refused "
        "(is Autopack running? `autopack serve`)"
    )


async def test_receive_signs_and_posts_a_saved_payload(tmp_path: Path) -> None:
    port = free_port()
    server = await _spawn(tmp_path, "web", PORT=str(port), WEBHOOK_SECRET=SECRET)
    try:
        payload = tmp_path / "labeled.json"
        payload.write_text(json.dumps(load_payload("issues.labeled")))
        url = f"http://127.0.0.1:{port}/api/github/webhooks"
        send = ("receive", "issues", str(payload), "--url", url)
        runs = [
            await asyncio.to_thread(_run, tmp_path, *send, WEBHOOK_SECRET=SECRET) for _ in range(2)
        ]
        wrong = await asyncio.to_thread(_run, tmp_path, *send, WEBHOOK_SECRET="x" * 30)
    finally:
        server.terminate()
        await server.wait()
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert re.fullmatch(
            r"autopack: issues delivery [0-9a-f-]{36} -> HTTP 202 (queued: delivery stored|"
            r"ignored: issues\.labeled cannot drive a run)\n",
            run.stdout,
        ), run.stdout
    # Each replay is a fresh delivery, never a duplicate of the last.
    assert runs[0].stdout.split()[3] != runs[1].stdout.split()[3]
    assert wrong.returncode == 1
    assert "HTTP 401 refused: missing or invalid X-Hub-Signature-256" in wrong.stdout
