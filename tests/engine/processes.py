"""Autopack as an operator runs it, in real processes against the simulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import BinaryIO

import aiohttp

from tests.engine.harness import BUILDER, FILES, REPO, ruleset
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub
from tests.sandboxing import read_only_paths

AUTOPACK = str(Path(sys.executable).with_name("autopack"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """An `autopack` command in its own process, killed and restarted at will."""

    def __init__(
        self, env: dict[str, str], cwd: Path, command: str = "serve", name: str = "server"
    ) -> None:
        self.env = env
        self.cwd = cwd
        self.command = command
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{env['PORT']}"
        self.log_path = cwd / f"{name}.log"

    async def start(self) -> None:
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = await self._spawn(log)
        if self.command != "worker":
            await self._healthy()

    async def stop(self) -> None:
        """Kill the process if it still runs."""
        if self.process is not None and self.process.returncode is None:
            await self.kill()

    async def _spawn(self, log: BinaryIO) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            AUTOPACK,
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )

    async def _healthy(self) -> None:
        await wait_healthy(self.url)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()


async def wait_healthy(url: str, seconds: float = 90) -> None:
    """Until `url`/health answers 200; generous, since a loaded 2-core machine starts slowly."""
    async with aiohttp.ClientSession() as session, asyncio.timeout(seconds):
        while True:
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)


async def prepare(
    sim: FakeGitHub,
    tmp_path: Path,
    database_url: str,
    *,
    builder_env: dict[str, str] | None = None,
    builder_read_write: list[str] | None = None,
    lease_seconds: float = 1,
) -> dict[str, str]:
    """A repository in the simulator, an operator config, a migrated database; the environment.

    The builder sees `builder_read_write` read-write in its sandbox (e.g. a test's own folder)."""
    inst = sim.install("acme")
    files = {**FILES, ".github/autopack.yml": ruleset()}
    sim.create_repo(REPO, files, installation=inst, ci=CIScript.pass_())
    sim.set_permission(REPO, "alice", "write")
    config = tmp_path / "autopack.toml"
    config.write_text(
        f'[builders.default]\nbackend = "command"\ncommand = ["{sys.executable}", "{BUILDER}"]\n'
        f"read_only = {json.dumps(read_only_paths())}\n"
        f"read_write = {json.dumps(builder_read_write or [])}\n"
        + "".join(f'env.{name} = "{value}"\n' for name, value in (builder_env or {}).items())
    )
    key = tmp_path / "app.pem"
    key.write_text(sim.app.private_key_pem)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "APP_ID": str(sim.app.id),
        "PRIVATE_KEY_PATH": str(key),
        "WEBHOOK_SECRET": sim.app.webhook_secret,
        "GITHUB_API_URL": sim.url,
        "DATABASE_URL": database_url,
        "AUTOPACK_DATA_DIR": str(tmp_path / "data"),
        "AUTOPACK_CONFIG": str(config),
        "AUTOPACK_LEASE_SECONDS": str(lease_seconds),
        "AUTOPACK_CI_POLL_SECONDS": "0.3",
        "AUTOPACK_LOG_FORMAT": "json",
        "PORT": str(free_port()),
    }
    migrate = await asyncio.create_subprocess_exec(
        AUTOPACK, "migrate", env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL
    )
    assert await migrate.wait() == 0
    return env
