"""A hostile builder against the real sandbox (bubblewrap, real subprocesses, no mocks).

The server's secrets are canaries: in a process's environment (standing in for the worker's,
whose /proc/<pid>/environ a builder used to read), in the App's key file, the operator config,
the SQLite database, a `.env` beside the server and another run's workspace. Each hostile mode
(tests/agents/scripts/hostile.py) gets nothing, and the attempt ends cleanly with its reason.
Where it proves the probe itself works, the same builder runs once with `sandbox = "none"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.agents.command import CommandBuilder, CommandRunner
from app.agents.contract import BuilderResult, PhaseSpec
from app.config import BuilderProfile, Settings
from app.domain.effects import BudgetsLeft
from app.domain.events import BuilderOutcome
from tests.agents.processes import nothing_left_with
from tests.sandboxing import read_only_paths, sandbox_host

HOSTILE = Path(__file__).parent / "scripts" / "hostile.py"
SPEC = PhaseSpec(
    run_id="run-1",
    phase_id="p1",
    tier_id="t1",
    title="Be hostile",
    description="Try every way out.",
    task_category="feature",
    complexity="low",
    builder_mode="tweak_light",
    attempt=1,
    budgets_left=BudgetsLeft(tokens=1000, builder_attempts=0, auditor_attempts=0, seconds=60),
)


@dataclass
class Server:
    """A server's files with canaries in them, and a run's workspace in its data directory."""

    root: Path
    settings: Settings
    canaries: dict[str, str]
    work_tree: Path
    other_secret: Path

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def secret_files(self) -> list[Path]:
        settings = self.settings
        assert settings.config_path is not None
        assert settings.private_key_path is not None
        assert settings.dotenv_path is not None
        database = settings.sqlite_file
        assert database is not None
        files = [settings.private_key_path, settings.config_path, settings.dotenv_path]
        return [*files, database, self.other_secret]

    def snapshot(self) -> dict[str, bytes]:
        """Every file under the server's root except the attempt's own work tree."""
        return {
            str(path): path.read_bytes()
            for path in sorted(self.root.rglob("*"))
            if path.is_file() and not path.is_relative_to(self.work_tree)
        }

    async def attempt(self, mode: str, argument: str = "", **keys: object) -> BuilderResult:
        profile = BuilderProfile.model_validate(
            {
                "backend": "command",
                "command": [sys.executable, str(HOSTILE), mode, argument or "-"],
                "timeout_seconds": 60,
                "read_only": read_only_paths(),
                **keys,
            }
        )
        runner = CommandRunner(
            profile,
            scratch_root=self.data_dir / "scratch",
            sandbox=sandbox_host(self.data_dir, self.settings),
            name="builders.hostile",
            kill_grace_seconds=0.5,
        )
        return await CommandBuilder(runner).run(SPEC, self.work_tree)


def server_root(tmp_path: Path) -> Path:
    """Where the server's files go: outside /tmp (which the sandbox hides anyway) when possible,
    so that the data directory, database, config, key and .env are each hidden on their own."""
    for base in ("/srv", "/var/lib", "/opt"):
        if os.access(base, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="autopack-sandbox-test-", dir=base))
    return tmp_path / "server"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    """The canaries in place, and a process whose environment holds the worker's secrets."""
    root = server_root(tmp_path)
    try:
        async with _server(root) as made:
            yield made
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def _server(root: Path) -> AsyncIterator[Server]:
    canaries = {
        name: f"CANARY-{name}-{secrets.token_hex(6)}"
        for name in ("environ", "key", "config", "database", "dotenv", "other_run")
    }
    key = root / "keys" / "app.pem"
    config = root / "etc" / "autopack.toml"
    database = root / "db" / "autopack.db"
    dotenv = root / "srv" / ".env"
    for path in (key, config, database, dotenv):
        path.parent.mkdir(parents=True)
    key.write_text(f"-----BEGIN RSA PRIVATE KEY-----\n{canaries['key']}\n")
    config.write_text(f'# {canaries["config"]}\n[builders.x]\nbackend = "command"\n')
    dotenv.write_text(f"WEBHOOK_SECRET={canaries['dotenv']}\n")
    with sqlite3.connect(database) as db:
        db.execute("create table secrets (value text)")
        db.execute("insert into secrets values (?)", (canaries["database"],))
    db.close()
    data_dir = root / "data"
    work_tree = data_dir / "workspaces" / "run-1" / "tree"
    work_tree.mkdir(parents=True)
    (work_tree / "README.md").write_text("hello\n")
    (work_tree.parent / "manifest.json").write_text("{}")
    other = data_dir / "workspaces" / "run-2" / "tree" / "secret.txt"
    other.parent.mkdir(parents=True)
    other.write_text(canaries["other_run"])
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{database}",
        config_path=config,
        private_key_path=key,
        dotenv_path=dotenv,
    )
    # The worker's environment as a builder would find it in /proc.
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import time; time.sleep(300)",
        env={"PATH": "/usr/bin:/bin", "PRIVATE_KEY": canaries["environ"]},
    )
    try:
        yield Server(root, settings, canaries, work_tree, other)
    finally:
        worker.kill()
        await worker.wait()


