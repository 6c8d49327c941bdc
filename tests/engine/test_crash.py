"""A worker killed with SIGKILL at every state of a run, and restarted each time: the run ends as
it would have, with exactly one commit per phase attempt and the default branch never written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.domain.run_state import RunStatus
from app.engine.envelope import Envelope
from app.github.commits import parse_trailers
from app.store.db import create_engine
from app.store.runs import RunStore
from tests.engine.harness import REPO
from tests.engine.processes import Server, prepare
from tests.fakegithub.scenario import FakeGitHub

PLAN = "## Tier 1\n- [ ] Add the settings module\n- [ ] Add the loader\n"
KILL_AT = [
    RunStatus.RUN_CREATED,
    RunStatus.PHASE_EXECUTION,
    RunStatus.GATE,
    RunStatus.CI_RUNNING,
    RunStatus.SNAPSHOT_CREATED,
]


async def test_sigkill_at_every_state(
    fakegithub: FakeGitHub, tmp_path: Path, database_url: str
) -> None:
    env = await prepare(fakegithub, tmp_path, database_url)
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
