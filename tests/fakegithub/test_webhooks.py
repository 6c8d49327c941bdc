"""Priority 4: signed deliveries, delivery records, the deliveries API and redelivery."""

from __future__ import annotations

import hashlib
import hmac
import re

import aiohttp
import pytest
from gidgethub import ValidationFailure, sansio
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_jwt

from tests.fakegithub.receiver import Receiver
from tests.fakegithub.scenario import FakeGitHub


async def test_signature_and_headers(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    fakegithub.webhook_url = webhook_receiver.url
    await fakegithub.open_issue("acme/widgets", "T", "B")
    got = webhook_receiver.received[0]
    secret = fakegithub.app.webhook_secret
    expected = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Hub-Signature-256"] == f"sha256={expected}"
    sha1 = hmac.new(secret.encode(), got.body, hashlib.sha1).hexdigest()
    assert got.headers["X-Hub-Signature"] == f"sha1={sha1}"
    assert got.headers["X-GitHub-Event"] == "issues"
    assert re.fullmatch(r"[0-9a-f-]{36}", got.headers["X-GitHub-Delivery"])
    assert got.headers["X-GitHub-Hook-Installation-Target-Type"] == "integration"
    assert got.headers["X-GitHub-Hook-Installation-Target-ID"] == str(fakegithub.app.id)
    assert got.headers["User-Agent"].startswith("GitHub-Hookshot/")
    assert got.headers["Content-Type"] == "application/json"
    # gidgethub's own verifier accepts it, and refuses it under another secret.
    event = sansio.Event.from_http(got.headers, got.body, secret=secret)
    assert (event.event, event.data["action"]) == ("issues", "opened")
    with pytest.raises(ValidationFailure):
        sansio.Event.from_http(got.headers, got.body, secret="wrong")


async def test_failed_deliveries_are_recorded(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    await fakegithub.open_issue("acme/widgets", "no url yet", "")
    fakegithub.webhook_url = webhook_receiver.url
    webhook_receiver.status = 500
    await fakegithub.open_issue("acme/widgets", "server error", "")
    fakegithub.webhook_url = "http://127.0.0.1:9/nothing-listens"
    await fakegithub.open_issue("acme/widgets", "refused", "")
    first, second, third = fakegithub.deliveries
    assert (first.delivered, first.error) == (False, "no webhook URL configured")
    assert (second.delivered, second.status_code) == (False, 500)
    assert third.delivered is False
    assert third.status_code is None
    assert third.error is not None


async def test_deliveries_api_and_redelivery(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    fakegithub.install("acme")
    repo = fakegithub.create_repo("acme/widgets")
    fakegithub.webhook_url = webhook_receiver.url
    await fakegithub.open_issue("acme/widgets", "one", "")
    await fakegithub.open_issue("acme/widgets", "two", "")
    jwt = get_jwt(app_id=str(fakegithub.app.id), private_key=fakegithub.app.private_key_pem)
    async with aiohttp.ClientSession() as session:
        gh = GitHubAPI(session, "test", base_url=fakegithub.url)
        listed = [d async for d in gh.getiter("/app/hook/deliveries", jwt=jwt)]
        assert [d["event"] for d in listed] == ["issues", "issues"]
        newest = listed[0]
        assert newest["repository_id"] == repo.id
        assert (newest["status"], newest["status_code"], newest["redelivery"]) == ("OK", 202, False)
        detail = await gh.getitem(f"/app/hook/deliveries/{newest['id']}", jwt=jwt)
        assert detail["request"]["payload"]["issue"]["title"] == "two"
        await gh.post(f"/app/hook/deliveries/{newest['id']}/attempts", data=b"", jwt=jwt)
        await fakegithub.idle()
        relisted = [d async for d in gh.getiter("/app/hook/deliveries", jwt=jwt)]
    assert relisted[0]["guid"] == newest["guid"]
    assert relisted[0]["redelivery"] is True
    guids = [r.headers["X-GitHub-Delivery"] for r in webhook_receiver.received]
    assert guids[-1] == guids[-2] == newest["guid"]
    assert len(set(guids)) == 2
    record = await fakegithub.redeliver(newest["guid"])
    assert (record.guid, record.redelivery, record.delivered) == (newest["guid"], True, True)


async def test_low_level_deliver(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    fakegithub.webhook_url = webhook_receiver.url
    record = await fakegithub.deliver("ping", {"zen": "Keep it logically awesome."})
    assert record.delivered
    assert webhook_receiver.received[0].payload == {"zen": "Keep it logically awesome."}


async def test_install_app_delivers_installation_created(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    fakegithub.webhook_url = webhook_receiver.url
    fakegithub.create_repo("acme/widgets")
    inst = await fakegithub.install_app("acme", ["widgets"])
    payload = webhook_receiver.received[0].payload
    assert webhook_receiver.events() == [("installation", "created")]
    assert payload["installation"]["id"] == inst.id
    assert [r["full_name"] for r in payload["repositories"]] == ["acme/widgets"]


async def test_events_outside_the_installation_are_not_delivered(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> None:
    fakegithub.webhook_url = webhook_receiver.url
    fakegithub.install("acme", ["widgets"])
    fakegithub.create_repo("acme/widgets")
    fakegithub.create_repo("acme/private-stuff")
    await fakegithub.open_issue("acme/private-stuff", "nope", "")
    await fakegithub.open_issue("acme/widgets", "yes", "")
    assert [r.payload["issue"]["title"] for r in webhook_receiver.received] == ["yes"]