def targets(server: Server, *extra: str) -> str:
    """The hostile builder's argument: the secret files and the directories to walk."""
    files = [str(path) for path in server.secret_files] + list(extra)
    return json.dumps({"files": files, "dirs": [str(server.root)]})


def report(result: BuilderResult) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(result.stdout_tail)
    return loaded


async def test_without_the_sandbox_the_hostile_reader_finds_every_canary(server: Server) -> None:
    # The control: the probe works, so its finding nothing below means something.
    result = await server.attempt("read", targets(server), sandbox="none")

    found = "\n".join(report(result)["found"])  # type: ignore[arg-type]
    for name, canary in server.canaries.items():
        assert canary in found, name


async def test_the_sandboxed_reader_finds_no_secret_and_no_other_process(server: Server) -> None:
    result = await server.attempt("read", targets(server))

    assert result.outcome is BuilderOutcome.OK, result.stderr_tail
    seen = report(result)
    assert seen["found"] == []
    # Its own PID namespace: bwrap's init and the builder, nothing of the host's.
    assert seen["visible_pids"] == 2
    errors = seen["errors"]
    assert isinstance(errors, dict)
    assert {str(path) for path in server.secret_files} <= set(errors)
    assert all(canary not in result.stdout_tail for canary in server.canaries.values())


async def test_pid_1s_command_line_names_no_hidden_path(server: Server) -> None:
    result = await server.attempt("command_lines")

    assert result.outcome is BuilderOutcome.OK, result.stderr_tail
    processes = report(result)
    hidden = [str(server.data_dir), *(str(path) for path in server.secret_files)]
    hidden += [str(path.parent) for path in server.secret_files]
    seen = json.dumps(processes)  # every command line, and what every open descriptor holds
    assert [path for path in hidden if path in seen] == []
    init = processes["1"]
    assert isinstance(init, dict)
    argv = init["argv"]
    assert Path(argv[0]).name == "bwrap"
    assert argv[1] == "--args"  # its options came through a descriptor...
    assert argv[3:5] == ["--", sys.executable]  # ...then the builder's own command
    assert argv[2] not in init["fds"]  # ...which bwrap closed once it had read them


async def test_writes_outside_the_work_tree_reach_nothing(server: Server) -> None:
    before = server.snapshot()
    escapes = [
        "../../escape.txt",
        "../manifest.json",
        str(server.data_dir / "escape.txt"),
        str(server.root / "db" / "escape.txt"),
        str(server.root / "escape.txt"),
        "/etc/escape.txt",
    ]
    payload = json.dumps(
        {"files": [*escapes, *(str(p) for p in server.secret_files), "inside.txt"], "dirs": []}
    )

    result = await server.attempt("write", payload)

    assert result.outcome is BuilderOutcome.OK, result.stderr_tail
    outcome = report(result)
    assert outcome["accepted"] == ["inside.txt"]
    assert server.snapshot() == before
    assert "/etc/escape.txt" in outcome["refused"]  # type: ignore[operator]
    assert (server.work_tree / "inside.txt").exists()


async def test_a_fork_bomb_stops_at_the_process_limit_and_leaves_nothing(
    server: Server,
) -> None:
    token = f"bomb-{secrets.token_hex(6)}"

    result = await server.attempt("fork_bomb", json.dumps({"count": 10_000, "token": token}))

    assert result.outcome is BuilderOutcome.OK, result.stderr_tail
    outcome = report(result)
    started = outcome["started"]
    assert isinstance(started, int)
    assert 0 < started < 512  # the default max_processes; bwrap's own processes count too
    assert outcome["error"] == "Resource temporarily unavailable"
    assert await nothing_left_with(token)


async def test_a_file_over_the_size_limit_is_cut_and_the_attempt_says_why(server: Server) -> None:
    result = await server.attempt("big_file", "3", max_file_mb=1)

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == "the command exited with code 1 (file size limit 1 MB)"
    assert (server.work_tree / "big.bin").stat().st_size <= 1024 * 1024


async def test_a_shell_writer_over_the_size_limit_is_killed_by_sigxfsz(server: Server) -> None:
    result = await server.attempt("big_file_shell", "3", max_file_mb=1)

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == "the command was killed by SIGXFSZ (file size limit 1 MB)"
    assert (server.work_tree / "big.bin").stat().st_size <= 1024 * 1024


@pytest.mark.parametrize("mode", ["escape_and_exit", "escape_and_hang"])
async def test_a_setsid_daemon_does_not_outlive_the_attempt(server: Server, mode: str) -> None:
    token = f"daemon-{secrets.token_hex(8)}"

    result = await server.attempt(mode, token, timeout_seconds=3)

    assert "escaped" in result.stdout_tail
    if mode == "escape_and_exit":
        assert result.outcome is BuilderOutcome.OK
    else:
        assert result.outcome is BuilderOutcome.TIMED_OUT
        assert result.failure_reason == "the command ran past its 3 s timeout and was killed"
    assert await nothing_left_with(token)


async def test_a_cpu_hog_is_stopped_by_its_cpu_limit(server: Server) -> None:
    result = await server.attempt("cpu", cpu_seconds=1, timeout_seconds=30)

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == "the command was killed by SIGXCPU (CPU limit 1 s)"
