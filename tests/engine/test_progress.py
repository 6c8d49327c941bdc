"""The progress tables (tiers, phases, attempts, issues) follow whole runs through the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from app.store import progress as outcomes
from app.store.progress import ProgressStore
from tests.engine.harness import autopack
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub

PLAN = """Make widgets better.

## Tier 1: groundwork
- [ ] Add the settings module
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low mode=tweak_light}
"""


async def test_a_green_run_has_one_green_attempt_per_phase(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        run, env = await h.finished(await h.start_run(PLAN))
    assert run.status == RunStatus.DONE_SUCCESS.value
    store = ProgressStore(engine)
    tiers = await store.tiers(run.id)
    assert [(t.tier_id, t.status, t.clean) for t in tiers] == [
        ("T1", "complete", True),
        ("T2", "complete", True),
    ]
    assert tiers[0].tokens == 2000
    assert tiers[0].ci_runs == 2
    phases = await store.phases(run.id)
    assert [(p.phase_id, p.status, p.builder_attempts) for p in phases] == [
        ("T1.P1", "green", 1),
        ("T1.P2", "green", 1),
        ("T2.P1", "green", 1),
    ]
    assert phases[2].task_category == "docs"
    assert phases[2].complexity == "low"
    assert [p.last_commit for p in phases] == [p.last_commit for p in env.state.phases]
    attempts = await store.attempts(run.id)
    assert [(a.phase_id, a.attempt, a.actor, a.outcome, a.ci_result) for a in attempts] == [
        ("T1.P1", 1, "builder", "green", "green"),
        ("T1.P2", 1, "builder", "green", "green"),
        ("T2.P1", 1, "builder", "green", "green"),
    ]
    for attempt, phase in zip(attempts, phases, strict=True):
        assert attempt.commit_sha == phase.last_commit
        assert attempt.tokens == 1000
        assert attempt.finished_at is not None
        assert started <= attempt.started_at <= attempt.finished_at
    assert attempts[0].finished_at <= attempts[1].started_at  # type: ignore[operator]
    assert await store.issues(run.id) == []
    spend = {(s.task_category, s.complexity): s for s in await store.spend_by_slice()}
    docs = spend[("docs", "low")]
    assert (docs.phases, docs.green, docs.tokens, docs.auditor_called) == (1, 1, 1000, 0)
    assert sum(s.phases for s in spend.values()) == 3
    assert await store.spend_by_slice(repository="someone/else") == []


async def test_a_red_attempt_then_a_green_one_with_the_builders_issue(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d", ci=CIScript.fail_times(2)) as h:
        run, _ = await h.finished(await h.start_run("- [ ] Add the settings module [issue]\n"))
    assert run.status == RunStatus.DONE_SUCCESS.value
    store = ProgressStore(engine)
    attempts = await store.attempts(run.id)
    assert [(a.attempt, a.outcome, a.ci_result) for a in attempts] == [
        (1, outcomes.CI_RED, "red"),
        (2, outcomes.GREEN, "green"),
    ]
    assert attempts[0].commit_sha
    assert attempts[0].commit_sha != attempts[1].commit_sha
    assert attempts[0].summary  # says what failed
    (issue,) = await store.issues(run.id)
    assert (issue.issue_key, issue.severity, issue.source) == (
        "builder:todo:T1_P1",
        "minor",
        "builder",
    )
    assert (issue.path, issue.line, issue.phase_id) == ("work/T1_P1.txt", 2, "T1.P1")
    assert issue.message == "a TODO is left in the file"


async def test_a_gate_violation_is_a_gate_failed_attempt_with_the_finding(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        run, _ = await h.finished(await h.start_run("- [ ] Add the key [secret]\n"))
    assert run.status == RunStatus.DONE_FAILED_POLICY_VIOLATION.value
    store = ProgressStore(engine)
    (attempt,) = await store.attempts(run.id)
    assert (attempt.outcome, attempt.commit_sha) == (outcomes.GATE_FAILED, None)
    issues = await store.issues(run.id)
    assert issues
    assert issues[0].severity == "major"
    assert issues[0].source == "gate"
    assert issues[0].path == "work/T1_P1.txt"
    assert "MIIEowIBAAKCAQEA" not in issues[0].message  # names the secret, never shows it
    (phase,) = await store.phases(run.id)
    assert phase.status == "failed"


async def test_cancel_closes_the_attempt_in_flight(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "d") as h:
        issue = await h.start_run("- [ ] Take a while [slow]\n")
        store = ProgressStore(engine)

        async def running() -> bool:
            run = await h.run_of(issue)
            return run is not None and any(
                a.outcome == outcomes.RUNNING for a in await store.attempts(run.id)
            )

        await h.until(running)
        await fakegithub.label_issue("acme/widgets", issue, "autopack:cancel", sender="alice")
        run, _ = await h.finished(issue)
    assert run.status == RunStatus.DONE_FAILED_CANCELLED.value
    (attempt,) = await store.attempts(run.id)
    assert attempt.outcome == outcomes.CANCELLED
    assert attempt.finished_at is not None
