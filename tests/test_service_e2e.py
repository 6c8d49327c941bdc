"""The service core end to end: the simulator delivers signed webhooks to a running Autopack, and
Autopack's client talks to the simulator with real App credentials."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.github.client import GitHubApp
from app.store.db import session_factory
from app.store.inbox import Inbox
from app.store.installations import Installations
from app.web.app import create_app
from tests.fakegithub.scenario import FakeGitHub


async def _until(predicate: Any) -> None:
    # The worker runs in the server's own task and signals nothing; poll, bounded in time.
    async with asyncio.timeout(10):
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_installation_webhooks_reach_the_tables(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    settings = Settings(
        app_id=fakegithub.app.id,
        private_key=fakegithub.app.private_key_pem,  # type: ignore[arg-type]
        webhook_secret=fakegithub.app.webhook_secret,  # type: ignore[arg-type]
        github_api_url=fakegithub.url,
    )
    server = TestServer(create_app(settings, engine=engine), host="127.0.0.1")
    await server.start_server()
    try:
        fakegithub.webhook_url = str(server.make_url("/api/github/webhooks"))
        fakegithub.create_repo("acme/one")
        fakegithub.create_repo("acme/two")
        inst = await fakegithub.install_app("acme")
        await fakegithub.idle()
        delivered = [d for d in fakegithub.deliveries if d.event == "installation"]
        assert [d.status_code for d in delivered] == [202]
        installations = Installations(session_factory(engine))

        async def recorded() -> bool:
            state = await installations.get(inst.id)
            return state is not None and state.repositories == ("acme/one", "acme/two")

        await _until(recorded)
        # A redelivery (same GUID) is acknowledged and not processed twice.
        again = await fakegithub.redeliver(delivered[0].guid)
        assert again.status_code == 200
        assert await Inbox(engine).counts() == {"done": 1}
    finally:
        await server.close()


async def test_client_pages_through_the_simulator(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    for index in range(7):
        fakegithub.create_repo(f"acme/repo-{index}", installation=inst)
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        client = app.installation(inst.id)
        names = [
            repo["full_name"]
            async for repo in client.getiter(
                "/installation/repositories?per_page=3", iterable_key="repositories"
            )
        ]
        assert sorted(names) == [f"acme/repo-{index}" for index in range(7)]
        pages = fakegithub.calls("GET", "/installation/repositories")
        assert len(pages) == 3  # 3 + 3 + 1
        assert app.tokens.fetches == 1
        me = await (await app.app_client()).getitem("/app")
        assert me["id"] == fakegithub.app.id
