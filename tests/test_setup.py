"""Registering the App through the manifest flow, against the simulated GitHub over real HTTP.

The test plays the person's browser: it opens the registration page, posts the form to GitHub
(the simulator), follows GitHub's redirect back to the callback, and then looks at `.env`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from dotenv import dotenv_values
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import load_settings
from app.setup_command import run_setup
from app.setup_env import REGISTRATION_KEYS, existing_keys, write_env
from app.setup_manifest import SetupError, load_manifest, web_url
from app.store import migrate
from app.store.db import create_engine
from app.web.app import create_app
from app.web.setup import SetupFlow, standalone
from tests.engine.processes import AUTOPACK, free_port
from tests.fakegithub.scenario import FakeGitHub

ROOT = Path(__file__).resolve().parent.parent
APP_YML = yaml.safe_load((ROOT / "app.yml").read_text(encoding="utf-8"))


class Forms(HTMLParser):
    """The forms of a page: (method, action, {input name: value})."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((values.get("method", "get"), values.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1][2][values["name"]] = values.get("value", "")


def forms_of(page: str) -> list[tuple[str, str, dict[str, str]]]:
    parser = Forms()
    parser.feed(page)
    return parser.forms


async def register_in_browser(
    session: aiohttp.ClientSession, page_url: str, *, org: str | None = None
) -> tuple[int, str]:
    """Open the page, post the manifest form to GitHub, follow it back: (status, final page)."""
    if org is not None:
        page_url += f"?org={org}"
    async with session.get(page_url) as response:
        assert response.status == 200, await response.text()
        assert "form-action 'self' http://127.0.0.1" in response.headers["Content-Security-Policy"]
        page = await response.text()
    posts = [form for form in forms_of(page) if form[0] == "post"]
    _, action, fields = posts[-1]  # the organisation's button comes last
    assert ("/organizations/" in action) is (org is not None)
    async with session.post(action, data=fields) as response:  # GitHub, then back to us
        return response.status, await response.text()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database: these tests are about registration, not storage."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}")
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


def _args(tmp_path: Path, port: int, **extra: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "url": None,
        "webhook_url": None,
        "org": None,
        "name": None,
        "port": port,
        "env_file": tmp_path / ".env",
        "key_file": None,
        "manifest": None,
    }
    values.update(extra)
    return argparse.Namespace(**values)


