"""A webhook receiver for tests: records each POST and answers a configurable status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Received:
    """One webhook POST as the receiver saw it."""

    headers: Mapping[str, str]  # case-insensitive, as on the wire
    body: bytes

    @property
    def event(self) -> str:
        """X-GitHub-Event."""
        return self.headers["X-GitHub-Event"]

    @property
    def payload(self) -> dict[str, Any]:
        """The parsed JSON body."""
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """Where the simulator delivers during a test."""

    url: str = ""
    status: int = 202
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def events(self) -> list[tuple[str, str | None]]:
        """(event, action) pairs in arrival order."""
        return [(r.event, r.payload.get("action")) for r in self.received]


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[Receiver]:
    """A receiver on 127.0.0.1:<random>/hooks."""
    receiver = Receiver()

    async def handle(request: web.Request) -> web.Response:
        receiver.received.append(Received(CIMultiDict(request.headers), await request.read()))
        receiver.arrived.set()
        return web.Response(status=receiver.status, text="ok")

    app = web.Application()
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield receiver
    finally:
        await runner.cleanup()
