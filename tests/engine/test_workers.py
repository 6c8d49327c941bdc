"""Several `autopack worker` processes beside one `autopack web` on PostgreSQL share the runs;
each run ends as it would with one worker, one commit per phase attempt."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.domain.run_state import RunStatus
from app.github.commits import parse_trailers
from app.store.db import create_engine
from app.store.runs import RunStore
from tests.engine.harness import REPO
from tests.engine.processes import Server, prepare
from tests.fakegithub.scenario import FakeGitHub

PLAN = "## Tier 1\n- [ ] Add the settings module\n## Tier 2\n- [ ] Add the loader\n"
ISSUES = 4


def _runs_driven(log: Path) -> set[str]:
    runs = set()
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("message") == "effect done":
                runs.add(record["run"])
    return runs


async def test_two_workers_share_the_runs(
    fakegithub: FakeGitHub, tmp_path: Path, postgres_url: str
) -> None:
    # Several worker processes need PostgreSQL (SQLite serialises them on one file).
    database_url = postgres_url
    env = await prepare(fakegithub, tmp_path, database_url)
    web = Server(env, tmp_path, command="web", name="web")
    workers = [Server(env, tmp_path, command="worker", name=f"worker-{n}") for n in (1, 2)]
    engine = create_engine(database_url)
    store = RunStore(engine)
    try:
        await web.start()
        for worker in workers:
            await worker.start()
        fakegithub.webhook_url = f"{web.url}/api/github/webhooks"
        for n in range(ISSUES):
            number = await fakegithub.open_issue(REPO, f"Work {n}", PLAN, user="alice")
            await fakegithub.label_issue(REPO, number, "autopack:run", sender="alice")
        async with asyncio.timeout(300):
            while True:
                runs = await store.list_runs(repository=REPO)
                if len(runs) == ISSUES and all(run.terminal for run in runs):
                    break
                await asyncio.sleep(0.1)
        await fakegithub.idle()
    finally:
        fakegithub.webhook_url = None
        for server in (web, *workers):
            await server.stop()
        await engine.dispose()
    assert {run.status for run in runs} == {RunStatus.DONE_SUCCESS.value}
    repo = fakegithub.repo(REPO)
    for run in runs:
        trailers = [parse_trailers(c.message) for c in repo.commits(f"heads/{run.branch}")]
        attempts = [(t["Autopack-Phase"], t["Autopack-Attempt"]) for t in trailers if t]
        assert len(attempts) == len(set(attempts))
        assert {phase for phase, _ in attempts} == {"T1.P1", "T2.P1", "artefacts"}
    driven = [_runs_driven(worker.log_path) for worker in workers]
    assert all(driven), "both workers drove runs"
    assert driven[0] | driven[1] == {run.id for run in runs}
    assert [c.message for c in repo.commits("heads/main")] == ["Initial commit"]
