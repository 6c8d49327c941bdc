"""`make demo`: a whole run against the bundled simulator, as a person runs it (real processes)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from app.config import OperatorConfig, load_operator_config
from demo.scene import DEMO_DIR, operator_config, sandbox_choice
from tests.engine.processes import free_port

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    # What a person's shell has; nothing of the test run's own configuration.
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def test_the_demo_runs_to_the_end_and_prints_what_github_shows() -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "demo", "--exit-when-done", "--port", str(port)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = out.splitlines()
    workdir = re.search(r"Autopack's log: (\S+)/autopack\.log", out)
    assert workdir is not None
    assert "demo: @maintainer labelled demo/widgets#1 `autopack:run`; the run:" in lines
    assert "  … ✅ Run 1 succeeded · 2 of 2 phases green" in lines
    # The check run as its page shows it: name, head, conclusion, title, then the summary.
    at = next(i for i, line in enumerate(lines) if line.startswith("Check run “Autopack” on "))
    assert lines[at].endswith(": success")
    assert lines[at + 1] == "✅ Run 1 succeeded · 2 of 2 phases green"
    assert "## ✅ Autopack run 1 succeeded" in lines[at + 3 :]
    assert "| ✅ | `T1` | `T1.P1` Add shout |" in out
    # The pull request: ready for review, from the run's branch, the builder's real change.
    assert "Pull request #2 (ready for review): Autopack: Shout, and say so" in lines
    assert "autopack[bot] wants to merge autopack/issue-1-run-1 into main" in lines
    assert "Refs #1" in lines
    for path in ("README.md", "tests/test_shout.py", "widgets.py"):
        assert f"  {path}" in lines
    # Where to look next, and nothing left behind once it stopped.
    assert re.search(
        rf"^Dashboard: http://localhost:{port}/  \(sign in with the API token \S{{20,}}\)$",
        out,
        re.MULTILINE,
    )
    assert not Path(workdir.group(1)).exists()


async def test_the_dashboard_stays_up_until_ctrl_c() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "demo",
        "--port",
        str(port),
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        token = ""
        async with asyncio.timeout(300):
            while (line := (await process.stdout.readline()).decode()) and not line.startswith(
                "Press Ctrl-C"
            ):
                if line.startswith("Dashboard: "):
                    token = line.rstrip().removesuffix(")").rsplit(" ", 1)[1]
        assert token
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(f"http://127.0.0.1:{port}/api/runs") as response,
        ):
            runs = (await response.json())["runs"]
        assert [(run["repository"], run["status"]) for run in runs] == [
            ("demo/widgets", "DONE_SUCCESS")
        ]
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # Autopack went with it: nothing listens on the dashboard's port any more.
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(f"http://127.0.0.1:{port}/health"):
                raise AssertionError("the demo's Autopack is still running")
        except aiohttp.ClientConnectionError:
            pass


def test_the_demo_builder_is_an_ordinary_operator_profile(tmp_path: Path) -> None:
    sandbox, _ = sandbox_choice()
    path = tmp_path / "operator.toml"
    path.write_text(operator_config(sandbox))
    config: OperatorConfig = load_operator_config(path)
    profile = config.builders["demo"]
    assert profile.backend == "command"
    assert profile.command[1] == str(DEMO_DIR / "builder.py")
    assert not profile.command[0].startswith(str(ROOT / ".venv"))  # the system's Python
    if sandbox is not None:  # an Autopack with the sandbox: the demo folder is shown read-only
        assert str(DEMO_DIR) in getattr(profile, "read_only")  # noqa: B009
