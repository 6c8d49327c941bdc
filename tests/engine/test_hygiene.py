"""Whole runs: every attempt starts from the branch head, so a failed change never ships, and the
auditor and the incident pack get the evidence of what failed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.github.commits import parse_trailers
from app.store import migrate
from app.store.db import create_engine
from app.store.progress import ProgressStore
from tests.engine.harness import FILES, REPO, autopack, ruleset
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub


def _phase_commits(sim: FakeGitHub, branch: str) -> dict[str, tuple[str, str]]:
    """Phase id -> (commit sha, parent sha) of each phase commit on the branch."""
    repo = sim.repo(REPO)
    found = {}
    for commit in repo.commits(f"heads/{branch}"):
        phase = parse_trailers(commit.message).get("Autopack-Phase")
        if phase and phase != "artefacts":
            found[phase] = (commit.sha, commit.parents[0])
    return found


def _changed(sim: FakeGitHub, commit: str, parent: str) -> dict[str, bytes | None]:
    """What `commit` changed against `parent`: path -> new content (None: deleted)."""
    repo = sim.repo(REPO)
    new, old = repo.files(commit), repo.files(parent)
    return {
        path: new.get(path)
        for path in sorted(new.keys() | old.keys())
        if new.get(path) != old.get(path)
    }


async def test_a_failed_phase_leaves_nothing_in_the_next_phase_commit(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    plan = (
        "## Tier 1: broken\n- [ ] Break things [dirty-fail]\n"
        "## Tier 2: docs\n- [ ] Describe it in the README\n"
    )
    rules = ruleset("budgets: {phase: {max_builder_attempts: 2}}\n")
    async with autopack(fakegithub, engine, tmp_path / "d", ruleset_text=rules) as h:
        issue = await h.start_run(plan)
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    assert [p.builder_attempts for p in env.state.phases] == [2, 1]
    commits = _phase_commits(fakegithub, run.branch)
    assert list(commits) == ["T2.P1"]  # the failed phase pushed nothing
    sha, parent = commits["T2.P1"]
    changed = _changed(fakegithub, sha, parent)
    assert list(changed) == ["work/T2_P1.txt"]
    files = fakegithub.repo(REPO).files(f"heads/{run.branch}")
    assert not any(path.startswith("leak/") for path in files)
    assert files["README.md"] == FILES["README.md"].encode()


async def test_a_retry_after_a_dirty_failure_starts_from_the_head(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Try twice [dirty-once]\n")
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    assert env.state.phases[0].builder_attempts == 2
    sha, parent = _phase_commits(fakegithub, run.branch)["T1.P1"]
    changed = _changed(fakegithub, sha, parent)
    assert list(changed) == ["work/T1_P1.txt"]
    assert b"attempt 2" in (changed["work/T1_P1.txt"] or b"")


async def test_an_escalation_shows_the_auditor_the_failed_diff_findings_and_log(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    # Each builder attempt writes a binary file the gate refuses; after two, the auditor is
    # called in on a clean tree, with the last attempt's change as evidence.
    rules = ruleset("auditor: reviewer\nbudgets: {phase: {max_builder_attempts: 2}}\n")
    async with autopack(
        fakegithub, engine, tmp_path / "d", ruleset_text=rules, auditor_env={}
    ) as h:
        issue = await h.start_run("- [ ] Ship a blob [binary]\n")
        run, _env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    attempts = await ProgressStore(engine).attempts(run.id)
    assert [(a.actor, a.outcome) for a in attempts] == [
        ("builder", "gate_failed"),
        ("builder", "gate_failed"),
        ("auditor", "builder_failed"),
    ]
    seen = json.loads(attempts[-1].summary)
    assert seen["diff_files"] == ["work/T1_P1.bin", "work/T1_P1.txt"]
    assert seen["gate"]
    assert all(key.startswith("gate:") for key in seen["gate"])
    assert seen["builder_log"] is True
    # The incident pack holds the same evidence for people.
    incident = fakegithub.repo(REPO).files(f"heads/{run.branch}")[
        f".autonomous_runs/{run.id}/INCIDENT.md"
    ]
    text = incident.decode()
    assert "## Phase T1.P1" in text
    assert "### Gate findings" in text
    assert "building T1_P1, attempt 2" in text  # the builder's log tail
    assert "+++ b/work/T1_P1.txt" in text  # the last attempt's diff
    assert "### The last feedback the builder got" in text


_OUTCOMES = {
    "ok": "",  # lands at once
    "dirty-once": " [dirty-once]",  # fails after writing, then lands
    "dirty-fail": " [dirty-fail]",  # fails after writing, every attempt: the phase fails
    "refused": " [binary]",  # the gate refuses every attempt: the phase fails
}


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.sampled_from(sorted(_OUTCOMES)), min_size=1, max_size=3))
async def test_each_pushed_commit_is_its_parent_plus_exactly_its_phase(
    tmp_path_factory: pytest.TempPathFactory, outcomes: list[str]
) -> None:
    # One tier per phase (multi_tier): a failed phase does not stop the ones after it.
    plan = "".join(
        f"## Tier {i}\n- [ ] Phase number {i}{_OUTCOMES[o]}\n" for i, o in enumerate(outcomes, 1)
    )
    for outcome in set(outcomes):
        event(f"outcome {outcome}")
    root = tmp_path_factory.mktemp("property")
    sim = FakeGitHub()
    await sim.start()
    engine = create_engine(f"sqlite+aiosqlite:///{root / 'autopack.db'}")
    try:
        await migrate.upgrade(engine)
        rules = ruleset("budgets: {phase: {max_builder_attempts: 2}}\n")
        async with autopack(sim, engine, root / "data", ruleset_text=rules) as h:
            issue = await h.start_run(plan)
            run, _ = await h.finished(issue)
        commits = _phase_commits(sim, run.branch)
    finally:
        await engine.dispose()
        await sim.stop()
    landing = {f"T{i}.P1" for i, o in enumerate(outcomes, 1) if o in ("ok", "dirty-once")}
    assert set(commits) == landing
    for phase, (sha, parent) in commits.items():
        name = phase.replace(".", "_")
        assert list(_changed(sim, sha, parent)) == [f"work/{name}.txt"], phase


async def test_a_ci_escalation_shows_the_auditor_what_ci_said_and_the_pushed_diff(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    rules = ruleset("auditor: reviewer\nbudgets: {phase: {max_builder_attempts: 1}}\n")
    async with autopack(
        fakegithub,
        engine,
        tmp_path / "d",
        ci=CIScript.always_fail(),
        ruleset_text=rules,
        auditor_env={},
    ) as h:
        issue = await h.start_run("- [ ] Add the settings module\n")
        run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW.value
    attempts = await ProgressStore(engine).attempts(run.id)
    assert [(a.actor, a.outcome) for a in attempts] == [
        ("builder", "ci_red"),
        ("auditor", "builder_failed"),
    ]
    seen = json.loads(attempts[-1].summary)
    assert seen["diff_files"] == ["work/T1_P1.txt"]  # the change CI judged, though pushed
    assert "(check run: failure)" in seen["ci_output"]
    # The builder's feedback carries what CI said, not only that it was red.
    feedback = env.state.phases[0].feedback
    assert any("tests" in line and "\n" in line for line in feedback)
    incident = fakegithub.repo(REPO).files(f"heads/{run.branch}")[
        f".autonomous_runs/{run.id}/INCIDENT.md"
    ]
    assert "### What CI said" in incident.decode()
