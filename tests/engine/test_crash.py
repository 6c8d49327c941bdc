"""A worker killed with SIGKILL at every state of a run, and restarted each time: the run ends as
it would have, with exactly one commit per phase attempt, one check run per head, one comment,
one pull request, and the default branch never written. Each kill comes at an exact moment: the
simulator holds the request the worker makes there (no polling race)."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from app.domain.events import CIFinished, CIResult, event_from_json
from app.domain.run_state import RunStatus
from app.engine.envelope import Envelope
from app.github.commits import parse_trailers
from app.store.db import create_engine
from app.store.runs import EventKind, RunRecord, RunStore
from tests.engine.harness import REPO
from tests.engine.processes import Server, prepare
from tests.fakegithub.ci import FLAKY, PASS, CIScript
from tests.fakegithub.scenario import FakeGitHub

PLAN = "## Tier 1\n- [ ] Add the settings module\n- [ ] Add the loader\n"
R = f"/repos/{REPO}"
# Where the worker dies: held at each request, killed while it waits, restarted. In run order;
# each is the first effect of a state (the one saved with it), so every state is crossed dead.
KILL_AT = [
    ("RUN_CREATED: creating the branch", "POST", f"{R}/git/refs$", b"refs/heads/"),
    ("RUN_CREATED: the first check run", "POST", f"{R}/check-runs$", b""),
    ("PHASE_EXECUTION: the builder's workspace", "GET", f"{R}/tarball/", b""),
    ("GATE: pushing the change", "POST", f"{R}/git/trees$", b""),
    ("CI_RUNNING: reading CI", "GET", f"{R}/commits/[0-9a-f]+/check-runs", b""),
    ("SNAPSHOT_CREATED: the snapshot tag", "POST", f"{R}/git/refs$", b"refs/tags/"),
    ("PHASE_EXECUTION: the draft pull request", "POST", f"{R}/pulls$", b""),
    ("DONE: the final report", "PATCH", f"{R}/check-runs/[0-9]+$", b'"conclusion": "success"'),
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
        for where, method, path, body in KILL_AT:
            hold = fakegithub.faults.hold_next(method, path, body)
            async with asyncio.timeout(120):
                await hold.reached.wait()
            await server.kill()
            kills.append(where)
            hold.release.set()  # its answer goes to a dead worker: a lost response
            await server.start()
        async with asyncio.timeout(120):
            while True:
                runs = await store.list_runs(repository=REPO)
                run = runs[0] if runs else None
                if run is not None and run.terminal:
                    break
                await asyncio.sleep(0.05)
        await fakegithub.idle()
        env_state = Envelope.loads(run.state)
    finally:
        fakegithub.webhook_url = None
        if server.process is not None and server.process.returncode is None:
            await server.kill()
        await engine.dispose()
    assert run.status == RunStatus.DONE_SUCCESS.value, env_state.state.terminal_reason
    assert kills == [where for where, *_ in KILL_AT]  # every kill happened, in order
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
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    assert len({c.head_sha for c in ours}) == len(ours)  # one check run per head
    assert all(c.status == "completed" for c in ours)  # none left in progress by a kill


async def test_a_change_lost_with_its_work_tree_is_built_again(
    fakegithub: FakeGitHub, tmp_path: Path
) -> None:
    # The worker dies while pushing, and its disk with it (another host takes over): the gated
    # change exists nowhere any more, so that attempt is lost and the builder runs again.
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}"
    env = await prepare(fakegithub, tmp_path, database_url)
    server = Server(env, tmp_path)
    await server.start()
    fakegithub.webhook_url = f"{server.url}/api/github/webhooks"
    engine = create_engine(database_url)
    store = RunStore(engine)
    try:
        issue = await fakegithub.open_issue(REPO, "One", "- [ ] Add it\n", user="alice")
        hold = fakegithub.faults.hold_next("POST", f"{R}/git/trees$")
        await fakegithub.label_issue(REPO, issue, "autopack:run", sender="alice")
        async with asyncio.timeout(120):
            await hold.reached.wait()
        await server.kill()
        shutil.rmtree(tmp_path / "data" / "workspaces")
        hold.release.set()
        await server.start()
        run = await ended(store)
        await fakegithub.idle()
    finally:
        fakegithub.webhook_url = None
        await server.stop()
        await engine.dispose()
    state = Envelope.loads(run.state).state
    assert run.status == RunStatus.DONE_SUCCESS.value, state.terminal_reason
    assert state.phases[0].builder_attempts == 2
    assert "lost with the work tree" in state.phases[0].feedback[0]
    commits = fakegithub.repo(REPO).commits(f"heads/{run.branch}")
    trailers = [parse_trailers(c.message) for c in commits]
    assert [(t["Autopack-Phase"], t["Autopack-Attempt"]) for t in trailers[:2]] == [
        ("artefacts", "1"),
        ("T1.P1", "2"),
    ]


async def test_a_rerun_asked_for_by_a_killed_worker_is_waited_for_not_asked_again(
    fakegithub: FakeGitHub, tmp_path: Path
) -> None:
    # The worker dies right after asking GitHub Actions to re-run the failed jobs, before the
    # answer and before the re-run shows a check run. Its successor carries the RerunCI effect
    # out again and finds the suite queued: a re-run under way, so it asks nothing (Actions
    # would answer 403 "already running") and waits for the result (a flake), not a red one.
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'autopack.db'}"
    env = await prepare(fakegithub, tmp_path, database_url)
    rerun_shows = asyncio.Event()
    script = CIScript({"tests": FLAKY, "lint": PASS}, rerun_gate=rerun_shows)
    fakegithub.repo(REPO).ci = script.through("actions")
    server = Server(env, tmp_path)
    await server.start()
    fakegithub.webhook_url = f"{server.url}/api/github/webhooks"
    engine = create_engine(database_url)
    store = RunStore(engine)
    rerun_path = f"{R}/actions/runs/[0-9]+/rerun-failed-jobs$"
    try:
        issue = await fakegithub.open_issue(REPO, "One", "- [ ] Add it\n", user="alice")
        hold = fakegithub.faults.hold_next("POST", rerun_path)
        await fakegithub.label_issue(REPO, issue, "autopack:run", sender="alice")
        async with asyncio.timeout(120):
            await hold.reached.wait()
        await server.kill()
        hold.release.set()  # GitHub re-runs the jobs; the answer goes to a dead worker
        suite_reads = len(fakegithub.calls("GET", f"/repos/{REPO}/check-suites/"))
        await server.start()
        async with asyncio.timeout(120):  # the successor looked at the suite
            while len(fakegithub.calls("GET", f"/repos/{REPO}/check-suites/")) == suite_reads:  # noqa: ASYNC110 - across processes
                await asyncio.sleep(0.05)
        rerun_shows.set()
        run = await ended(store)
        await fakegithub.idle()
        verdicts: list[CIFinished] = []
        for entry in await store.events(run.id):
            if entry.kind is EventKind.EVENT and entry.name == "CIFinished":
                verdict = event_from_json(json.loads(entry.payload))
                assert isinstance(verdict, CIFinished)
                verdicts.append(verdict)
    finally:
        fakegithub.webhook_url = None
        await server.stop()
        await engine.dispose()
    state = Envelope.loads(run.state).state
    assert run.status == RunStatus.DONE_SUCCESS.value, state.terminal_reason
    assert [(v.rerun, v.result) for v in verdicts] == [
        (0, CIResult.RED),
        (1, CIResult.GREEN),
    ]
    assert "ci:flaky:tests" in dict(state.phases[0].issues)
    assert _rerun_answers(fakegithub) == [201]  # asked once, whoever carried the effect out
    phase_sha = verdicts[0].sha
    (phase_run,) = [
        r for r in fakegithub.repo(REPO).workflow_runs.values() if r.head_sha == phase_sha
    ]
    assert phase_run.run_attempt == 2  # one re-run, though it was asked for again


def _rerun_answers(sim: FakeGitHub) -> list[int]:
    return [call.status for call in sim.calls("POST", f"{R}/actions/runs/")]


async def ended(store: RunStore) -> RunRecord:
    """The repository's one run, once it is terminal (bounded wait across processes)."""
    async with asyncio.timeout(120):
        while True:
            (run,) = await store.list_runs(repository=REPO)
            if run.terminal:
                return run
            await asyncio.sleep(0.05)
