"""Whole runs end to end: label an issue in the simulator, Autopack drives the run to its end."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.github.commits import parse_trailers
from tests.engine.harness import FILES, REPO, autopack
from tests.fakegithub.scenario import FakeGitHub

PLAN = """Make widgets better.

## Tier 1: groundwork
- [ ] Add the settings module
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low mode=tweak_light}
"""


async def test_happy_path_two_tiers_three_phases(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "data") as h:
        issue = await h.start_run(PLAN)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    repo = fakegithub.repo(REPO)
    branch = f"heads/{run.branch}"
    files = repo.files(branch)
    assert files["work/T1_P1.txt"].startswith(b"Add the settings module")
    assert files["work/T2_P1.txt"].startswith(b"Describe it in the README")
    assert f".autonomous_runs/{run.id}/RUN_SUMMARY.md" in files
    assert f".autonomous_runs/{run.id}/strategy.json" in files
    # Exactly one commit per phase attempt (plus the artefacts), and main never written.
    phases = [parse_trailers(c.message).get("Autopack-Phase") for c in repo.commits(branch)]
    assert phases[:4] == ["artefacts", "T2.P1", "T1.P2", "T1.P1"]
    assert repo.files("heads/main") == {
        **{k: v.encode() for k, v in FILES.items()},
        ".github/autopack.yml": repo.files("heads/main")[".github/autopack.yml"],
    }
    assert all(r.path != f"/repos/{REPO}/git/refs/heads/main" for r in fakegithub.request_log)
    # Snapshots of green phases.
    for phase in ("T1.P1", "T1.P2", "T2.P1"):
        assert repo.ref(f"tags/autopack/{run.id}/{phase}") is not None
    # What the maintainer sees.
    ours = [c for c in repo.check_runs if c.name == "Autopack"]
    assert ours[-1].conclusion == "success"
    assert ours[-1].head_sha == repo.ref(branch)
    (pull,) = repo.pulls
    assert pull.pull is not None
    assert not pull.pull.draft
    assert pull.pull.head_ref == run.branch
    assert f"Refs #{issue}" in (pull.body or "")
    comments = repo.comments(issue)
    assert len([c for c in comments if f"autopack:run:{run.id}" in c.body]) == 1
    labels = {label.name for label in repo.issues[issue].labels}
    assert "autopack:done" in labels
    assert "autopack:running" not in labels
