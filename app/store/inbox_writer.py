"""Group commit for webhook intake: concurrent deliveries share one inbox transaction."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from app.store.inbox import Inbox, NewDelivery

MAX_BATCH = 256
STOP_TIMEOUT_SECONDS = 10.0


@dataclass
class _Pending:
    delivery: NewDelivery
    stored: asyncio.Future[bool] = field(default_factory=asyncio.Future)


class InboxWriter:
    """Queues deliveries and writes whatever has gathered in one transaction.

    Each caller still waits for the commit of its own delivery before answering, so nothing is
    acknowledged that is not on disk; under load, one commit serves many requests instead of each
    request paying for its own (and, on SQLite, queueing for the write lock).
    """

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writing task on the running loop."""
        self._task = asyncio.create_task(self._run(), name="autopack-inbox-writer")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        # Bounded: a shutdown must not hang on a database that stopped answering.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), STOP_TIMEOUT_SECONDS)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def add(self, delivery: NewDelivery) -> bool:
        """Store one delivery (with whatever else is queued); False if it was a duplicate."""
        if self._task is None:
            return await self._inbox.add(delivery)
        pending = _Pending(delivery)
        self._queue.put_nowait(pending)
        return await pending.stored

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                results = await self._inbox.add_many([item.delivery for item in batch])
            except Exception as exc:
                # The requests answer 5xx and GitHub records a failed delivery to redeliver later.
                for item in batch:
                    if not item.stored.done():
                        item.stored.set_exception(exc)
            else:
                for item, stored in zip(batch, results, strict=True):
                    if not item.stored.done():
                        item.stored.set_result(stored)
            finally:
                for _ in batch:
                    self._queue.task_done()
