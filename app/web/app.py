"""The aiohttp application factory: routes, shared state and the in-process worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.engine.service import running_engine
from app.store.db import create_engine
from app.store.inbox import Inbox
from app.store.inbox_writer import InboxWriter
from app.web import api, dashboard, health, metrics, webhooks
from app.web import setup as setup_pages
from app.web.bodies import MAX_BODY_BYTES, BodyLimits, ByteBudget
from app.web.keys import (
    BODY_BUDGET,
    BODY_LIMITS,
    ENGINE,
    INBOX,
    INBOX_WAKE,
    INBOX_WRITER,
    LOGIN_THROTTLE,
    SETTINGS,
)
from app.web.setup import SetupFlow
from app.web.throttle import LoginThrottle

log = logging.getLogger("autopack.web")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    with_worker: bool = True,
    clock: Callable[[], float] | None = None,
    setup: SetupFlow | None = None,
    body_limits: BodyLimits | None = None,
) -> web.Application:
    """Build the web application; `with_worker` also runs the inbox worker in this process.

    `clock` (epoch seconds) drives the runs' deadlines; tests pass one to let time pass. With
    `setup` (while APP_ID is unset) the registration pages are served and `/` leads there.
    """
    middlewares = [_start_at_setup] if setup is not None else []
    # No route takes a compressed body: the parser must not inflate one (the webhook refuses it).
    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        handler_args={"auto_decompress": False},
        middlewares=middlewares,
    )
    app[SETTINGS] = settings
    app[BODY_LIMITS] = body_limits or BodyLimits()
    app[BODY_BUDGET] = ByteBudget(app[BODY_LIMITS].budget_bytes)
    app[LOGIN_THROTTLE] = LoginThrottle()
    app[INBOX_WAKE] = asyncio.Event()
    app.cleanup_ctx.append(_database(engine))
    if with_worker:
        app.cleanup_ctx.append(_worker(clock))
    app.router.add_post("/api/github/webhooks", webhooks.receive)
    health.setup(app)
    metrics.setup(app)
    api.setup(app)
    dashboard.setup(app)
    if setup is not None:
        setup_pages.add_routes(app, setup)
    app.on_startup.append(_announce)
    return app


@web.middleware
async def _start_at_setup(request: web.Request, handler: Handler) -> web.StreamResponse:
    """While the App is not registered, the start page is the registration page."""
    if request.path == "/" and request.method in ("GET", "HEAD"):
        raise web.HTTPFound(request.app.router["setup"].url_for())
    return await handler(request)


def _database(engine: AsyncEngine | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        owned = engine is None
        app[ENGINE] = engine or create_engine(app[SETTINGS].database_url)
        app[INBOX] = Inbox(app[ENGINE])
        app[INBOX_WRITER] = InboxWriter(app[INBOX])
        app[INBOX_WRITER].start()
        yield
        await app[INBOX_WRITER].stop()
        if owned:
            await app[ENGINE].dispose()

    return ctx


def _worker(
    clock: Callable[[], float] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with running_engine(app[SETTINGS], app[ENGINE], app[INBOX_WAKE], clock=clock):
            yield

    return ctx


async def _announce(app: web.Application) -> None:
    settings = app[SETTINGS]
    if settings.webhook_secret is None:
        log.error("WEBHOOK_SECRET is not set: every webhook delivery will be refused with 401")
    if not settings.can_call_github:
        log.warning("APP_ID and PRIVATE_KEY are not both set: Autopack cannot call GitHub")
