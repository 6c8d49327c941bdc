"""Webhook signing and delivery to the app under test, with delivery records and faults.

Deliveries go out one at a time, in the order events happened (unless a fault reorders them),
through one worker task, so a test sees a deterministic sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.fakegithub.faults import Faults
from tests.fakegithub.state import AppRegistration, iso_at

HOOKSHOT_VERSION = "a1b2c3d"


def sign(secret: str, body: bytes, digest: str = "sha256") -> str:
    """The X-Hub-Signature(-256) header value for `body`."""
    mac = hmac.new(secret.encode(), body, getattr(hashlib, digest)).hexdigest()
    return f"{digest}={mac}"


@dataclass
class DeliveryRecord:
    """One attempt to deliver a webhook, as GitHub's delivery log keeps it."""

    id: int
    guid: str
    event: str
    action: str | None
    installation_id: int | None
    repository_id: int | None
    payload: dict[str, Any]
    redelivery: bool = False
    status_code: int | None = None
    error: str | None = None
    delivered: bool = False
    at: str = ""
    duration: float = 0.0
    request_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""

    @property
    def status(self) -> str:
        """GitHub's one-word status ("OK", "Invalid HTTP Response: 500", ...)."""
        if self.delivered:
            return "OK"
        if self.status_code is not None:
            return f"Invalid HTTP Response: {self.status_code}"
        return self.error or "pending"


@dataclass
class _Job:
    event: str
    payload: dict[str, Any]
    guid: str
    redelivery: bool
    done: asyncio.Future[DeliveryRecord]


class Dispatcher:
    """Signs and POSTs webhooks to `webhook_url`, keeping every attempt in `records`."""

    def __init__(self, app: AppRegistration, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self.hook_id = 400000 + app.id
        self.webhook_url: str | None = None
        self.records: list[DeliveryRecord] = []
        self.held: list[_Job] = []
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._next_id = 1
        self._busy = False

    async def start(self) -> None:
        """Open the client session and start the delivery worker."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._worker = asyncio.create_task(self._run(), name="fakegithub-deliveries")

    async def stop(self) -> None:
        """Stop the worker (pending deliveries are abandoned) and close the session."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        for job in [*self.held, *self._drain_queue()]:
            if not job.done.done():
                job.done.cancel()

    def _drain_queue(self) -> list[_Job]:
        jobs = []
        while not self._queue.empty():
            jobs.append(self._queue.get_nowait())
            self._queue.task_done()
        return jobs

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight (held ones excluded)."""
        return self._queue.qsize() + (1 if self._busy else 0)

    def enqueue(
        self, event: str, payload: dict[str, Any], guid: str | None = None, redelivery: bool = False
    ) -> asyncio.Future[DeliveryRecord]:
        """Queue a delivery; the future resolves to its record once attempted."""
        done: asyncio.Future[DeliveryRecord] = asyncio.get_running_loop().create_future()
        job = _Job(event, payload, guid or str(uuid.uuid4()), redelivery, done)
        if self.faults.reorder_next > 0 and not redelivery:
            self.faults.reorder_next -= 1
            self.held.append(job)
            if self.faults.reorder_next == 0:
                self.release_held()
            return done
        self._queue.put_nowait(job)
        return done

    def release_held(self) -> None:
        """Send held deliveries, newest first."""
        jobs, self.held = self.held, []
        for job in reversed(jobs):
            self._queue.put_nowait(job)

    async def join(self) -> None:
        """Wait until every queued delivery was attempted."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            self._busy = True
            try:
                record = await self._attempt(job)
                if self.faults.duplicate_next > 0 and not job.redelivery and record.delivered:
                    self.faults.duplicate_next -= 1
                    await self._attempt(job)
                if not job.done.done():
                    job.done.set_result(record)
            finally:
                self._busy = False
                self._queue.task_done()

    def _record(self, job: _Job) -> DeliveryRecord:
        installation = job.payload.get("installation") or {}
        repository = job.payload.get("repository") or {}
        record = DeliveryRecord(
            id=self._next_id,
            guid=job.guid,
            event=job.event,
            action=job.payload.get("action"),
            installation_id=installation.get("id"),
            repository_id=repository.get("id"),
            payload=job.payload,
            redelivery=job.redelivery,
            at=iso_at(time.time()),
        )
        self._next_id += 1
        self.records.append(record)
        return record

    def headers(self, event: str, guid: str, body: bytes) -> dict[str, str]:
        """The headers GitHub sends with a delivery."""
        return {
            "Content-Type": "application/json",
            "User-Agent": f"GitHub-Hookshot/{HOOKSHOT_VERSION}",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(self.hook_id),
            "X-GitHub-Hook-Installation-Target-Type": "integration",
            "X-GitHub-Hook-Installation-Target-ID": str(self.app.id),
            "X-Hub-Signature": sign(self.app.webhook_secret, body, "sha1"),
            "X-Hub-Signature-256": sign(self.app.webhook_secret, body, "sha256"),
        }

    async def _attempt(self, job: _Job) -> DeliveryRecord:
        record = self._record(job)
        if self.faults.drop_next > 0 and not job.redelivery:
            self.faults.drop_next -= 1
            record.error = "dropped by fault injection"
            return record
        if self.webhook_url is None or self._session is None:
            record.error = "no webhook URL configured"
            return record
        body = json.dumps(job.payload).encode()
        record.request_headers = self.headers(job.event, job.guid, body)
        started = time.perf_counter()
        try:
            async with self._session.post(
                self.webhook_url, data=body, headers=record.request_headers
            ) as response:
                record.status_code = response.status
                record.response_body = (await response.text())[:2000]
                record.delivered = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
        record.duration = time.perf_counter() - started
        return record

    def find(self, delivery_id: int) -> DeliveryRecord | None:
        """A record by its numeric id."""
        return next((r for r in self.records if r.id == delivery_id), None)

    def by_guid(self, guid: str) -> DeliveryRecord | None:
        """The first record with this guid."""
        return next((r for r in self.records if r.guid == guid), None)
