"""A worker killed with SIGKILL at every state of a run, and restarted each time: the run ends as
it would have, with exactly one commit per phase attempt and the default branch never written."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import BinaryIO

import aiohttp

from app.domain.run_state import RunStatus
from app.engine.envelope import Envelope
from app.github.commits import parse_trailers
from app.store.db import create_engine
from app.store.runs import RunStore
from tests.engine.harness import BUILDER, FILES, REPO, ruleset
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub

AUTOPACK = str(Path(sys.executable).with_name("autopack"))
PLAN = "## Tier 1\n- [ ] Add the settings module\n- [ ] Add the loader\n"
KILL_AT = [
    RunStatus.RUN_CREATED,
    RunStatus.PHASE_EXECUTION,
    RunStatus.GATE,
    RunStatus.CI_RUNNING,
    RunStatus.SNAPSHOT_CREATED,
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`autopack serve` in its own process, killed and restarted at will."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.log_path = cwd / "server.log"

    async def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = await self._spawn(log)
        await self._healthy()

    async def _spawn(self, log: BinaryIO) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            AUTOPACK,
            "serve",
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )

    async def _healthy(self) -> None:
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            while True:
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


async def test_sigkill_at_every_state(
    fakegithub: FakeGitHub, tmp_path: Path, database_url: str
) -> None:
    inst = fakegithub.install("acme")
    files = {**FILES, ".github/autopack.yml": ruleset()}
    fakegithub.create_repo(REPO, files, installation=inst, ci=CIScript.pass_())
    fakegithub.set_permission(REPO, "alice", "write")
    config = tmp_path / "autopack.toml"
    config.write_text(
        f'[builders.default]\nbackend = "command"\ncommand = ["{sys.executable}", "{BUILDER}"]\n'
    )
    key = tmp_path / "app.pem"
    key.write_text(fakegithub.app.private_key_pem)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "APP_ID": str(fakegithub.app.id),
        "PRIVATE_KEY_PATH": str(key),
        "WEBHOOK_SECRET": fakegithub.app.webhook_secret,
        "GITHUB_API_URL": fakegithub.url,
        "DATABASE_URL": database_url,
        "AUTOPACK_DATA_DIR": str(tmp_path / "data"),
        "AUTOPACK_CONFIG": str(config),
        "AUTOPACK_LEASE_SECONDS": "1",
        "AUTOPACK_CI_POLL_SECONDS": "0.3",
        "AUTOPACK_LOG_FORMAT": "json",
        "PORT": str(_free_port()),
    }
    migrate = await asyncio.create_subprocess_exec(AUTOPACK, "migrate", env=env, cwd=tmp_path)
    assert await migrate.wait() == 0
    server = Server(env, tmp_path)
    await server.start()
    fakegithub.webhook_url = f"{server.url}/api/github/webhooks"
    engine = create_engine(database_url)
    store = RunStore(engine)
    kills: list[str] = []
    try:
        issue = await fakegithub.open_issue(REPO, "Two phases", PLAN, user="alice")
        await fakegithub.label_issue(REPO, issue, "autopack:run", sender="alice")
        pending = list(KILL_AT)
        async with asyncio.timeout(40):
            while True:
                runs = await store.list_runs(repository=REPO)
                run = runs[0] if runs else None
                if run is not None and run.terminal:
                    break
                if run is not None and pending and run.status == pending[0].value:
                    await server.kill()
                    kills.append(pending.pop(0).value)
                    await server.start()
                await asyncio.sleep(0.01)
        await fakegithub.idle()
        env_state = Envelope.loads(run.state)
    finally:
        fakegithub.webhook_url = None
        if server.process is not None and server.process.returncode is None:
            await server.kill()
        await engine.dispose()
    assert run.status == RunStatus.DONE_SUCCESS.value, env_state.state.terminal_reason
    assert len(kills) >= 3, kills  # killed in most states (a fast state can slip by)
    repo = fakegithub.repo(REPO)
    commits = repo.commits(f"heads/{run.branch}")
    attempts = [
        (t.get("Autopack-Phase"), t.get("Autopack-Attempt"))
        for t in (parse_trailers(c.message) for c in commits)
        if t.get("Autopack-Phase") not in (None, "artefacts")
    ]
    assert len(attempts) == len(set(attempts))  # exactly one commit per phase attempt
    assert {phase for phase, _ in attempts} == {"T1.P1", "T1.P2"}
    assert repo.ref("heads/main") == repo.commits("heads/main")[0].sha
    assert [c.message for c in repo.commits("heads/main")] == ["Initial commit"]
    assert len(repo.pulls) == 1
    assert len([c for c in repo.comments(issue) if f"autopack:run:{run.id}" in c.body]) == 1
