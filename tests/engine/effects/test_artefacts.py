"""artefacts: WriteArtefacts keeps the run's artefacts on the server and, at the end, commits them
on the integration branch: once, and never over someone else's commit."""

from __future__ import annotations

import json

from app.domain.effects import WriteArtefacts
from app.domain.events import ArtefactsWritten, BuilderFinished, BuilderOutcome, StrategyReady
from app.github.commits import parse_trailers
from tests.engine.effects.conftest import BRANCH, REPO, RUN_ID, EffectWorld
from tests.engine.recorded import writes

FOLDER = f".autonomous_runs/{RUN_ID}"


async def test_the_first_artefacts_stay_on_the_server(world: EffectWorld) -> None:
    step = world.start().then(StrategyReady(world.strategy()))
    effect = step.effect(WriteArtefacts)
    assert not effect.final
    done = await world.carry_out(step, WriteArtefacts)
    assert (done.event, done.calls) == (ArtefactsWritten(None), [])
    folder = world.ctx.settings.data_dir / "runs" / RUN_ID
    assert sorted(path.name for path in folder.iterdir()) == [
        "RUN_SUMMARY.md",
        "run_issue_index.json",
        "strategy.json",
    ]
    assert json.loads((folder / "strategy.json").read_text())["run_id"] == RUN_ID


async def test_the_final_artefacts_are_committed_once_on_the_branch(world: EffectWorld) -> None:
    step = await world.landed(await world.branched(world.strategy()))
    assert step.effect(WriteArtefacts).final
    head = step.env.state.head_sha
    done = await world.carry_out(step, WriteArtefacts)
    assert [call.line for call in writes(done.calls)] == [
        ("POST", f"/repos/{REPO}/git/trees"),
        ("POST", f"/repos/{REPO}/git/commits"),
        ("PATCH", f"/repos/{REPO}/git/refs/heads/{BRANCH}"),
    ]
    tree, commit, _ = (call.body for call in writes(done.calls))
    assert {item["path"] for item in tree["tree"]} == {
        f"{FOLDER}/RUN_SUMMARY.md",
        f"{FOLDER}/run_issue_index.json",
        f"{FOLDER}/strategy.json",
    }
    assert tree["base_tree"] == step.env.memo.tip.head_tree
    assert commit["parents"] == [head]
    assert parse_trailers(commit["message"])["Autopack-Phase"] == "artefacts"
    sha = world.sim.repo(REPO).ref(f"heads/{BRANCH}")
    assert done.event == ArtefactsWritten(sha)
    assert done.env.memo.tip.final_head == sha
    # Carried out again after a crash: the commit is found, no second one is made.
    again = await world.carry_out(step, WriteArtefacts)
    assert again.event == done.event
    assert again.env.memo.tip == done.env.memo.tip
    assert writes(again.calls) == []
    assert world.sim.repo(REPO).ref(f"heads/{BRANCH}") == sha


async def test_a_branch_someone_else_moved_keeps_their_commit(world: EffectWorld) -> None:
    step = await world.landed(await world.branched(world.strategy()))
    theirs = await world.sim.push(REPO, BRANCH, {"theirs.txt": "a person's commit\n"})
    done = await world.carry_out(step, WriteArtefacts)
    assert done.event == ArtefactsWritten(None)
    assert world.sim.repo(REPO).ref(f"heads/{BRANCH}") == theirs
    assert (world.ctx.settings.data_dir / "runs" / RUN_ID / "RUN_SUMMARY.md").is_file()


async def test_a_failed_run_also_keeps_its_incident_pack(world: EffectWorld) -> None:
    strategy = world.strategy(max_builder_attempts=1, auditor_backend=None)
    step = await world.branched(strategy)
    failed = step.then(BuilderFinished("p1", 1, BuilderOutcome.FAILED, summary="gave up"))
    done = await world.carry_out(failed, WriteArtefacts)
    incident = world.ctx.settings.data_dir / "runs" / RUN_ID / "INCIDENT.md"
    assert incident.is_file()
    assert isinstance(done.event, ArtefactsWritten)
    committed = world.sim.repo(REPO).files(BRANCH)
    assert f"{FOLDER}/INCIDENT.md" in committed
