"""The start-up report: every profile that cannot run, or runs unsandboxed, is named once."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.agents.pids import discover_process_limit
from app.agents.sandbox import SandboxHost
from app.agents.sandbox_check import sandbox_report
from app.config import BuilderProfile, OperatorConfig, Probes, Settings
from tests.sandboxing import read_only_paths, require_bwrap

PY = [sys.executable, "-c", "pass"]


def profile(**keys: object) -> BuilderProfile:
    return BuilderProfile.model_validate(
        {"backend": "command", "command": PY, "read_only": read_only_paths(), **keys}
    )


async def report(settings: Settings) -> list[tuple[int, str]]:
    host = SandboxHost.from_settings(settings, discover_process_limit())
    return await sandbox_report(settings, host, os.environ["PATH"])


async def test_each_profile_that_cannot_run_is_named_with_the_reason(tmp_path: Path) -> None:
    require_bwrap()
    hidden_tool = tmp_path / "data" / "tools" / "agent"  # in the data directory: never shown
    hidden_tool.parent.mkdir(parents=True)
    hidden_tool.write_text("#!/bin/sh\n")
    hidden_tool.chmod(0o755)
    operator = OperatorConfig(
        builders={
            "fine": profile(),
            "unsandboxed": profile(sandbox="none"),
            "missing_path": profile(read_only=[str(tmp_path / "not-there")]),
            "hidden": profile(command=[str(hidden_tool)]),
            "absent": profile(command=["no-such-agent-cli"]),
            "remote": BuilderProfile(backend="openai", base_url="http://x", model="m"),
        },
        auditors={"review": profile(network=False)},
        planners={"plan": profile()},
        probes=Probes(allow_repository_probes=True, read_only=read_only_paths()),
    )
    settings = Settings(data_dir=tmp_path / "data", operator=operator)

    lines = await report(settings)

    warnings = [text for level, text in lines if level == logging.WARNING]
    assert warnings[:4] == [
        'builders.unsandboxed runs unsandboxed (sandbox = "none"): its processes can read '
        "everything the server's user can, the key file and database included",
        f"builders.missing_path will not be able to run: read_only path {tmp_path}/not-there "
        "does not exist",
        f"builders.hidden will not be able to run: {hidden_tool} is hidden inside the sandbox "
        "(add its directory to read_only)",
        "builders.absent will not be able to run: its program 'no-such-agent-cli' was not found",
    ]
    named = " ".join(text for _, text in lines)
    for fine in ("builders.fine", "auditors.review", "planners.plan", "probes", "remote"):
        assert f"{fine} " not in named
    assert lines[-1][1].startswith("max_processes is enforced by ")
    assert list((tmp_path / "data" / "scratch").iterdir()) == []  # the check cleaned up


async def test_without_bwrap_every_sandboxed_profile_is_named(tmp_path: Path) -> None:
    operator = OperatorConfig(
        builders={"default": profile()}, auditors={"none": profile(sandbox="none")}
    )
    missing = tmp_path / "nowhere" / "bwrap"
    settings = Settings(data_dir=tmp_path / "data", operator=operator, bwrap_path=missing)

    lines = await report(settings)

    texts = [text for _, text in lines]
    assert (
        "builders.default will not be able to run: the sandbox for builders.default could not "
        f"start: bubblewrap (bwrap) is not installed at {missing}"
    ) in texts
    assert any(text.startswith("auditors.none runs unsandboxed") for text in texts)


async def test_no_command_profile_no_report(tmp_path: Path) -> None:
    assert await report(Settings(data_dir=tmp_path / "data")) == []


def test_the_worker_can_mark_itself_non_dumpable() -> None:
    code = (
        "import ctypes\n"
        "from app.agents.sandbox import mark_non_dumpable\n"
        "libc = ctypes.CDLL(None)\n"
        "before = libc.prctl(3, 0, 0, 0, 0)\n"  # PR_GET_DUMPABLE
        "ok = mark_non_dumpable()\n"
        "print(before, ok, libc.prctl(3, 0, 0, 0, 0))\n"
    )
    root = Path(__file__).parents[2]
    done = subprocess.run(  # a child: this test process stays as it is
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert done.stdout.split() == ["1", "True", "0"]


async def test_autopack_worker_hides_its_environ_from_a_process_without_capabilities(
    tmp_path: Path,
) -> None:
    # What a same-user builder with `sandbox = "none"` meets: reading /proc/<worker>/environ
    # needs CAP_SYS_PTRACE once the worker is non-dumpable. Everything runs without
    # capabilities (as a non-root deployment does), since a capable target is refused anyway.
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    capless = [setpriv, "--inh-caps=-all", "--bounding-set=-all"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/autopack.db",
        "AUTOPACK_DATA_DIR": str(tmp_path / "data"),
        "AUTOPACK_LOG_FORMAT": "json",
    }
    autopack = str(Path(sys.executable).with_name("autopack"))
    worker = await asyncio.create_subprocess_exec(
        *capless, autopack, "worker", env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE
    )
    plain = await asyncio.create_subprocess_exec(*capless, "sleep", "60", env=env)
    try:
        assert worker.stdout is not None
        async with asyncio.timeout(60):
            while b"worker running" not in await worker.stdout.readline():
                pass
        from_worker = await _run([*capless, "cat", f"/proc/{worker.pid}/environ"])
        from_plain = await _run([*capless, "cat", f"/proc/{plain.pid}/environ"])
    finally:
        for process in (worker, plain):
            process.kill()
            await process.wait()
    assert from_plain == (0, "")  # the control: a dumpable process of the same user is readable
    assert from_worker[0] != 0
    assert "Permission denied" in from_worker[1]


async def _run(argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of a command."""
    done = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await done.communicate()
    return done.returncode or 0, stderr.decode()
