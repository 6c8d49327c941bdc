"""Deliveries missed while Autopack was down are redelivered once, and processed once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.redelivery import CatchUpTimes, catch_up, redeliver_failed
from app.github.client import GitHubApp
from app.store.inbox import Inbox
from app.web.app import create_app
from tests.fakegithub.scenario import FakeGitHub


async def test_failed_deliveries_are_redelivered_once(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    since = datetime.now(UTC) - timedelta(minutes=5)
    inst = fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets", installation=inst)
    # Autopack is down: nobody listens at the webhook URL.
    fakegithub.webhook_url = None
    number = await fakegithub.open_issue("acme/widgets", "Add X", "body", user="alice")
    await fakegithub.label_issue("acme/widgets", number, "autopack:run", sender="alice")
    await fakegithub.comment("acme/widgets", number, "/autopack plan", sender="alice")
    await fakegithub.idle()
    missed = {d.guid for d in fakegithub.deliveries if not d.delivered}
    assert len(missed) == 3

    settings = Settings(webhook_secret=fakegithub.app.webhook_secret)  # type: ignore[arg-type]
    server = TestServer(create_app(settings, engine=engine, with_worker=False), host="127.0.0.1")
    await server.start_server()
    try:
        fakegithub.webhook_url = str(server.make_url("/api/github/webhooks"))
        inbox = Inbox(engine)
        async with aiohttp.ClientSession() as session:
            app = GitHubApp(
                session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem
            )
            client = await app.app_client()
            report = await redeliver_failed(client, inbox, since, settle=timedelta(0))
            await fakegithub.idle()
            assert set(report.redelivered) == missed
            for record in fakegithub.deliveries:
                if record.guid in missed:
                    # The label and the command are stored; `issues.opened` cannot drive a
                    # run, so the endpoint answers it without storing it.
                    stored = record.payload.get("action") != "opened"
                    expected = "pending" if stored else None
                    assert await inbox.status_of(record.guid) == expected
            # A second pass finds every GUID delivered: nothing more is asked for.
            again = await redeliver_failed(client, inbox, since, settle=timedelta(0))
            assert again.redelivered == ()
        redeliveries = [d for d in fakegithub.deliveries if d.redelivery]
        assert sorted(d.guid for d in redeliveries) == sorted(missed)
        assert all(d.status_code == 202 for d in redeliveries)
    finally:
        await server.close()


async def test_old_and_unhandled_deliveries_are_left_alone(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    fakegithub.webhook_url = None
    await fakegithub.deliver("star", {"action": "created"})
    await fakegithub.idle()
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        client = await app.app_client()
        recent = await redeliver_failed(
            client, Inbox(engine), datetime.now(UTC) - timedelta(hours=1), settle=timedelta(0)
        )
        assert recent.redelivered == ()
        assert recent.skipped_unhandled == 1
        # With the default settling time a delivery that just failed may still be in flight.
        settling = await redeliver_failed(
            client, Inbox(engine), datetime.now(UTC) - timedelta(hours=1)
        )
        assert settling.examined == 0
        future = await redeliver_failed(
            client, Inbox(engine), datetime.now(UTC) + timedelta(hours=1)
        )
        assert future.examined == 0


async def test_deliveries_refused_for_their_body_are_not_redelivered(
    fakegithub: FakeGitHub, engine: AsyncEngine
) -> None:
    settings = Settings(webhook_secret=fakegithub.app.webhook_secret)  # type: ignore[arg-type]
    server = TestServer(create_app(settings, engine=engine, with_worker=False), host="127.0.0.1")
    await server.start_server()
    try:
        fakegithub.webhook_url = str(server.make_url("/api/github/webhooks"))
        # Signed by GitHub, but not of a shape Autopack reads: 400, and 400 again if resent.
        refused = await fakegithub.deliver("issues", {"action": "labeled", "label": "x"})
        assert refused.status_code == 400
        async with aiohttp.ClientSession() as session:
            app = GitHubApp(
                session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem
            )
            report = await redeliver_failed(
                await app.app_client(),
                Inbox(engine),
                datetime.now(UTC) - timedelta(hours=1),
                settle=timedelta(0),
            )
        assert report.redelivered == ()
        assert report.skipped_refused == 1
        assert not [d for d in fakegithub.deliveries if d.redelivery]
    finally:
        fakegithub.webhook_url = None
        await server.close()


async def _missed_deliveries(sim: FakeGitHub) -> set[str]:
    """A label and a command delivered while Autopack was down: their GUIDs."""
    inst = sim.install("acme")
    sim.create_repo("acme/widgets", installation=inst)
    sim.webhook_url = None
    number = await sim.open_issue("acme/widgets", "Add X", "body", user="alice")
    await sim.label_issue("acme/widgets", number, "autopack:run", sender="alice")
    await sim.idle()
    return {d.guid for d in sim.deliveries if not d.delivered and d.event == "issues"}


def _asked_for(sim: FakeGitHub) -> set[str]:
    return {d.guid for d in sim.deliveries if d.redelivery}


async def test_entries_of_an_unexpected_shape_are_skipped_with_a_log_line(
    fakegithub: FakeGitHub, sqlite_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    missed = await _missed_deliveries(fakegithub)

    def garble(entries: list[dict[str, Any]]) -> list[Any]:
        first, *rest = entries
        broken = {key: value for key, value in first.items() if key != "delivered_at"}
        return [broken, "not an object", {**first, "guid": 7}, None, *rest, first]

    fakegithub.faults.reshape_next(1, garble, "^/app/hook/deliveries$")
    caplog.set_level(logging.WARNING, logger="autopack.redelivery")
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        report = await redeliver_failed(
            await app.app_client(),
            Inbox(sqlite_engine),
            datetime.now(UTC) - timedelta(hours=1),
            settle=timedelta(0),
        )
    assert report.skipped_malformed == 4
    assert set(report.redelivered) == missed  # the well-formed entries still count
    await fakegithub.idle()
    assert _asked_for(fakegithub) == missed
    skipped = [r.getMessage() for r in caplog.records if "unexpected shape" in r.getMessage()]
    assert len(skipped) == 4
    assert any("delivered_at: Field required" in line for line in skipped)
    assert any("guid: Input should be a valid string" in line for line in skipped)


async def test_the_catch_up_outlives_an_answer_it_cannot_read(
    fakegithub: FakeGitHub, sqlite_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    missed = await _missed_deliveries(fakegithub)
    # Once, GitHub's delivery list comes back as `null`: the pass fails as a whole.
    fakegithub.faults.reshape_next(1, lambda _: None, "^/app/hook/deliveries$")
    caplog.set_level(logging.WARNING, logger="autopack.redelivery")
    times = CatchUpTimes(
        lookback=timedelta(hours=1),
        settle=timedelta(0),
        first_repeat=timedelta(seconds=0.05),
        interval=timedelta(seconds=0.05),
        overlap=timedelta(hours=1),
    )
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        task = asyncio.create_task(catch_up(app.app_client, Inbox(sqlite_engine), times))
        try:
            async with asyncio.timeout(20):
                while _asked_for(fakegithub) != missed:  # noqa: ASYNC110 - the task's own pace
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    listings = fakegithub.calls("GET", "/app/hook/deliveries")
    assert len(listings) >= 2  # the unreadable answer, then the pass that redelivered
    failed = [r for r in caplog.records if "catch-up pass failed" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None  # the traceback is in the log, not lost with the task
