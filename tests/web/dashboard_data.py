"""Real runs for the dashboard tests: a green run and two failed ones, recorded into SQLite.

Recording drives a whole Autopack against the GitHub simulator (the engine harness), once per test
module; each test then opens its own copy of the database file, so tests cannot disturb each other.
"""

from __future__ import annotations

import asyncio
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.store import migrate
from app.store.db import create_engine
from tests.engine.harness import autopack, ruleset
from tests.fakegithub.ci import CIScript
from tests.fakegithub.scenario import FakeGitHub

TOKEN = "dashboard-test-token"
HOSTILE_TITLE = '<script>alert("title")</script> & <img src=x onerror=alert(1)>'
HOSTILE_PHASE = "Add <b>bold</b> & <script>alert(2)</script>"
# CI fails the first two heads (the new branch, then the first commit), so the first phase
# goes red once, then green.
GREEN_PLAN = f"Make it.\n\n- [ ] Add the settings module [issue]\n- [ ] {HOSTILE_PHASE}\n"
FAILED_PLAN = "Try.\n\n- [ ] Do the impossible [fail]\n"
# Each builder attempt spends 1000 tokens: the first two runs stay under the run's cap of 3500,
# the third (five phases) runs out of budget before its last phase.
SPEND_PLAN = "Spend.\n\n" + "".join(f"- [ ] Step {n}\n" for n in range(1, 6))
RULES = ruleset(
    "auditor: reviewer\nbudgets: {run: {token_cap: 3500}, phase: {max_builder_attempts: 2}}\n"
)


@dataclass(frozen=True)
class Recorded:
    """Where the recorded database is, and the ids of its runs."""

    database: Path
    green: str
    failed: str
    exhausted: str
    repository: str

    def copy_url(self, directory: Path) -> str:
        """A SQLAlchemy URL of a fresh copy of the recorded database in `directory`."""
        target = directory / "dashboard.db"
        shutil.copyfile(self.database, target)
        return f"sqlite+aiosqlite:///{target}"


def settings(token: str | None = TOKEN) -> Settings:
    """Settings for a dashboard under test: just the API token."""
    return Settings(api_token=token)  # type: ignore[arg-type]


async def _record(directory: Path) -> Recorded:
    database = directory / "recorded.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await migrate.upgrade(engine)
    sim = FakeGitHub()
    await sim.start()
    try:
        async with autopack(
            sim, engine, directory / "data", ci=CIScript.fail_times(2), ruleset_text=RULES
        ) as h:
            issue = await h.start_run(GREEN_PLAN, title=HOSTILE_TITLE)
            green, green_state = await h.finished(issue)
            issue = await h.start_run(FAILED_PLAN, title="Do the impossible")
            failed, _ = await h.finished(issue)
            issue = await h.start_run(SPEND_PLAN, title="Spend it all")
            exhausted, _ = await h.finished(issue)
    finally:
        await sim.stop()
        await engine.dispose()
    assert green.status == "DONE_SUCCESS", green_state.state.terminal_reason
    assert failed.status == "DONE_FAILED_REQUIRES_HUMAN_REVIEW", (failed, exhausted)
    assert exhausted.status == "DONE_FAILED_BUDGET_EXHAUSTED", exhausted.status
    assert not sim.unknown_routes, sim.unknown_routes
    return Recorded(database, green.id, failed.id, exhausted.id, green.repository)


def record(directory: Path) -> Recorded:
    """Record the runs, from synchronous fixture code.

    The recording runs its own event loop in a thread of its own, so it leaves the main thread's
    event loop (pytest-asyncio's) alone.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _record(directory)).result(timeout=180)
