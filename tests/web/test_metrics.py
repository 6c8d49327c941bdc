"""GET /metrics over real HTTP: signed webhooks counted, queue and run gauges read at scrape."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.db import create_engine
from app.store.jobs import NewJob
from app.store.queue import RunQueue
from app.store.runs import NewRun, RunStore
from app.web.app import create_app
from tests.conftest import load_payload
from tests.web.helpers import SECRET, post_webhook

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def client(aiohttp_client: MakeClient, engine: AsyncEngine) -> Client:
    settings = Settings(webhook_secret=SECRET)  # type: ignore[arg-type]
    return await aiohttp_client(create_app(settings, engine=engine, with_worker=False))


async def scrape(client: Client) -> tuple[str, Samples]:
    """GET /metrics without credentials; the text and its samples parsed by prometheus_client."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = await response.text()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def delivered(before: Samples, after: Samples, event: str, outcome: str) -> float:
    name = "autopack_webhook_deliveries_total"
    labels = {"event": event, "outcome": outcome}
    return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)


async def test_deliveries_are_counted_by_event_and_outcome(client: Client) -> None:
    _, before = await scrape(client)
    bug = load_payload("issues.labeled")
    labeled = {**bug, "label": {**bug["label"], "name": "autopack:run"}}
    assert (await post_webhook(client, "issues", labeled, delivery="m1")).status == 202
    assert (await post_webhook(client, "issues", labeled, delivery="m2")).status == 202
    assert (await post_webhook(client, "issues", labeled, delivery="m1")).status == 200
    assert (await post_webhook(client, "issues", bug)).status == 202  # cannot drive a run
    created = load_payload("issue_comment.created")
    comment = {**created, "comment": {**created["comment"], "body": "/autopack plan"}}
    assert (await post_webhook(client, "issue_comment", comment, delivery="m3")).status == 202
    assert (await post_webhook(client, "issues", labeled, secret="wrong")).status == 401
    assert (await post_webhook(client, "star", {"action": "created"})).status == 202
    assert (await post_webhook(client, "ping", load_payload("ping"))).status == 200
    assert (await post_webhook(client, "issues", b"{not json")).status == 400
    text, after = await scrape(client)

    assert delivered(before, after, "issues", "accepted") == 2
    assert delivered(before, after, "issues", "duplicate") == 1
    assert delivered(before, after, "issue_comment", "accepted") == 1
    assert delivered(before, after, "unverified", "bad_signature") == 1
    assert delivered(before, after, "other", "ignored") == 1
    assert delivered(before, after, "issues", "ignored") == 1
    assert delivered(before, after, "ping", "ignored") == 1
    assert delivered(before, after, "issues", "bad_json") == 1
    assert "star" not in {labels for (_, pairs) in after for labels in dict(pairs).values()}
    # Three deliveries stored and, with no worker here, all still waiting in the inbox.
    assert value(after, "autopack_queue_depth", queue="inbox") == 3
    age = value(after, "autopack_queue_oldest_age_seconds", queue="inbox")
    assert age is not None
    assert 0 <= age < 60
    assert value(after, "autopack_metrics_database_up") == 1
    assert SECRET not in text


def new_run(number: int, status: str) -> NewRun:
    return NewRun(
        id=f"acme-widgets-{number}-1",
        installation_id=1,
        repository="acme/widgets",
        issue_number=number,
        run_number=1,
        branch=f"autopack/issue-{number}-run-1",
        status=status,
        state=json.dumps({}),
    )


async def test_queue_and_active_runs_are_read_at_scrape_time(
    client: Client, engine: AsyncEngine
) -> None:
    store, queue = RunStore(engine), RunQueue(engine)
    now = datetime.now(UTC)
    executing = await store.create_run(new_run(1, "PHASE_EXECUTION"))
    await store.create_run(new_run(2, "CI_RUNNING"))
    finished = await store.create_run(new_run(3, "CI_RUNNING"))
    await store.save(finished.id, "DONE_SUCCESS", "{}", True, finished.version, None)
    await queue.enqueue(executing.id, NewJob("{}"), now=now - timedelta(seconds=90))
    await queue.enqueue(executing.id, NewJob("{}"), now=now - timedelta(seconds=30))
    await queue.enqueue(executing.id, NewJob("{}"), available_at=now + timedelta(hours=1), now=now)

    _, samples = await scrape(client)
    # Two jobs are due; the one waiting for its timer is not queued work yet.
    assert value(samples, "autopack_queue_depth", queue="jobs") == 2
    age = value(samples, "autopack_queue_oldest_age_seconds", queue="jobs")
    assert age is not None
    assert 90 <= age < 150
    assert value(samples, "autopack_queue_depth", queue="inbox") == 0
    assert value(samples, "autopack_queue_oldest_age_seconds", queue="inbox") == 0
    assert value(samples, "autopack_runs_active", status="PHASE_EXECUTION") == 1
    assert value(samples, "autopack_runs_active", status="CI_RUNNING") == 1  # not the finished
    assert value(samples, "autopack_runs_active", status="GATE") == 0
    assert value(samples, "autopack_runs_active", status="DONE_SUCCESS") is None


async def test_an_unreachable_database_still_serves_the_counters(
    aiohttp_client: MakeClient, tmp_path: Path
) -> None:
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'autopack.db'}")
    settings = Settings(webhook_secret=SECRET)  # type: ignore[arg-type]
    client = await aiohttp_client(create_app(settings, engine=broken, with_worker=False))
    try:
        _, samples = await scrape(client)
    finally:
        await broken.dispose()
    assert value(samples, "autopack_metrics_database_up") == 0
    assert not any(name.startswith("autopack_queue_") for name, _ in samples)
    assert not any(name == "autopack_runs_active" for name, _ in samples)
    assert any(name == "autopack_process_cpu_seconds_total" for name, _ in samples)
