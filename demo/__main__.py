"""`make demo` (`python -m demo`): one whole Autopack run against the bundled GitHub simulator.

Nothing leaves the machine. The simulator (tests/fakegithub) plays GitHub with a demo repository,
its CI and an issue holding a plan; Autopack runs as `autopack serve` in its own process with the
demo builder (demo/builder.py, sandboxed like any builder); a maintainer labels the issue
`autopack:run`. When the run ends the check run and the pull request are printed as GitHub shows
them, and the dashboard stays up until Ctrl-C (`--exit-when-done` stops at once instead).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from demo.scene import (
    MAINTAINER,
    PLAN,
    PLAN_TITLE,
    REPO,
    build_world,
    operator_config,
    sandbox_choice,
)
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import CheckRun, Issue

RUN_TIMEOUT_SECONDS = 300
BAR = "─" * 78


def _port(wanted: int | None) -> int:
    """The asked-for port, else 8000 when free, else any free one."""
    if wanted:
        return wanted
    for candidate in (8000, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
            return port
    raise SystemExit("demo: no free port")


async def _start_autopack(env: dict[str, str], cwd: Path, log: Path) -> asyncio.subprocess.Process:
    """`autopack serve` in its own process; returns once it listens (its output goes to `log`)."""
    with log.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "serve",
            cwd=cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
        )
    assert process.stdout is not None
    first = await process.stdout.readline()
    if not first.startswith(b"autopack: listening on "):
        await process.wait()
        raise SystemExit(f"demo: Autopack did not start ({first.decode().strip()}); see {log}")
    asyncio.get_running_loop().create_task(_copy(process.stdout, log))
    return process


async def _copy(stream: asyncio.StreamReader, log: Path) -> None:
    with log.open("ab") as sink:
        while line := await stream.readline():
            sink.write(line)


def _latest(sim: FakeGitHub, name: str = "Autopack") -> CheckRun | None:
    runs = [run for run in sim.repo(REPO).check_runs if run.name == name]
    return runs[-1] if runs else None


async def _until_finished(sim: FakeGitHub, process: asyncio.subprocess.Process) -> CheckRun:
    """Follow the run through its check run's title until it completes."""
    seen = ""
    async with asyncio.timeout(RUN_TIMEOUT_SECONDS):
        while True:
            run = _latest(sim)
            if run is not None and run.output.get("title", "") != seen:
                seen = run.output.get("title", "")
                print(f"  … {seen}", flush=True)
            if run is not None and run.status == "completed" and run.conclusion != "neutral":
                await sim.idle()
                return run
            if process.returncode is not None:
                raise SystemExit("demo: Autopack stopped during the run; see its log")
            await asyncio.sleep(0.2)  # the run moves in Autopack's process: look again shortly


def _show_check_run(run: CheckRun) -> None:
    print(f"\n{BAR}\nCheck run “{run.name}” on {run.head_sha[:7]}: {run.conclusion}")
    print(f"{run.output.get('title', '')}\n{BAR}")
    print(run.output.get("summary", ""))


def _show_pull(sim: FakeGitHub) -> None:
    pulls = sim.repo(REPO).pulls
    if not pulls:
        print(f"\n{BAR}\n(no pull request was opened)")
        return
    pull: Issue = pulls[-1]
    assert pull.pull is not None
    state = "draft" if pull.pull.draft else "ready for review"
    print(f"\n{BAR}\nPull request #{pull.number} ({state}): {pull.title}")
    head, base = pull.pull.head_ref, pull.pull.base_ref
    print(f"{pull.user.login} wants to merge {head} into {base}\n{BAR}")
    print(pull.body or "")
    repo = sim.repo(REPO)
    before, after = repo.files(f"heads/{base}"), repo.files(f"heads/{head}")
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    print(f"{BAR}\nFiles changed ({len(changed)}):")
    for path in changed:
        print(f"  {path}")


async def _until_stopped(exit_when_done: bool) -> None:
    if exit_when_done:
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def run_demo(port: int, exit_when_done: bool) -> int:
    """The whole demo; returns the exit status (0 when the run succeeded)."""
    workdir = Path(tempfile.mkdtemp(prefix="autopack-demo-"))
    sim = FakeGitHub()
    await sim.start()
    process: asyncio.subprocess.Process | None = None
    try:
        sandbox, note = sandbox_choice()
        if note:
            print(f"demo: {note}")
        build_world(sim)
        config = workdir / "operator.toml"
        config.write_text(operator_config(sandbox), encoding="utf-8")
        token = secrets.token_urlsafe(24)
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "HOME": str(workdir),
            "APP_ID": str(sim.app.id),
            "PRIVATE_KEY": sim.app.private_key_pem,
            "WEBHOOK_SECRET": sim.app.webhook_secret,
            "GITHUB_API_URL": sim.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'autopack.db'}",
            "AUTOPACK_DATA_DIR": str(workdir / "data"),
            "AUTOPACK_CONFIG": str(config),
            "AUTOPACK_API_TOKEN": token,
            "AUTOPACK_CI_POLL_SECONDS": "1",
            "AUTOPACK_LOG_FORMAT": "json",
            "PORT": str(port),
        }
        log = workdir / "autopack.log"
        print(f"demo: GitHub simulator on {sim.url}; Autopack's log: {log}")
        process = await _start_autopack(env, workdir, log)
        sim.webhook_url = f"http://127.0.0.1:{port}/api/github/webhooks"
        number = await sim.open_issue(REPO, PLAN_TITLE, PLAN, user=MAINTAINER)
        await sim.label_issue(REPO, number, "autopack:run", sender=MAINTAINER)
        print(f"demo: @{MAINTAINER} labelled {REPO}#{number} `autopack:run`; the run:")
        run = await _until_finished(sim, process)
        _show_check_run(run)
        _show_pull(sim)
        print(f"\n{BAR}\nDashboard: http://localhost:{port}/  (sign in with the API token {token})")
        if not exit_when_done:
            print("Press Ctrl-C to stop the demo.", flush=True)
        await _until_stopped(exit_when_done)
        return 0 if run.conclusion == "success" else 1
    finally:
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
        sim.webhook_url = None
        await sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m demo [--port N] [--exit-when-done]`."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--port", type=int, help="the dashboard's port (default 8000, or free)")
    parser.add_argument(
        "--exit-when-done", action="store_true", help="stop when the run ends (for tests)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(_port(args.port), args.exit_when_done))
    return 130


if __name__ == "__main__":
    sys.exit(main())
