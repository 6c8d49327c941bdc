"""Liveness and readiness: `GET /health` (the database answers) and `GET /health/ready`.

Readiness adds what a process needs before it should get traffic or work: the schema at the
code's migration, and GitHub credentials that GitHub accepts (a JWT-signed `GET /app`, its
verdict kept for `GITHUB_CHECK_SECONDS` so probes every few seconds cost one call a while).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings
from app.github.auth import GitHubAuthError, app_jwt
from app.github.client import default_user_agent
from app.store import migrate
from app.store.db import ping
from app.web.keys import ENGINE, SETTINGS

PING_TIMEOUT_SECONDS = 3.0
GITHUB_CHECK_SECONDS = 30.0
OK = "ok"


@dataclass
class GitHubVerdict:
    """The last answer to "are the App's credentials usable?", and until when it stands."""

    verdict: str = ""
    until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


GITHUB_VERDICT = web.AppKey("github_verdict", GitHubVerdict)


def setup(app: web.Application) -> None:
    """Route GET /health and GET /health/ready on an application that has ENGINE and SETTINGS."""
    app[GITHUB_VERDICT] = GitHubVerdict()
    app.router.add_get("/health", health)
    app.router.add_get("/health/ready", ready)


async def health(request: web.Request) -> web.Response:
    """Report liveness and database reachability."""
    settings = request.app[SETTINGS]
    body: dict[str, object] = {
        "webhook_secret_configured": settings.webhook_secret is not None,
        "github_credentials_configured": settings.can_call_github,
    }
    database = await _database(request.app)
    if database != OK:
        return web.json_response(
            {"status": "unavailable", "database": database, **body}, status=503
        )
    return web.json_response({"status": "ok", "database": "ok", **body})


async def ready(request: web.Request) -> web.Response:
    """200 when the database answers, its schema is current and GitHub accepts the App."""
    checks = {"database": await _database(request.app)}
    checks["migrations"] = await _migrations(request.app) if checks["database"] == OK else "unknown"
    checks["github"] = await _github(request.app)
    ok = all(value == OK for value in checks.values())
    body = {"status": "ready" if ok else "not_ready", "checks": checks}
    return web.json_response(body, status=200 if ok else 503)


async def _database(app: web.Application) -> str:
    try:
        await asyncio.wait_for(ping(app[ENGINE]), PING_TIMEOUT_SECONDS)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return f"unreachable: {'timed out' if isinstance(exc, TimeoutError) else _reason(exc)}"
    return OK


async def _migrations(app: web.Application) -> str:
    try:
        status = await asyncio.wait_for(migrate.schema_status(app[ENGINE]), PING_TIMEOUT_SECONDS)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        return f"unknown: {'timed out' if isinstance(exc, TimeoutError) else _reason(exc)}"
    if status.up_to_date:
        return OK
    return (
        f"the schema is at {status.current or 'no revision'}, this version needs {status.head}: "
        "run `autopack migrate`"
    )


async def _github(app: web.Application) -> str:
    cache = app[GITHUB_VERDICT]
    async with cache.lock:  # one probe at a time asks GitHub; the others read its verdict
        if time.monotonic() >= cache.until:
            cache.verdict = await _ask_github(app[SETTINGS])
            cache.until = time.monotonic() + GITHUB_CHECK_SECONDS
        return cache.verdict


async def _ask_github(settings: Settings) -> str:
    if settings.app_id is None or settings.private_key is None:
        return "not configured: set APP_ID and PRIVATE_KEY (or run `autopack setup`)"
    try:
        token = app_jwt(settings.app_id, settings.private_key.get_secret_value(), now=time.time())
    except GitHubAuthError as exc:
        return str(exc)
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "User-Agent": default_user_agent(),
    }
    timeout = aiohttp.ClientTimeout(total=PING_TIMEOUT_SECONDS * 2)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{settings.github_api_url}/app", headers=headers) as response,
        ):
            if response.status == 200:
                return OK
            message = await _message(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"GitHub unreachable at {settings.github_api_url}: {type(exc).__name__}"
    return f"GitHub refused the App's credentials (GET /app: HTTP {response.status}{message})"


async def _message(response: aiohttp.ClientResponse) -> str:
    try:
        data = await response.json(content_type=None)
    except ValueError:
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    return f" {message}" if isinstance(message, str) else ""


def _reason(exc: BaseException) -> str:
    # The first line of the driver's message names the problem without dumping the URL.
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0]}" if text else type(original).__name__
