"""Reading a webhook body within limits: its size, how long it may take, and how many bytes of
bodies not yet verified this process holds at once.

A body is unsigned until it has been read whole, so anyone can make the server read one. The
byte budget is shared by every request of the process and charged as bytes arrive (not by the
declared length, which would let a few slow clients that send nothing hold all of it); a request
that would take more than is left is answered at once (429) without reading further. Memory for
bodies therefore stays under the budget, plus each connection's small read buffer, however many
clients post at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

MAX_BODY_BYTES = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
READ_BUDGET_BYTES = 4 * MAX_BODY_BYTES
READ_SECONDS = 10.0  # GitHub gives up on a delivery after 10 seconds


@dataclass(frozen=True)
class BodyLimits:
    """How large one body may be, how many bytes all bodies being read may hold, how long."""

    max_bytes: int = MAX_BODY_BYTES
    budget_bytes: int = READ_BUDGET_BYTES
    read_seconds: float = READ_SECONDS


class BodyTooLarge(Exception):
    """The body is over `max_bytes`."""


class BodyTimedOut(Exception):
    """The body did not arrive within `read_seconds`."""


class ServerBusy(Exception):
    """Reading the body would take the bodies held by this process over the budget."""


class ByteBudget:
    """Bytes of request bodies held at once by this process (one event loop, so no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def take(self, size: int) -> bool:
        """Hold `size` more bytes if that stays within the limit."""
        if self.in_use + size > self.limit:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        """Release bytes taken earlier."""
        self.in_use -= size


class HeldBody:
    """One request's body, charged to the budget while it is held (`async with`)."""

    def __init__(self, budget: ByteBudget, limits: BodyLimits) -> None:
        self._budget = budget
        self._limits = limits
        self._held = 0

    async def __aenter__(self) -> HeldBody:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._budget.give_back(self._held)
        self._held = 0

    async def read(self, request: web.Request) -> bytes:
        """The whole body; BodyTooLarge, BodyTimedOut or ServerBusy instead of reading on."""
        limits = self._limits
        declared = request.content_length
        if declared is not None and declared > limits.max_bytes:
            raise BodyTooLarge
        buffer = bytearray()
        try:
            async with asyncio.timeout(limits.read_seconds):
                async for chunk in request.content.iter_any():
                    if len(buffer) + len(chunk) > limits.max_bytes:
                        raise BodyTooLarge
                    if not self._budget.take(len(chunk)):
                        raise ServerBusy
                    self._held += len(chunk)
                    buffer += chunk
        except TimeoutError:
            raise BodyTimedOut from None
        return bytes(buffer)
