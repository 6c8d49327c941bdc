"""GET /metrics: Prometheus text format, with queue and run gauges read at scrape time.

No authentication: the endpoint is for a scraper on the private network. It carries counts,
durations, installation ids and rate-limit numbers, never secrets, run ids or repository
names; firewall it if even that should stay inside. `autopack worker` has no web server, so
`worker_metrics` serves /metrics, /health and /health/ready on `AUTOPACK_METRICS_PORT` when set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.config import Settings
from app.listen import bind
from app.store.db import as_utc
from app.store.models import InboxRow, JobRow, RunRow
from app.web import health
from app.web.keys import ENGINE, SETTINGS

log = logging.getLogger("autopack.metrics")

QUERY_TIMEOUT_SECONDS = 3.0
# The classic text format every Prometheus version reads (our names need none of 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def read_database(engine: AsyncEngine, now: datetime) -> metrics.DatabaseSnapshot:
    """Queue depths, oldest waiting ages and active runs by status, in two indexed queries."""
    due_jobs = (JobRow.status == "pending", JobRow.available_at <= now)
    queues = select(
        # ix_jobs_status_available covers both; ix_webhook_inbox_status_id the inbox ones.
        select(func.count()).select_from(JobRow).where(*due_jobs).scalar_subquery(),
        select(func.min(JobRow.available_at)).where(*due_jobs).scalar_subquery(),
        select(func.count())
        .select_from(InboxRow)
        .where(InboxRow.status == "pending")
        # The oldest delivery is the lowest id: one index step, not a scan of received_at.
        .scalar_subquery(),
        select(InboxRow.received_at)
        .where(InboxRow.status == "pending")
        .order_by(InboxRow.id)
        .limit(1)
        .scalar_subquery(),
    )
    # The partial index ux_runs_active_issue holds exactly the non-terminal runs.
    runs = select(RunRow.status, func.count()).where(~RunRow.terminal)
    async with engine.connect() as conn:
        jobs, oldest_job, inbox, oldest_delivery = (await conn.execute(queues)).one()
        active = (await conn.execute(runs.group_by(RunRow.status))).all()
    return metrics.DatabaseSnapshot(
        queue_depth={"jobs": jobs, "inbox": inbox},
        queue_oldest_age={"jobs": _age(oldest_job, now), "inbox": _age(oldest_delivery, now)},
        runs_active={status: count for status, count in active},
    )


def _age(moment: datetime | None, now: datetime) -> float:
    return 0.0 if moment is None else max(0.0, (now - as_utc(moment)).total_seconds())


async def scrape(request: web.Request) -> web.Response:
    """Refresh the database gauges, then answer with the whole registry."""
    snapshot: metrics.DatabaseSnapshot | None = None
    try:
        snapshot = await asyncio.wait_for(
            read_database(request.app[ENGINE], datetime.now(UTC)), QUERY_TIMEOUT_SECONDS
        )
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        # The process counters are still worth serving; the gauges say the database did not.
        log.warning("metrics: database not readable: %s", type(exc).__name__)
    metrics.set_database_gauges(snapshot)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def setup(app: web.Application) -> None:
    """Route GET /metrics on an application that has ENGINE set (by startup at the latest)."""
    app.router.add_get("/metrics", scrape)


@contextlib.asynccontextmanager
async def worker_metrics(settings: Settings, engine: AsyncEngine) -> AsyncIterator[None]:
    """Serve /metrics and the health checks on AUTOPACK_METRICS_PORT while the worker runs."""
    if settings.metrics_port is None:
        yield
        return
    app = web.Application()
    app[SETTINGS] = settings
    app[ENGINE] = engine
    setup(app)
    health.setup(app)
    sock = bind(settings.metrics_port, "AUTOPACK_METRICS_PORT")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        log.info("worker metrics on port %d", settings.metrics_port)
        yield
    finally:
        await runner.cleanup()
