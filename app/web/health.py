"""GET /health: 200 when the database answers, 503 with the reason when it does not."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from app.store.db import ping
from app.web.keys import ENGINE, SETTINGS

PING_TIMEOUT_SECONDS = 3.0


async def health(request: web.Request) -> web.Response:
    """Report liveness and database reachability."""
    settings = request.app[SETTINGS]
    body: dict[str, object] = {
        "webhook_secret_configured": settings.webhook_secret is not None,
        "github_credentials_configured": settings.can_call_github,
    }
    try:
        await asyncio.wait_for(ping(request.app[ENGINE]), PING_TIMEOUT_SECONDS)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else _reason(exc)
        return web.json_response(
            {"status": "unavailable", "database": f"unreachable: {reason}", **body}, status=503
        )
    return web.json_response({"status": "ok", "database": "ok", **body})


def _reason(exc: BaseException) -> str:
    # The first line of the driver's message names the problem without dumping the URL.
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0]}" if text else type(original).__name__
