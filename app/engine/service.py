"""The worker side of the service, assembled: inbox processing and run driving, as tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import gidgethub
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.domain.payload import Payload
from app.engine.driver import RunDriver
from app.engine.executor import EngineExecutor
from app.engine.intake import router as installation_router
from app.engine.redelivery import redeliver_failed
from app.engine.run_intake import RunIntake
from app.engine.worker import Dispatch, InboxWorker, router_dispatch
from app.github.client import GitHubApp
from app.store.backlogs import BacklogStore
from app.store.db import session_factory
from app.store.inbox import Inbox, InboxDelivery
from app.store.installations import Installations
from app.store.notices import RefusalNotices
from app.store.progress import ProgressStore
from app.store.queue import RunQueue
from app.store.runs import RunStore

log = logging.getLogger("autopack.service")
IDLE_POLL_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 15.0
# GitHub keeps three days of deliveries; on start look back this far for ones that failed.
REDELIVERY_LOOKBACK = timedelta(hours=6)
REDELIVERY_INTERVAL = timedelta(minutes=10)
REDELIVERY_OVERLAP = timedelta(minutes=5)


@dataclass
class Engine:
    """The running worker: its driver is exposed for tests and benchmarks."""

    inbox_worker: InboxWorker
    driver: RunDriver | None
    run_wake: asyncio.Event


def worker_name() -> str:
    """This process's lease owner name."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.asynccontextmanager
async def running_engine(
    settings: Settings, engine: AsyncEngine, inbox_wake: asyncio.Event
) -> AsyncIterator[Engine]:
    """Run the inbox worker and, when GitHub credentials are set, the run driver."""
    installations = Installations(session_factory(engine))
    dispatch = router_dispatch(installation_router, installations)
    run_wake = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=120, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        driver = None
        if settings.can_call_github:
            assert settings.app_id is not None
            assert settings.private_key is not None
            app = GitHubApp(
                session,
                settings.github_api_url,
                settings.app_id,
                settings.private_key.get_secret_value(),
            )
            store, queue = RunStore(engine), RunQueue(engine)
            intake = RunIntake(settings, app, store, queue, RefusalNotices(engine))
            executor = EngineExecutor(
                settings,
                app,
                session,
                backlogs=BacklogStore(engine),
                progress=ProgressStore(engine),
            )
            lease = timedelta(seconds=settings.lease_seconds)
            driver = RunDriver(store, queue, executor, owner=worker_name(), lease=lease)
            dispatch = dispatch_to_both(dispatch, intake, run_wake)
        inbox = Inbox(engine)
        inbox_worker = InboxWorker(
            inbox, dispatch, inbox_wake, lease=timedelta(seconds=settings.lease_seconds)
        )
        tasks = [asyncio.create_task(inbox_worker.run(), name="autopack-inbox")]
        if driver is not None:
            tasks.append(asyncio.create_task(_drive(driver, run_wake), name="autopack-runs"))
            tasks.append(asyncio.create_task(_catch_up(app, inbox), name="autopack-redelivery"))
        try:
            yield Engine(inbox_worker, driver, run_wake)
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a builder that ignores its cancellation must not hang the shutdown.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
            for task in stuck:
                log.error("a worker task did not stop in time: %s", task.get_name())


def dispatch_to_both(
    installations: Dispatch, intake: RunIntake, run_wake: asyncio.Event
) -> Dispatch:
    """Installation events keep their tables current, the others drive runs (woken at once)."""

    async def dispatch(delivery: InboxDelivery, payload: Payload) -> None:
        await installations(delivery, payload)
        await intake.handle(delivery, payload)
        run_wake.set()

    return dispatch


async def _catch_up(app: GitHubApp, inbox: Inbox) -> None:
    """On start and then periodically, ask GitHub to redeliver what failed to reach us."""
    since = datetime.now(UTC) - REDELIVERY_LOOKBACK
    while True:
        started = datetime.now(UTC)
        try:
            report = await redeliver_failed(await app.app_client(), inbox, since)
            if report.redelivered:
                log.info("asked for %d redeliveries", len(report.redelivered))
            since = started - REDELIVERY_OVERLAP
        except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not list webhook deliveries: %s", exc)
        await asyncio.sleep(REDELIVERY_INTERVAL.total_seconds())


async def _drive(driver: RunDriver, wake: asyncio.Event) -> None:
    while True:
        wake.clear()
        try:
            busy = await driver.step()
        except Exception:
            # One run's unexpected error must not stop every other run; its lease expires and
            # the run is picked up again.
            log.exception("driving a run failed")
            busy = False
        if not busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), IDLE_POLL_SECONDS)
