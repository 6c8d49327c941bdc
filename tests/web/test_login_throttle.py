"""Signing in under attack: wrong tokens throttled per client address (429 with Retry-After,
bounded memory), and no large body read from anyone who posts to the form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.web.throttle import ALLOWED_FAILURES, WINDOW_SECONDS, LoginThrottle
from tests.web.api_support import AUTH, TOKEN, api_client

Client = TestClient[Any, Any]
WRONG = {"Authorization": "Bearer " + "w" * 30}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_waits_once_it_failed_too_often_and_others_do_not() -> None:
    clock = Clock()
    throttle = LoginThrottle(allowed=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") is None
        throttle.failed("10.0.0.1")
        clock.now += 10
    assert throttle.retry_after("10.0.0.1") == 30  # the first failure ages out at 1060
    assert throttle.retry_after("10.0.0.2") is None
    clock.now += 30
    assert throttle.retry_after("10.0.0.1") is None  # one failure aged out: one more try
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 10
    throttle.succeeded("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") is None


def test_memory_is_bounded_by_the_number_of_clients_remembered() -> None:
    throttle = LoginThrottle(allowed=2, window=60, max_clients=100, clock=Clock())
    for _ in range(2):
        throttle.failed("first")
    assert throttle.retry_after("first") is not None
    for n in range(100):  # a spray from as many addresses as it takes to push it out
        throttle.failed(f"spray-{n}")
    assert throttle.retry_after("first") is None
    assert throttle.retry_after("spray-99") is None  # one failure each: below the limit


async def test_the_api_answers_429_after_too_many_wrong_tokens(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    client = await api_client(aiohttp_client, engine)
    for _ in range(ALLOWED_FAILURES):
        assert (await client.get("/api/runs", headers=WRONG)).status == 401
    # Throttled: the right token is not even looked at, so the answer says nothing about it.
    for headers in (WRONG, AUTH):
        response = await client.get("/api/runs", headers=headers)
        assert response.status == 429
        assert 0 < int(response.headers["Retry-After"]) <= WINDOW_SECONDS
        assert (await response.json())["error"] == "too_many_attempts"


async def test_requests_without_a_token_are_not_counted(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    client = await api_client(aiohttp_client, engine)
    for _ in range(ALLOWED_FAILURES * 2):
        assert (await client.get("/api/runs")).status == 401
    assert (await client.get("/api/runs", headers=AUTH)).status == 200


@pytest.mark.parametrize("path", ["/login", "/"])
async def test_the_sign_in_form_answers_429_after_too_many_wrong_tokens(
    aiohttp_client: Any, engine: AsyncEngine, path: str
) -> None:
    client = await api_client(aiohttp_client, engine)
    for _ in range(ALLOWED_FAILURES):
        response = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
        assert response.status == 401
    response = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 429
    assert "Too many wrong tokens" in await response.text()
    assert int(response.headers["Retry-After"]) > 0
    # A bearer header on a page is refused the same way while the address waits.
    response = await client.get(path, headers=AUTH, allow_redirects=False)
    assert response.status == 429


async def test_a_right_token_clears_earlier_failures(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    client = await api_client(aiohttp_client, engine)
    for _ in range(ALLOWED_FAILURES - 1):
        await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    response = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert response.status == 303
    client.session.cookie_jar.clear()
    response = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    assert response.status == 401  # counting started again


async def _stalled(first: bytes) -> AsyncIterator[bytes]:
    yield first
    await asyncio.Event().wait()  # the rest never comes


@pytest.mark.parametrize(
    "headers",
    [{"Content-Length": str(20 * 1024 * 1024)}, {}],
    ids=["declared-large", "no-length"],
)
async def test_a_sign_in_form_too_large_or_without_a_length_is_413_unread(
    aiohttp_client: Any, engine: AsyncEngine, headers: dict[str, str]
) -> None:
    client = await api_client(aiohttp_client, engine)
    form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    response = await client.post("/login", data=_stalled(b"token=x&"), headers=form)
    # Answered although the body never finished arriving: it was not read.
    assert response.status == 413
    assert "at most 16384 bytes" in await response.text()
