"""Small helpers shared by the simulator's own tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from multidict import CIMultiDict

from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import Installation


class Api:
    """A raw JSON client for one installation token: returns (status, body, headers)."""

    def __init__(self, sim: FakeGitHub, session: aiohttp.ClientSession) -> None:
        self.sim = sim
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, **kw: Any
    ) -> tuple[int, Any, CIMultiDict[str]]:
        """One request; the body is parsed JSON (or None when empty)."""
        async with self.session.request(
            method, self.sim.url + path, json=body, allow_redirects=False, **kw
        ) as r:
            raw = await r.read()
            data = None
            if raw and r.content_type == "application/json":
                data = await r.json()
            return r.status, data, CIMultiDict(r.headers)

    async def get(self, path: str) -> tuple[int, Any]:
        """GET."""
        status, body, _ = await self.call("GET", path)
        return status, body

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        """POST."""
        status, data, _ = await self.call("POST", path, body)
        return status, data

    async def patch(self, path: str, body: Any) -> tuple[int, Any]:
        """PATCH."""
        status, data, _ = await self.call("PATCH", path, body)
        return status, data

    async def delete(self, path: str) -> tuple[int, Any]:
        """DELETE."""
        status, data, _ = await self.call("DELETE", path)
        return status, data


@asynccontextmanager
async def api(sim: FakeGitHub, installation: Installation) -> AsyncIterator[Api]:
    """An Api authenticated as `installation`."""
    token = sim.installation_token(installation)
    headers = {"Authorization": f"token {token}", "Accept": "application/vnd.github+json"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield Api(sim, session)


def first_installation(sim: FakeGitHub) -> Installation:
    """The first installation of the app under test."""
    return next(i for i in sim.world.installations.values() if i.app_id == sim.app.id)
