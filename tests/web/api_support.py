"""Shared by the API tests: an authenticated client, runs made for real, schema validators."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator, FormatChecker
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.domain.run_state import RunState, RunStatus
from app.engine.envelope import Envelope
from app.engine.memo import Memo, RunFacts
from app.store.runs import NewRun, RunRecord, RunStore
from app.web.app import create_app
from app.web.openapi import document
from tests.engine.harness import autopack, ruleset
from tests.fakegithub.scenario import FakeGitHub

TOKEN = "s3cret-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# One phase of 1000 tokens fits a 1500-token cap; the second phase of PLAN does not.
ONE = "Do one thing.\n\n- [ ] Add the settings module\n"
PLAN = """Make widgets better.

## Tier 1: groundwork
- [ ] Add the settings module
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low mode=tweak_light}
"""


async def api_client(
    aiohttp_client: Any, engine: AsyncEngine, token: str | None = TOKEN
) -> TestClient[Any, Any]:
    """A test client of the whole app (no worker) with `token` as AUTOPACK_API_TOKEN."""
    settings = Settings(api_token=SecretStr(token) if token is not None else None)
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings, engine=engine, with_worker=False)
    )
    return client


async def real_runs(
    sim: FakeGitHub, engine: AsyncEngine, data_dir: Path
) -> tuple[RunRecord, RunRecord]:
    """Two whole runs through the simulator: one DONE_SUCCESS, one out of tokens."""
    rules = ruleset("budgets: {run: {token_cap: 1500}}\n")
    env = {"TEST_BUILDER_TOKENS": "1000"}
    async with autopack(sim, engine, data_dir, ruleset_text=rules, builder_env=env) as h:
        good, _ = await h.finished(await h.start_run(ONE, title="One thing"))
        spent, _ = await h.finished(await h.start_run(PLAN, title="Too much"))
    assert good.status == RunStatus.DONE_SUCCESS.value
    assert spent.status == RunStatus.DONE_FAILED_BUDGET_EXHAUSTED.value
    return good, spent


async def make_run(
    store: RunStore,
    repository: str,
    issue: int,
    created: datetime,
    status: RunStatus = RunStatus.PHASE_EXECUTION,
) -> RunRecord:
    """A run stored the way run intake stores one, then moved to `status`."""
    run_id = f"{repository.replace('/', '-')}-{issue}-1"
    envelope = Envelope(
        state=RunState(run_id, status=status),
        memo=Memo(
            RunFacts(installation_id=1, repository=repository, issue_number=issue, issue_title="t")
        ),
    )
    record = await store.create_run(
        NewRun(
            id=run_id,
            installation_id=1,
            repository=repository,
            issue_number=issue,
            run_number=1,
            branch=f"autopack/issue-{issue}-run-1",
            status=RunStatus.PLAN_BOOTSTRAP.value,
            state=envelope.dumps(),
        ),
        now=created,
    )
    return await store.save(
        run_id,
        status.value,
        envelope.dumps(),
        terminal=status.is_terminal,
        expected_version=record.version,
        owner=None,
        now=created,
    )


def validator(component: str) -> Draft202012Validator:
    """A validator for one of the document's component schemas (formats checked)."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": document()["components"]}
    return Draft202012Validator(schema, format_checker=FormatChecker())
