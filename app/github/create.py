"""Creating what GitHub does not de-duplicate (check runs, comments, issues) exactly once.

A POST whose answer was lost (a 5xx, a dropped connection) may still have landed. Repeating it
blindly makes a second check run or comment; so the client does not repeat such a request, and
`create_once` looks for what the first try may have made before it tries again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import gidgethub

from app.github.client import NO_BLIND_RETRY_HEADER
from app.github.repo import GitHubClient

CREATE_TRIES = 3
# What a lost answer looks like: the server failed or the connection did, after sending.
_MAY_HAVE_LANDED = (
    gidgethub.GitHubBroken,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    TimeoutError,
)


async def create_once(
    gh: GitHubClient,
    url: str,
    url_vars: Mapping[str, Any],
    data: Any,
    *,
    identify: Callable[[Any], int],
    find: Callable[[], Awaitable[int | None]],
) -> int:
    """POST `data` and return `identify(answer)`; after a failure that may have landed, return
    what `find` finds, or POST again (at most CREATE_TRIES in all)."""
    for attempt in range(1, CREATE_TRIES + 1):
        try:
            created = await gh.post(
                url, url_vars, data=data, extra_headers={NO_BLIND_RETRY_HEADER: "1"}
            )
        except _MAY_HAVE_LANDED:
            if attempt == CREATE_TRIES:
                raise
            found = await find()
            if found is not None:
                return found
            await gh.sleep(float(attempt))
            continue
        return identify(created)
    raise AssertionError("unreachable: the last try returns or raises")
