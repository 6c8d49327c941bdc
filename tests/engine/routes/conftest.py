"""What the route handler tests share: GitHub's example payloads, dispatched through the routing
table as the worker does, to handlers holding real stores (SQLite and PostgreSQL) and a real
GitHub client against the simulator, whose request log is the record of the calls they made.

The examples name `Codertocat/Hello-World`, so the simulator holds that repository, installed
for its owner, with Codertocat (the examples' sender) allowed to write and mallory only to read.
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import BuilderProfile, OperatorConfig, Settings
from app.domain.events import BuilderFinished, BuilderOutcome, GateEvaluated, Pushed
from app.domain.gate import Decision
from app.domain.payload import parse_payload
from app.domain.run_state import RunState
from app.engine.config_check import ConfigCheck
from app.engine.envelope import Envelope
from app.engine.memo import Memo, RunFacts
from app.engine.routes import ROUTES, Deps
from app.engine.run_intake import RunIntake, run_id_for
from app.github.client import GitHubApp
from app.store.db import session_factory
from app.store.inbox import InboxDelivery
from app.store.installations import Installations
from app.store.notices import RefusalNotices
from app.store.queue import Job, RunQueue
from app.store.runs import NewRun, RunRecord, RunStore
from tests.conftest import load_payload
from tests.domain.machine_fixtures import bootstrap, drive, make_strategy
from tests.engine.harness import BUILDER, ruleset
from tests.engine.recorded import Call, calls_since
from tests.fakegithub.scenario import FakeGitHub

REPO = "Codertocat/Hello-World"  # the repository GitHub's examples name
WRITER = "Codertocat"  # the examples' sender
READER = "mallory"


@dataclass
class RouteWorld:
    sim: FakeGitHub
    deps: Deps
    store: RunStore
    queue: RunQueue
    installations: Installations
    installation_id: int

    def example(self, name: str) -> dict[str, Any]:
        """GitHub's example `name`, delivered to the simulator's installation of the App (the
        examples come from another installation, or from none)."""
        data = copy.deepcopy(load_payload(name))
        data["installation"] = {"id": self.installation_id, "node_id": "MDIzOkluc3RhbGxhdGlvbg=="}
        return data

    async def dispatch(self, event: str, data: dict[str, Any]) -> list[Call]:
        """Route one delivery as the worker does; the calls the handlers made as the App's
        installation (looking up who the App is, and its tokens, are not counted)."""
        delivery = self.delivery(event, data)
        mark = len(self.sim.request_log)
        await ROUTES.dispatch(delivery, parse_payload(event, delivery.body), self.deps)
        return calls_since(self.sim, mark)

    @staticmethod
    def delivery(event: str, data: dict[str, Any]) -> InboxDelivery:
        """A stored delivery of `data`, as the worker claims it."""
        installation = data.get("installation") or {}
        return InboxDelivery(
            id=1,
            delivery_id=str(uuid.uuid4()),
            event=event,
            action=data.get("action"),
            installation_id=installation.get("id"),
            body=json.dumps(data),
            attempts=1,
        )

    async def open_issue(self, *labels: str) -> int:
        """Issue #1, as the examples' issue is (open, its title and description), with `labels`."""
        issue = self.example("issues.labeled")["issue"]
        number = await self.sim.open_issue(REPO, issue["title"], issue["body"], WRITER)
        for label in labels:
            await self.sim.label_issue(REPO, number, label, sender=WRITER)
        return number

    async def runs(self, issue: int = 1) -> list[RunRecord]:
        """The issue's runs, newest first."""
        return await self.store.issue_runs(REPO, issue)

    async def jobs(self, run_id: str) -> list[Job]:
        """The run's pending jobs, oldest first."""
        return await self.queue.pending(run_id)

    async def waiting_run(self, issue: int, sha: str) -> str:
        """A stored run waiting for CI on `sha` (its phase pushed, nothing judged yet)."""
        run_id = run_id_for(REPO, issue, 1)
        events = [
            *bootstrap(make_strategy(run_id=run_id)),
            BuilderFinished("p1", 1, BuilderOutcome.OK),
            GateEvaluated("p1", 1, Decision.PASS),
            Pushed("p1", 1, sha),
        ]
        state, _ = drive(events, RunState(run_id))
        assert state.awaiting is not None
        assert state.awaiting.sha == sha
        memo = Memo(RunFacts(self.installation_id, REPO, issue))
        await self.store.create_run(
            NewRun(
                id=run_id,
                installation_id=self.installation_id,
                repository=REPO,
                issue_number=issue,
                run_number=1,
                branch=f"autopack/issue-{issue}-run-1",
                status=state.status.value,
                state=Envelope(state, memo).dumps(),
            )
        )
        return run_id


@pytest.fixture
async def world(fakegithub: FakeGitHub, engine: AsyncEngine) -> AsyncIterator[RouteWorld]:
    """The routing table's dependencies as the service makes them, on the `engine` database."""
    inst = fakegithub.install("Codertocat", account_type="User")
    files = {"README.md": "# Hello-World\n", ".github/autopack.yml": ruleset()}
    fakegithub.create_repo(REPO, files, installation=inst, ci=None, owner_type="User")
    fakegithub.set_permission(REPO, WRITER, "write")
    fakegithub.set_permission(REPO, READER, "read")
    profile = BuilderProfile(backend="command", command=[sys.executable, str(BUILDER)])
    settings = Settings(
        app_id=fakegithub.app.id,
        private_key=fakegithub.app.private_key_pem,  # type: ignore[arg-type]
        github_api_url=fakegithub.url,
        operator=OperatorConfig(builders={"default": profile}),
    )
    async with aiohttp.ClientSession() as http:
        app = GitHubApp(http, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        store, queue = RunStore(engine), RunQueue(engine)
        installations = Installations(session_factory(engine))
        intake = RunIntake(settings, app, store, queue, RefusalNotices(engine))
        deps = Deps(installations, intake, ConfigCheck(settings, app))
        yield RouteWorld(fakegithub, deps, store, queue, installations, inst.id)
