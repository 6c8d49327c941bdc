"""Autopack's webhook endpoint and inbox worker (no run driver) against the simulator, for tests
of what deliveries start, cancel and refuse: each test drains the worker itself."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import BuilderProfile, OperatorConfig, Repositories, Settings
from app.engine.config_check import ConfigCheck
from app.engine.envelope import Envelope
from app.engine.routes import Deps
from app.engine.run_intake import RunIntake
from app.engine.service import Wakeup, route_deliveries
from app.engine.worker import InboxWorker
from app.github.client import GitHubApp
from app.store.db import session_factory
from app.store.inbox import Inbox
from app.store.installations import Installations
from app.store.notices import RefusalNotices
from app.store.queue import RunQueue
from app.store.runs import RunRecord, RunStore
from app.web.app import create_app
from app.web.signature import sign
from tests.engine.harness import BUILDER, FILES, REPO, ruleset
from tests.fakegithub.scenario import FakeGitHub


@dataclass
class IntakeWorld:
    sim: FakeGitHub
    installation_id: int
    inbox: Inbox
    worker: InboxWorker
    store: RunStore
    http: aiohttp.ClientSession
    url: str

    async def drain(self) -> int:
        """Deliver what the simulator has queued, then process the inbox."""
        await self.sim.idle()
        return await self.worker.drain()

    async def post(self, event: str, payload: dict[str, Any] | bytes) -> tuple[int, str]:
        """Sign and post a delivery the simulator would not send; (status, delivery id)."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        delivery = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(body, self.sim.app.webhook_secret),
        }
        async with self.http.post(self.url, data=body, headers=headers) as response:
            return response.status, delivery

    async def runs(self, issue: int) -> list[RunRecord]:
        return await self.store.issue_runs(REPO, issue)

    def comments(self, issue: int) -> list[str]:
        return [comment.body for comment in self.sim.repo(REPO).comments(issue)]

    @staticmethod
    def memo(run: RunRecord) -> Any:
        return Envelope.loads(run.state).memo


@asynccontextmanager
async def intake_world(
    sim: FakeGitHub, engine: AsyncEngine, allowed: tuple[str, ...] = ()
) -> AsyncIterator[IntakeWorld]:
    """`acme/widgets` with alice (write) and mallory (read), served by Autopack's intake."""
    inst = sim.install("acme")
    files = {**FILES, ".github/autopack.yml": ruleset()}
    sim.create_repo(REPO, files, installation=inst, ci=None)
    sim.set_permission(REPO, "alice", "write")
    sim.set_permission(REPO, "mallory", "read")
    profile = BuilderProfile(backend="command", command=[sys.executable, str(BUILDER)])
    settings = Settings(
        app_id=sim.app.id,
        private_key=sim.app.private_key_pem,  # type: ignore[arg-type]
        webhook_secret=sim.app.webhook_secret,  # type: ignore[arg-type]
        github_api_url=sim.url,
        operator=OperatorConfig(
            builders={"default": profile}, repositories=Repositories(allowed=list(allowed))
        ),
    )
    server = TestServer(create_app(settings, engine=engine, with_worker=False), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/api/github/webhooks"))
    sim.webhook_url = url
    try:
        async with aiohttp.ClientSession() as http:
            app = GitHubApp(http, sim.url, sim.app.id, sim.app.private_key_pem)
            store = RunStore(engine)
            intake = RunIntake(settings, app, store, RunQueue(engine), RefusalNotices(engine))
            installations = Installations(session_factory(engine))
            deps = Deps(installations, intake, ConfigCheck(settings, app))
            dispatch = route_deliveries(deps, Wakeup(1))
            inbox = Inbox(engine)
            worker = InboxWorker(inbox, dispatch, asyncio.Event())
            yield IntakeWorld(sim, inst.id, inbox, worker, store, http, url)
    finally:
        sim.webhook_url = None
        await server.close()
