"""Deliveries missed while Autopack was down are redelivered once, and processed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.redelivery import redeliver_failed
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
