"""A whole Autopack (web + worker, real database) wired to the simulator, for run tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import BuilderProfile, OperatorConfig, Settings
from app.engine.envelope import Envelope
from app.store.runs import RunRecord, RunStore
from app.web.app import create_app
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub
from tests.sandboxing import read_only_paths, require_bwrap

REPO = "acme/widgets"
BUILDER = Path(__file__).parent / "scripts" / "phase_builder.py"
PLANNER = Path(__file__).parent / "scripts" / "planner.py"
FILES = {"README.md": "# widgets\n", "src/app.py": "print('hi')\n"}


@dataclass
class Harness:
    sim: FakeGitHub
    engine: AsyncEngine
    settings: Settings
    store: RunStore

    async def start_run(self, body: str, title: str = "Build the thing") -> int:
        number = await self.sim.open_issue(REPO, title, body, user="alice")
        await self.sim.label_issue(REPO, number, "autopack:run", sender="alice")
        return number

    async def until(self, predicate: Callable[[], Awaitable[bool]]) -> None:
        """Wait (bounded) for a condition the server's background tasks bring about."""
        async with asyncio.timeout(30):
            while not await predicate():  # noqa: ASYNC110 - no event to wait on across the server
                await asyncio.sleep(0.05)

    async def comment_containing(self, issue: int, text: str) -> str:
        """The body of the first comment on the issue containing `text`, once there is one."""

        async def present() -> bool:
            return any(text in c.body for c in self.sim.repo(REPO).comments(issue))

        await self.until(present)
        return next(c.body for c in self.sim.repo(REPO).comments(issue) if text in c.body)

    async def run_of(self, issue: int) -> RunRecord | None:
        runs = await self.store.list_runs(repository=REPO)
        mine = [run for run in runs if run.issue_number == issue]
        return mine[0] if mine else None

    async def finished(self, issue: int) -> tuple[RunRecord, Envelope]:
        """Wait (bounded) until the issue's run is terminal with every effect carried out."""
        async with asyncio.timeout(60):
            while True:
                run = await self.run_of(issue)
                if run is not None and run.terminal:
                    await self.sim.idle()
                    return run, Envelope.loads(run.state)
                await asyncio.sleep(0.05)


def ruleset(extra: str = "") -> str:
    return "builder: default\nci: {start_timeout_minutes: 1}\n" + extra


@asynccontextmanager
async def autopack(
    sim: FakeGitHub,
    engine: AsyncEngine,
    data_dir: Path,
    *,
    ci: CIScript | None = None,
    ruleset_text: str | None = None,
    builder_env: dict[str, str] | None = None,
    planner_env: dict[str, str] | None = None,
    builder_keys: dict[str, object] | None = None,
    bwrap_path: Path | None = None,
) -> AsyncIterator[Harness]:
    """A running Autopack; `planner_env` also configures the test planner (scripts/planner.py).

    Profiles run sandboxed (the default) with the interpreter and the test scripts shown
    read-only; `builder_keys` overrides the builder profile's keys (e.g. `sandbox = "none"`),
    `bwrap_path` where the server looks for bubblewrap.
    """
    require_bwrap()
    inst = sim.install("acme")
    files = dict(FILES)
    files[".github/autopack.yml"] = ruleset_text if ruleset_text is not None else ruleset()
    sim.create_repo(REPO, files, installation=inst, ci=ci if ci is not None else CIScript.pass_())
    sim.set_permission(REPO, "alice", "write")
    sim.set_permission(REPO, "mallory", "read")
    profile = BuilderProfile.model_validate(
        {
            "backend": "command",
            "command": [sys.executable, str(BUILDER)],
            "timeout_seconds": 120,
            "env": builder_env or {},
            "read_only": read_only_paths(),
            **(builder_keys or {}),
        }
    )
    planners = {}
    if planner_env is not None:
        planners["planner"] = BuilderProfile(
            backend="command",
            command=[sys.executable, str(PLANNER)],
            timeout_seconds=60,
            env=planner_env,
            read_only=read_only_paths(),
        )
    settings = Settings(
        app_id=sim.app.id,
        private_key=sim.app.private_key_pem,  # type: ignore[arg-type]
        webhook_secret=sim.app.webhook_secret,  # type: ignore[arg-type]
        github_api_url=sim.url,
        data_dir=data_dir,
        ci_poll_seconds=0.3,
        **({"bwrap_path": bwrap_path} if bwrap_path is not None else {}),
        operator=OperatorConfig(
            builders={"default": profile, **planners},
            auditors={"reviewer": profile},
            planner="planner" if planners else None,
        ),
    )
    server = TestServer(create_app(settings, engine=engine), host="127.0.0.1")
    await server.start_server()
    sim.webhook_url = str(server.make_url("/api/github/webhooks"))
    try:
        yield Harness(sim, engine, settings, RunStore(engine))
    finally:
        sim.webhook_url = None
        async with asyncio.timeout(30):  # a hanging shutdown fails the test instead of CI
            await server.close()
