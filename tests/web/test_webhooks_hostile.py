"""Hostile deliveries cost a 4xx and store nothing: encodings, slow and huge bodies, odd headers,
deep JSON and signed payloads of the wrong shape. Memory stays bounded under a flood."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.inbox import Inbox
from app.web.app import create_app
from app.web.bodies import BodyLimits
from app.web.keys import BODY_BUDGET
from app.web.signature import sign
from tests.conftest import load_payload
from tests.web.helpers import SECRET, post_webhook

Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
MIB = 1024 * 1024


async def _client(
    aiohttp_client: MakeClient, engine: AsyncEngine, limits: BodyLimits | None = None
) -> Client:
    settings = Settings(webhook_secret=SECRET)  # type: ignore[arg-type]
    app = create_app(settings, engine=engine, with_worker=False, body_limits=limits)
    return await aiohttp_client(app)


@pytest.fixture
async def client(aiohttp_client: MakeClient, engine: AsyncEngine) -> Client:
    return await _client(aiohttp_client, engine)


def _headers(body: bytes, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "hostile-1",
        "X-Hub-Signature-256": sign(body, SECRET),
        **extra,
    }


def _run_labeled() -> bytes:
    payload = load_payload("issues.labeled")
    payload["label"]["name"] = "autopack:run"
    return json.dumps(payload).encode()


async def _stalled(first: bytes, never: asyncio.Event) -> AsyncIterator[bytes]:
    """A body that sends its first bytes and then nothing more (until `never` is set)."""
    yield first
    await never.wait()
    yield b"}"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity"])
async def test_any_content_encoding_is_415_before_the_body_is_read(
    client: Client, engine: AsyncEngine, encoding: str
) -> None:
    body = _run_labeled()
    never = asyncio.Event()
    response = await client.post(
        "/api/github/webhooks",
        data=_stalled(body[:-1], never),
        headers=_headers(body, **{"Content-Encoding": encoding}),
    )
    # Answered although the body never finished arriving: it was not read.
    assert response.status == 415
    assert (await response.json())["outcome"] == "refused"
    assert await Inbox(engine).counts() == {}


async def test_a_body_that_stops_arriving_is_408(
    aiohttp_client: MakeClient, engine: AsyncEngine
) -> None:
    client = await _client(aiohttp_client, engine, BodyLimits(read_seconds=0.5))
    body = _run_labeled()
    never = asyncio.Event()
    response = await client.post(
        "/api/github/webhooks", data=_stalled(body[:-1], never), headers=_headers(body)
    )
    assert response.status == 408
    assert "did not arrive within 0.5 seconds" in (await response.json())["message"]
    assert await Inbox(engine).counts() == {}
    assert client.app[BODY_BUDGET].in_use == 0


async def test_a_declared_length_over_the_limit_is_413_unread(
    client: Client, engine: AsyncEngine
) -> None:
    body = _run_labeled()
    never = asyncio.Event()
    headers = _headers(body, **{"Content-Length": str(26 * MIB)})
    response = await client.post(
        "/api/github/webhooks", data=_stalled(body[:-1], never), headers=headers
    )
    assert response.status == 413
    assert await Inbox(engine).counts() == {}


async def _raw_post(client: Client, signature: bytes, delivery: bytes) -> int:
    """Post a signed-looking delivery with header bytes no HTTP client library would send."""
    body = _run_labeled()
    request = (
        b"POST /api/github/webhooks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nX-GitHub-Event: issues\r\n"
        b"X-GitHub-Delivery: " + delivery + b"\r\nX-Hub-Signature-256: " + signature + b"\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"sha256=\xff\xfe" + b"0" * 62, id="not-utf8"),
        pytest.param("sha256=é".encode() + b"0" * 63, id="utf8-not-ascii"),
        pytest.param(b"sha256=" + b"\xc3" * 64, id="truncated-utf8"),
        pytest.param(b"\xff", id="no-prefix"),
    ],
)
async def test_a_signature_header_of_odd_bytes_is_401(
    client: Client, engine: AsyncEngine, value: bytes
) -> None:
    assert await _raw_post(client, value, b"odd-1") == 401
    assert await Inbox(engine).counts() == {}


@pytest.mark.parametrize(
    "delivery",
    ["with space", "nul\x00", "ü-umlaut", "x" * 65, "semi;colon"],
)
async def test_a_delivery_id_no_column_takes_is_400(
    client: Client, engine: AsyncEngine, delivery: str
) -> None:
    signature = sign(_run_labeled(), SECRET).encode()
    # A NUL is refused by the HTTP parser itself; the rest by the endpoint.
    assert await _raw_post(client, signature, delivery.encode()) == 400
    assert await Inbox(engine).counts() == {}


async def test_deeply_nested_json_is_400(client: Client, engine: AsyncEngine) -> None:
    depth = 100_000
    body = b'{"action": "labeled", "issue": ' + b"[" * depth + b"]" * depth + b"}"
    response = await post_webhook(client, "issues", body)
    assert response.status == 400
    assert "recursion limit" in (await response.json())["message"]
    assert await Inbox(engine).counts() == {}


def _shaped(name: str, **parts: Any) -> dict[str, Any]:
    data = load_payload(name)
    data.update(parts)
    return data


def _nested(name: str, part: str, **fields: Any) -> dict[str, Any]:
    data = load_payload(name)
    data[part] = {**data[part], **fields}
    return data


LABEL = {"name": "autopack:run"}
WRONG_SHAPES = [
    ("check_run", _shaped("check_run.completed", check_run="x"), "check_run"),
    ("check_run", _shaped("check_run.requested_action", check_run=[]), "check_run"),
    ("check_suite", _shaped("check_suite.completed", check_suite=5), "check_suite"),
    ("issues", _shaped("issues.labeled", label="x"), "label"),
    ("issues", _shaped("issues.labeled", label=[LABEL]), "label"),
    ("issues", _shaped("issues.labeled", label=LABEL, issue="x"), "issue"),
    ("issues", _shaped("issues.labeled", label=LABEL, repository=5), "repository"),
    ("issues", _shaped("issues.labeled", label=LABEL, sender="alice"), "sender"),
    ("issues", _nested("issues.labeled", "issue", number="1"), "issue.number"),
    ("issues", _nested("issues.labeled", "issue", labels={"name": "x"}), "issue.labels"),
    ("issues", _shaped("issues.opened", action="edited", changes=[]), "changes"),
    ("issue_comment", _nested("issue_comment.created", "comment", user="x"), "comment.user"),
    ("issue_comment", _nested("issue_comment.created", "comment", body=["/autopack"]), "comment"),
    ("installation", _shaped("installation.created", installation="x"), "installation"),
    ("installation", _shaped("installation.created", repositories={"id": 1}), "repositories"),
    (
        "installation_repositories",
        _shaped("installation_repositories.added", repositories_added=[5]),
        "repositories_added",
    ),
    ("pull_request", _shaped("pull_request.opened", repository=[]), "repository"),
]


@pytest.mark.parametrize(("event", "payload", "part"), WRONG_SHAPES)
async def test_signed_payloads_of_the_wrong_shape_are_400(
    client: Client, engine: AsyncEngine, event: str, payload: dict[str, Any], part: str
) -> None:
    response = await post_webhook(client, event, payload)
    assert response.status == 400
    answer = await response.json()
    assert answer["outcome"] == "refused"
    assert answer["message"].startswith(part)
    assert await Inbox(engine).counts() == {}


def _rss() -> int:
    """This process's resident set size in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def test_memory_stays_bounded_under_many_large_unsigned_posts(
    aiohttp_client: MakeClient, engine: AsyncEngine
) -> None:
    budget = 16 * MIB
    client = await _client(aiohttp_client, engine, BodyLimits(budget_bytes=budget))
    posts, size, chunk = 24, 8 * MIB, 64 * 1024
    payload = memoryview(b"x" * size)
    go_on = asyncio.Event()
    paused = 0

    async def body() -> AsyncIterator[bytes]:
        # Everything but the last chunk, then wait: all posts are being read at the same time.
        nonlocal paused
        for start in range(0, size - chunk, chunk):
            yield bytes(payload[start : start + chunk])
        paused += 1
        await go_on.wait()
        yield bytes(payload[size - chunk :])

    async def post(number: int) -> int | str:
        headers = _headers(b"", **{"X-GitHub-Delivery": f"flood-{number}"})
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
        try:
            async with client.post("/api/github/webhooks", data=body(), headers=headers) as answer:
                return answer.status
        except aiohttp.ClientError as exc:  # refused early: the connection closed mid-body
            return type(exc).__name__

    gc.collect()
    before = peak = _rss()
    tasks = [asyncio.create_task(post(n)) for n in range(posts)]
    # Wait until every post is either held at its last chunk or already answered.
    async with asyncio.timeout(60):
        while paused + sum(task.done() for task in tasks) < posts:
            peak = max(peak, _rss())
            await asyncio.sleep(0.01)
        for _ in range(20):  # and let the server read what is on its sockets
            peak = max(peak, _rss())
            await asyncio.sleep(0.01)
    held = client.app[BODY_BUDGET].in_use
    go_on.set()
    results = await asyncio.gather(*tasks)
    grown = peak - before
    # Unbounded, the server would hold every body at once (24 x 8 MiB = 192 MiB).
    assert grown < 64 * MIB, f"resident memory grew by {grown / MIB:.0f} MiB"
    assert held <= budget
    assert 429 in results
    assert set(results) <= {401, 429, "ClientOSError", "ServerDisconnectedError"}
    assert client.app[BODY_BUDGET].in_use == 0
    assert await Inbox(engine).counts() == {}
