"""The worker loop: claim deliveries from the inbox, dispatch them, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from app.domain.payload import MalformedPayload, Payload, parse_payload
from app.logs import fields
from app.store.inbox import Inbox, InboxDelivery

log = logging.getLogger("autopack.worker")

# Handles one delivery, given its typed payload.
Dispatch = Callable[[InboxDelivery, Payload], Awaitable[None]]


class InboxWorker:
    """Processes the inbox until stopped; wakes on `wake` or every `poll_interval` seconds."""

    def __init__(
        self,
        inbox: Inbox,
        dispatch: Dispatch,
        wake: asyncio.Event,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self._inbox = inbox
        self._dispatch = dispatch
        self._wake = wake
        self._poll_interval = poll_interval
        self._lease = lease

    async def drain(self) -> int:
        """Process every claimable delivery now; returns how many were handled."""
        handled = 0
        while (delivery := await self._inbox.claim(self._lease)) is not None:
            await self._process(delivery)
            handled += 1
        return handled

    async def run(self) -> None:
        """Drain, then sleep until woken or the poll interval passes; forever."""
        while True:
            self._wake.clear()
            await self.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)

    async def _process(self, delivery: InboxDelivery) -> None:
        context = fields(
            delivery=delivery.delivery_id,
            event=delivery.event,
            action=delivery.action,
            installation=delivery.installation_id,
            attempt=delivery.attempts,
        )
        try:
            # Stored before this version checked shapes, or by hand: checked again here.
            payload = parse_payload(delivery.event, delivery.body)
        except MalformedPayload as exc:
            await self._inbox.finish(delivery, status="malformed")
            log.warning("delivery malformed, dropped: %s", exc, extra=context)
            return
        try:
            await self._dispatch(delivery, payload)
        except Exception as exc:
            # Any other failure is retried with the lease; the error is kept on the row.
            final = await self._inbox.fail(delivery, f"{type(exc).__name__}: {exc}")
            log.exception(
                "delivery failed%s", " for good" if final else ", will retry", extra=context
            )
            return
        await self._inbox.finish(delivery)
        log.info("delivery processed", extra=context)
