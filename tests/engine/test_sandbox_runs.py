"""Whole runs through the simulator with the sandbox on (the default), off, and unable to start."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.domain.run_state import RunStatus
from tests.engine.harness import REPO, Harness, autopack
from tests.fakegithub.scenario import FakeGitHub

LOOK = "Look around.\n\n- [ ] Write what you see [look]\n"


async def look_around(h: Harness) -> str:
    """Run the [look] phase to success; what the builder wrote about its surroundings."""
    issue = await h.start_run(LOOK)
    run, env = await h.finished(issue)
    assert run.status == RunStatus.DONE_SUCCESS.value, env.state.terminal_reason
    return h.sim.repo(REPO).files(f"heads/{run.branch}")["work/T1_P1.txt"].decode()


async def test_a_sandboxed_builder_sees_only_its_work_tree(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    async with autopack(fakegithub, engine, tmp_path / "data") as h:
        written = await look_around(h)

    # Beside the work tree the host keeps the manifest and the base archive; inside, nothing.
    assert "parent: ['tree']" in written
    assert "pid 1: bwrap" in written


async def test_a_run_with_sandbox_none_works_and_is_warned_about(
    fakegithub: FakeGitHub,
    engine: AsyncEngine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="autopack")
    none = {"sandbox": "none"}
    async with autopack(fakegithub, engine, tmp_path / "data", builder_keys=none) as h:
        written = await look_around(h)

    assert "'manifest.json'" in written
    assert "pid 1: bwrap" not in written
    assert 'builders.default runs unsandboxed (sandbox = "none")' in caplog.text


async def test_a_sandbox_that_cannot_start_ends_the_run_as_an_environment_failure(
    fakegithub: FakeGitHub,
    engine: AsyncEngine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="autopack")
    missing = Path("/nonexistent/autopack-test/bwrap")  # nothing in it for markdown to escape
    sentence = (
        "the sandbox for builders.default could not start: bubblewrap (bwrap) is not "
        f"installed at {missing}"
    )
    async with autopack(fakegithub, engine, tmp_path / "data", bwrap_path=missing) as h:
        # Said at start, before any run needs the profile.
        assert f"builders.default will not be able to run: {sentence}" in caplog.text
        issue = await h.start_run(LOOK)
        run, env = await h.finished(issue)

    assert run.status == RunStatus.DONE_FAILED_ENVIRONMENT.value
    assert env.state.terminal_reason == f"The environment failed: {sentence}."
    check = [c for c in fakegithub.repo(REPO).check_runs if c.name == "Autopack"][-1]
    assert check.conclusion == "failure"
    shown = f"{check.output.get('summary')}\n{check.output.get('text')}"
    assert sentence in shown
    assert "work/T1_P1.txt" not in fakegithub.repo(REPO).files(f"heads/{run.branch}")


async def test_a_planner_whose_sandbox_cannot_start_ends_the_run_before_any_phase(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    missing = Path("/nonexistent/autopack-test/bwrap")
    async with autopack(
        fakegithub, engine, tmp_path / "data", planner_env={}, bwrap_path=missing
    ) as h:
        issue = await h.start_run("Plan this for me, there is no checklist.")
        run, env = await h.finished(issue)

    assert run.status == RunStatus.DONE_FAILED_ENVIRONMENT.value
    assert env.state.terminal_reason == (
        "The environment failed: the sandbox for builders.planner could not start: "
        f"bubblewrap (bwrap) is not installed at {missing}."
    )
    assert env.state.phases == ()
