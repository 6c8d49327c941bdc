"""A real RunContext for handler tests: the simulator's App, a run record, a settable clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from app.agents.pids import discover_process_limit
from app.agents.sandbox import SandboxHost
from app.config import Settings
from app.engine.context import RunContext, Services
from app.github.client import GitHubApp
from app.store.runs import RunRecord

REPO = "acme/widgets"


@dataclass
class Clock:
    """The runs' clock, moved by the test."""

    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now


def run_record(
    installation_id: int, repository: str = REPO, run_id: str = "acme-widgets-7-1"
) -> RunRecord:
    """A stored run as a claim brings it (the fields handlers read)."""
    moment = datetime(2026, 12, 1, tzinfo=UTC)
    return RunRecord(
        id=run_id,
        installation_id=installation_id,
        repository=repository,
        issue_number=7,
        run_number=1,
        branch="autopack/issue-7-run-1",
        status="CI_RUNNING",
        state="{}",
        terminal=False,
        created_at=moment,
        updated_at=moment,
        finished_at=None,
        lease_owner=None,
        lease_until=None,
        wake_at=None,
        version=1,
    )


def run_context(
    settings: Settings,
    session: aiohttp.ClientSession,
    installation_id: int,
    clock: Clock,
    *,
    app: GitHubApp | None = None,
) -> RunContext:
    """The context of one claim of a run, against the simulator `settings` point at."""
    assert settings.app_id is not None
    assert settings.private_key is not None
    github = app or GitHubApp(
        session, settings.github_api_url, settings.app_id, settings.private_key.get_secret_value()
    )
    sandbox = SandboxHost.from_settings(settings, discover_process_limit())
    services = Services(settings, github, session, sandbox, clock=clock)
    return RunContext(services, run_record(installation_id))
