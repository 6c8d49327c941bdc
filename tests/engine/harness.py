"""A whole Autopack (web + worker, real database) wired to the simulator, for run tests."""

from __future__ import annotations

import asyncio
import sys
import time
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
RECORDING_AUDITOR = Path(__file__).parent / "scripts" / "recording_auditor.py"
FILES = {"README.md": "# widgets\n", "src/app.py": "print('hi')\n"}


@dataclass
class Clock:
    """The runs' clock: real time plus whatever a test lets pass at once (`advance`)."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Harness:
    sim: FakeGitHub
    engine: AsyncEngine
    settings: Settings
    store: RunStore
    clock: Clock

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
    auditor_env: dict[str, str] | None = None,
    ci_poll_seconds: float = 0.3,
    builder_script: Path = BUILDER,
    extra_files: dict[str, str] | None = None,
    builder_name: str = "default",
    builder_keys: dict[str, object] | None = None,
    bwrap_path: Path | None = None,
    extra_builders: dict[str, dict[str, str]] | None = None,
) -> AsyncIterator[Harness]:
    """A running Autopack; `planner_env` also configures the test planner (scripts/planner.py),
    `auditor_env` makes the `reviewer` auditor the recording one (scripts/recording_auditor.py).

    `builder_script` serves as builder and (without `auditor_env`) as the "reviewer" auditor
    profile; `extra_files` are added to the repository's first commit. Profiles run sandboxed
    (the default) with the interpreter and the test scripts shown read-only; `builder_keys`
    overrides the builder profile's keys (e.g. `sandbox = "none"`, `read_write`), `bwrap_path`
    where the server looks for bubblewrap. `extra_builders` adds builder profiles (name: env)
    running `builder_script` too.
    """
    require_bwrap()
    inst = sim.install("acme")
    files = {**FILES, **(extra_files or {})}
    files[".github/autopack.yml"] = ruleset_text if ruleset_text is not None else ruleset()
    sim.create_repo(REPO, files, installation=inst, ci=ci if ci is not None else CIScript.pass_())
    sim.set_permission(REPO, "alice", "write")
    sim.set_permission(REPO, "mallory", "read")
    profile = BuilderProfile.model_validate(
        {
            "backend": "command",
            "command": [sys.executable, str(builder_script)],
            "timeout_seconds": 120,
            "env": builder_env or {},
            "read_only": read_only_paths(),
            **(builder_keys or {}),
        }
    )
    extras = {
        name: profile.model_copy(update={"env": env})
        for name, env in (extra_builders or {}).items()
    }
    auditor = profile
    if auditor_env is not None:
        auditor = BuilderProfile(
            backend="command",
            command=[sys.executable, str(RECORDING_AUDITOR)],
            timeout_seconds=60,
            env=auditor_env,
            read_only=read_only_paths(),
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
        ci_poll_seconds=ci_poll_seconds,
        retry_backoff_seconds=0.05,
        **({"bwrap_path": bwrap_path} if bwrap_path is not None else {}),
        operator=OperatorConfig(
            builders={builder_name: profile, **extras, **planners},
            auditors={"reviewer": auditor},
            planner="planner" if planners else None,
        ),
    )
    clock = Clock()
    server = TestServer(create_app(settings, engine=engine, clock=clock), host="127.0.0.1")
    await server.start_server()
    sim.webhook_url = str(server.make_url("/api/github/webhooks"))
    try:
        yield Harness(sim, engine, settings, RunStore(engine), clock)
    finally:
        sim.webhook_url = None
        async with asyncio.timeout(30):  # a hanging shutdown fails the test instead of CI
            await server.close()