async def _wait_for_page(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered")


async def test_setup_command_registers_the_app_and_writes_env(
    fakegithub: FakeGitHub, tmp_path: Path, sqlite: AsyncEngine
) -> None:
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GITHUB_API_URL": fakegithub.url,
        "CI": "true",
    }
    process = await asyncio.create_subprocess_exec(
        AUTOPACK,
        "setup",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert first.startswith(f"autopack: open http://localhost:{port}/setup in a browser")
        async with aiohttp.ClientSession() as session:
            status, page = await register_in_browser(session, f"http://127.0.0.1:{port}/setup")
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert status == 200, page
    assert "Registered the GitHub App" in page
    assert process.returncode == 0, err.decode()
    (app,) = [a for a in fakegithub.world.apps.values() if a.slug == "autopack-2"]
    lines = out.decode().splitlines()
    assert lines[0] == f"autopack: registered the GitHub App 'Autopack 2' (id {app.id}) for octocat"
    assert lines[1].startswith(
        "autopack: wrote APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GITHUB_CLIENT_ID"
    )
    # The App's html_url (the simulator's pages are github.com's) + /installations/new.
    assert "next: install the App on your repositories: https://github.com/apps/autopack-2/" in (
        out.decode()
    )
    # What GitHub was told: app.yml, with this server's addresses.
    manifest = fakegithub.world.app_manifests[app.id]
    assert manifest["hook_attributes"]["url"] == f"http://localhost:{port}/api/github/webhooks"
    assert manifest["redirect_url"] == f"http://localhost:{port}/setup/callback"
    assert manifest["default_permissions"] == APP_YML["default_permissions"]
    assert manifest["default_events"] == APP_YML["default_events"]
    # What was written: readable by its owner only, and exactly what Settings reads.
    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    written = dotenv_values(env_file)
    settings = load_settings(environ={"GITHUB_API_URL": fakegithub.url}, dotenv_path=env_file)
    assert settings.app_id == app.id
    assert settings.private_key is not None
    assert settings.private_key.get_secret_value() == app.private_key_pem.strip() + "\n"
    assert settings.webhook_secret is not None
    secret = settings.webhook_secret.get_secret_value()
    assert len(secret) >= 20
    assert secret == fakegithub.world.hook_configs[app.id]["secret"]
    assert written["GITHUB_CLIENT_ID"] == app.client_id
    assert "GITHUB_API_URL" not in written  # the environment sets it already
    assert settings.api_token is not None
    assert len(settings.api_token.get_secret_value()) >= 20
    # And the credentials work: the readiness check asks GitHub as the new App.
    web = create_app(settings, engine=sqlite, with_worker=False)
    async with TestClient(TestServer(web)) as client:
        checks = (await (await client.get("/health/ready")).json())["checks"]
    assert checks["github"] == "ok"


async def _in_process(
    sim: FakeGitHub, tmp_path: Path, answer: str | None = None, **extra: Any
) -> tuple[int, str]:
    """run_setup in this process (so `ask` can answer), driven by the test's browser."""
    port = free_port()
    settings = load_settings(environ={"GITHUB_API_URL": sim.url}, dotenv_path=None)
    asked: list[str] = []

    def ask(question: str) -> str:
        asked.append(question)
        return answer or ""

    task = asyncio.create_task(
        run_setup(_args(tmp_path, port, **extra), settings, {}, ask if answer is not None else None)
    )
    page = ""
    try:
        waiting = asyncio.create_task(_wait_for_page(f"http://127.0.0.1:{port}/setup"))
        done, _ = await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            async with aiohttp.ClientSession() as session:
                _, page = await register_in_browser(
                    session, f"http://127.0.0.1:{port}/setup", org=extra.get("org")
                )
        else:
            waiting.cancel()
        status = await asyncio.wait_for(task, 30)
    finally:
        task.cancel()
    return status, page


async def test_an_organisation_gets_the_app_and_a_key_file(
    fakegithub: FakeGitHub, tmp_path: Path
) -> None:
    key = tmp_path / "keys" / "app.pem"
    status, page = await _in_process(fakegithub, tmp_path, org="acme", key_file=key, name="Robo")
    assert status == 0, page
    (app,) = [a for a in fakegithub.world.apps.values() if a.slug == "robo"]
    assert app.owner_login == "acme"
    written = dotenv_values(tmp_path / ".env")
    assert written["PRIVATE_KEY_PATH"] == str(key.resolve())
    assert written["GITHUB_API_URL"] == fakegithub.url  # not GitHub.com: kept for the restart
    assert "PRIVATE_KEY" not in written
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text() == app.private_key_pem.strip() + "\n"


async def test_a_missing_github_secret_is_replaced_by_a_fresh_one_given_to_github(
    fakegithub: FakeGitHub, tmp_path: Path
) -> None:
    fakegithub.world.manifest_webhook_secrets = False
    status, _ = await _in_process(fakegithub, tmp_path)
    assert status == 0
    secret = str(dotenv_values(tmp_path / ".env")["WEBHOOK_SECRET"])
    assert len(secret) >= 20
    (patch,) = fakegithub.calls("PATCH", "/app/hook/config")
    assert patch.status == 200
    app_id = int(str(dotenv_values(tmp_path / ".env")["APP_ID"]))
    assert fakegithub.world.hook_configs[app_id]["secret"] == secret


EXISTING = "# mine\nDATABASE_URL=sqlite+aiosqlite:///x.db\nAPP_ID=7\nWEBHOOK_SECRET=old-old-old-old-old-old\n"


async def test_existing_keys_are_replaced_only_when_the_person_says_yes(
    fakegithub: FakeGitHub, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(EXISTING)
    status, _ = await _in_process(fakegithub, tmp_path, answer="n")
    assert status == 1
    assert env_file.read_text() == EXISTING
    assert fakegithub.calls("POST", "/app-manifests") == []
    status, _ = await _in_process(fakegithub, tmp_path, answer="y")
    assert status == 0
    written = dotenv_values(env_file)
    assert written["DATABASE_URL"] == "sqlite+aiosqlite:///x.db"  # other settings kept
    assert written["APP_ID"] != "7"
    assert env_file.read_text().startswith("# mine\n")


async def test_without_a_terminal_existing_keys_make_it_refuse(
    fakegithub: FakeGitHub, tmp_path: Path
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(EXISTING)
    with pytest.raises(SetupError, match=r"already sets APP_ID, WEBHOOK_SECRET, and there is no"):
        await _in_process(fakegithub, tmp_path)
    assert env_file.read_text() == EXISTING


def test_refusal_from_the_command_line_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(EXISTING)
    result = subprocess.run(
        [AUTOPACK, "setup", "--port", str(free_port())],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CI": "true"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "autopack: .env already sets APP_ID, WEBHOOK_SECRET, and there is no terminal to ask "
        "whether to replace them (CI or no stdin): remove them, or pass another --env-file"
    ]


async def test_the_start_page_registers_while_app_id_is_unset(
    fakegithub: FakeGitHub, tmp_path: Path, sqlite: AsyncEngine, aiohttp_server: Any
) -> None:
    settings = load_settings(environ={"GITHUB_API_URL": fakegithub.url}, dotenv_path=None)
    flow = SetupFlow(load_manifest(ROOT / "app.yml"), fakegithub.url, tmp_path / ".env", {})
    server = await aiohttp_server(
        create_app(settings, engine=sqlite, with_worker=False, setup=flow)
    )
    base = str(server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/", allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (302, "/setup")
        # A callback this page did not start is refused before GitHub is asked anything.
        for forged in ("forged", "%C3%A9t%C3%A9", ""):
            url = f"{base}/setup/callback?code=abc&state={forged}"
            async with session.get(url) as response:
                assert response.status == 400
                assert "not started on this page" in await response.text()
        assert fakegithub.calls("POST", "/app-manifests") == []
        status, page = await register_in_browser(session, f"{base}/setup")
        assert status == 200, page
        # The page is built from the request: GitHub was told this server's address.
        (app_id,) = fakegithub.world.app_manifests.keys() - {fakegithub.app.id}
        hook = fakegithub.world.app_manifests[app_id]["hook_attributes"]["url"]
        assert hook == f"{base}/api/github/webhooks"
        # Reloading the callback shows the result again; the spent code is not sent twice.
        async with session.get(f"{base}/setup") as again:
            assert "Registered the GitHub App" in await again.text()
    assert len(fakegithub.calls("POST", "/app-manifests")) == 1
    assert dotenv_values(tmp_path / ".env")["APP_ID"] == str(app_id)


async def test_a_spent_code_is_an_error_page_and_nothing_is_written(
    fakegithub: FakeGitHub, tmp_path: Path, aiohttp_server: Any
) -> None:
    flow = SetupFlow(load_manifest(ROOT / "app.yml"), fakegithub.url, tmp_path / ".env", {})
    server = await aiohttp_server(standalone(flow))
    url = server.make_url(f"/setup/callback?code=0123&state={flow.state}")
    async with aiohttp.ClientSession() as session, session.get(str(url)) as response:
        assert response.status == 502
        text = await response.text()
    assert "GitHub did not accept the registration code (HTTP 404 Not Found)" in text
    assert not (tmp_path / ".env").exists()
    assert not flow.done.is_set()


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com"),
        ("https://api.acme.ghe.com", "https://acme.ghe.com"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),
    ],
)
def test_the_web_flow_address_is_derived_from_the_api_address(api: str, web: str) -> None:
    assert web_url(api) == web


def test_write_env_keeps_other_lines_and_drops_every_line_of_replaced_keys(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nPORT=9000\n"
        'PRIVATE_KEY="-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----"\n'
        "export OTHER='x y'"  # no final newline
    )
    env_file.chmod(0o644)
    assert existing_keys(env_file) == ["PRIVATE_KEY"]
    write_env(env_file, {"APP_ID": "12", "WEBHOOK_SECRET": 'a "quoted" \\ secret\nwith lines'})
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert dotenv_values(env_file) == {
        "PORT": "9000",
        "OTHER": "x y",
        "APP_ID": "12",
        "WEBHOOK_SECRET": 'a "quoted" \\ secret\nwith lines',
    }
    assert env_file.read_text().startswith("# comment\n")
    assert "AAAA" not in env_file.read_text()
    assert set(REGISTRATION_KEYS) >= {"APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH"}


async def test_the_page_warns_about_localhost_and_refuses_over_existing_keys(
    tmp_path: Path, aiohttp_server: Any
) -> None:
    manifest = load_manifest(ROOT / "app.yml")
    local = SetupFlow(manifest, "https://api.github.com", tmp_path / ".env", {})
    local.public_url = "http://localhost:8000"
    public = SetupFlow(manifest, "https://api.github.com", tmp_path / ".env", {})
    public.public_url = "https://autopack.example.com"
    pages = []
    async with aiohttp.ClientSession() as session:
        for flow in (local, public):
            server = await aiohttp_server(standalone(flow))
            async with session.get(str(server.make_url("/setup"))) as response:
                assert response.status == 200
                assert (
                    "form-action 'self' https://github.com"
                    in (response.headers["Content-Security-Policy"])
                )
                pages.append(await response.text())
        assert "GitHub cannot deliver webhooks to localhost" in pages[0]
        assert "GitHub cannot deliver webhooks to localhost" not in pages[1]
        assert "https://autopack.example.com/api/github/webhooks" in pages[1]
        assert forms_of(pages[1])[0][1].startswith("https://github.com/settings/apps/new?state=")
        (tmp_path / ".env").write_text("PRIVATE_KEY_PATH=/keys/app.pem\n")
        async with session.get(str(server.make_url("/setup"))) as response:
            assert response.status == 409
            text = await response.text()
    assert "already sets PRIVATE_KEY_PATH" in text
    assert not [form for form in forms_of(text) if form[0] == "post"]
