"""The worker side of the service, assembled: inbox processing and run driving, as tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from app.agents.pids import discover_process_limit
from app.agents.sandbox import SandboxHost
from app.agents.sandbox_check import sandbox_report
from app.config import Settings
from app.domain.payload import Payload
from app.engine.config_check import ConfigCheck
from app.engine.context import Services, wall_clock
from app.engine.driver import RunDriver
from app.engine.executor import EngineExecutor
from app.engine.redelivery import catch_up
from app.engine.routes import ROUTES, Deps
from app.engine.run_intake import RunIntake
from app.engine.worker import Dispatch, InboxWorker
from app.github.client import GitHubApp
from app.github.ratelimit import RetryPolicy
from app.store.backlogs import BacklogStore
from app.store.db import session_factory
from app.store.evidence import EvidenceStore
from app.store.inbox import Inbox, InboxDelivery
from app.store.installations import Installations
from app.store.notices import RefusalNotices
from app.store.progress import ProgressStore
from app.store.queue import RunQueue
from app.store.runs import RunStore

log = logging.getLogger("autopack.service")
IDLE_POLL_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass
class Engine:
    """The running worker: its drivers (one per concurrent run) are exposed for tests."""

    inbox_worker: InboxWorker
    drivers: list[RunDriver]


class Wakeup:
    """Wakes every run slot at once when new work arrives (one event per slot)."""

    def __init__(self, slots: int) -> None:
        self.events = [asyncio.Event() for _ in range(slots)]

    def set(self) -> None:
        """New work: every slot looks for a run to claim."""
        for event in self.events:
            event.set()


def worker_name() -> str:
    """This process's name in lease owners: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def slot_owner(slot: int) -> str:
    """The lease owner of one run slot of this process: `host:pid:slot`."""
    return f"{worker_name()}:{slot}"


@contextlib.asynccontextmanager
async def running_engine(
    settings: Settings,
    engine: AsyncEngine,
    inbox_wake: asyncio.Event,
    *,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[Engine]:
    """Run the inbox worker and, when GitHub credentials are set, the run driver.

    `clock` (epoch seconds) is the runs' clock: their deadlines, CI waits and leases.
    """
    installations = Installations(session_factory(engine))
    dispatch = route_deliveries(Deps(installations))
    run_wake = Wakeup(settings.worker_concurrency)
    timeout = aiohttp.ClientTimeout(total=120, connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        drivers: list[RunDriver] = []
        if settings.can_call_github:
            assert settings.app_id is not None
            assert settings.private_key is not None
            app = GitHubApp(
                session,
                settings.github_api_url,
                settings.app_id,
                settings.private_key.get_secret_value(),
                policy=RetryPolicy(backoff_base=settings.retry_backoff_seconds),
            )
            store, queue = RunStore(engine), RunQueue(engine)
            intake = RunIntake(settings, app, store, queue, RefusalNotices(engine))
            services = Services(
                settings,
                app,
                session,
                SandboxHost.from_settings(settings, discover_process_limit()),
                backlogs=BacklogStore(engine),
                progress=ProgressStore(engine),
                evidence=EvidenceStore(engine),
                clock=clock or wall_clock,
            )
            executor = EngineExecutor(services)
            # Said once at start: which profiles cannot run, which run unsandboxed.
            path = os.environ.get("PATH", os.defpath)
            for level, line in await sandbox_report(settings, services.sandbox, path):
                log.log(level, "sandbox: %s", line)
            lease = timedelta(seconds=settings.lease_seconds)
            drivers = [
                RunDriver(store, queue, executor, owner=slot_owner(slot), lease=lease, clock=clock)
                for slot in range(settings.worker_concurrency)
            ]
            await _take_back_dead_leases(queue)
            deps = Deps(installations, intake, ConfigCheck(settings, app))
            dispatch = route_deliveries(deps, run_wake)
        inbox = Inbox(engine)
        inbox_worker = InboxWorker(
            inbox, dispatch, inbox_wake, lease=timedelta(seconds=settings.lease_seconds)
        )
        tasks = [asyncio.create_task(inbox_worker.run(), name="autopack-inbox")]
        for slot, driver in enumerate(drivers):
            wake = run_wake.events[slot]
            tasks.append(asyncio.create_task(_drive(driver, wake), name=f"autopack-runs-{slot}"))
        if drivers:
            catching_up = catch_up(app.app_client, inbox)
            tasks.append(asyncio.create_task(catching_up, name="autopack-redelivery"))
        try:
            yield Engine(inbox_worker, drivers)
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a builder that ignores its cancellation must not hang the shutdown.
            _, stuck = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
            for task in stuck:
                log.error("a worker task did not stop in time: %s", task.get_name())


async def _take_back_dead_leases(queue: RunQueue) -> None:
    """Runs this host's dead processes held are claimable at once, not when their lease ends.

    A lease names `host:pid:slot`. On this host, a pid that no longer runs is dead; so is our
    own pid (we hold nothing yet: it is a predecessor's, as after a container restart).
    """
    host = socket.gethostname()
    dead = [
        owner
        for owner in await queue.lease_owners(f"{host}:")
        if not _alive(owner.removeprefix(f"{host}:").split(":", 1)[0])
    ]
    if dead and (count := await queue.expire_leases(dead)):
        log.info("took back %d run(s) from dead workers of this host", count)


def _alive(pid_text: str) -> bool:
    if not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def route_deliveries(deps: Deps, run_wake: Wakeup | None = None) -> Dispatch:
    """Dispatch each delivery through the routing table; wake the run slots after it."""

    async def dispatch(delivery: InboxDelivery, payload: Payload) -> None:
        await ROUTES.dispatch(delivery, payload, deps)
        if run_wake is not None:
            run_wake.set()

    return dispatch


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
