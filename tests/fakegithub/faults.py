"""Faults on demand: latency, error bursts, secondary rate limits, webhook drops/dupes/order."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)


@dataclass
class HttpFault:
    """One injected HTTP answer."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Burst:
    remaining: int
    fault: HttpFault
    path_prefix: str | None
    after_handler: bool = False  # the request is carried out, then its answer is lost
    method: str | None = None  # only requests with this method (None: any)


@dataclass
class Reshape:
    """Answers whose JSON is passed through `transform` (a shape GitHub does not document)."""

    remaining: int
    transform: Callable[[Any], Any]
    path: re.Pattern[str]
    method: str


@dataclass
class Hold:
    """A request kept waiting: `reached` is set when one arrives, it goes on once `release`d."""

    method: str
    path: re.Pattern[str]
    body: bytes
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, path: str, body: bytes) -> bool:
        """True for the request this hold waits for."""
        return method == self.method and bool(self.path.search(path)) and self.body in body


class Faults:
    """Test-controlled misbehaviour; every counter counts down as faults are served."""

    def __init__(self) -> None:
        self.latency = 0.0  # seconds added to every API response
        self._bursts: list[_Burst] = []
        self.drop_next = 0  # webhook deliveries recorded as failed and not sent
        self.duplicate_next = 0  # webhook deliveries sent twice with the same guid
        self.reorder_next = 0  # deliveries held, then released newest first
        self._holds: list[Hold] = []
        self._reshapes: list[Reshape] = []

    def fail_next(self, n: int, status: int = 502, path_prefix: str | None = None) -> None:
        """The next n API requests (optionally under a path prefix) answer `status` (502/503)."""
        message = {502: "Server Error", 503: "Service Unavailable"}.get(status, "Server Error")
        self._bursts.append(_Burst(n, HttpFault(status, message), path_prefix))

    def secondary_rate_limit(
        self, n: int, retry_after: int = 1, path_prefix: str | None = None
    ) -> None:
        """The next n API requests answer 403 with `retry-after`, as GitHub's abuse limiter does."""
        fault = HttpFault(403, SECONDARY_MESSAGE, {"retry-after": str(retry_after)})
        self._bursts.append(_Burst(n, fault, path_prefix))

    def lose_response_next(
        self, n: int, path_prefix: str | None = None, method: str | None = None
    ) -> None:
        """The next n API requests (under a path prefix, of a method) are carried out, then
        answer 502: what a client sees when GitHub did the write but the answer was lost."""
        fault = HttpFault(502, "Server Error")
        self._bursts.append(_Burst(n, fault, path_prefix, after_handler=True, method=method))

    def take_http_fault(
        self, path: str, *, method: str = "GET", after_handler: bool = False, public: bool = False
    ) -> HttpFault | None:
        """The fault to serve for this request, consuming one unit of its burst.

        Public routes (the tarball download host) get only faults aimed at them by prefix.
        """
        for burst in self._bursts:
            if (
                burst.remaining > 0
                and burst.after_handler == after_handler
                and burst.method in (None, method)
                and (burst.path_prefix is None or path.startswith(burst.path_prefix))
                and (not public or burst.path_prefix is not None)
            ):
                burst.remaining -= 1
                return burst.fault
        self._bursts = [b for b in self._bursts if b.remaining > 0]
        return None

    def reshape_next(
        self, n: int, transform: Callable[[Any], Any], path: str, method: str = "GET"
    ) -> None:
        """The next n requests of `method` whose path matches the regex `path` are carried out,
        then answered (same status and headers) with `transform` of their JSON: an answer of a
        shape the client does not expect (an entry missing a field, `null` for a list)."""
        self._reshapes.append(Reshape(n, transform, re.compile(path), method))

    def take_reshape(self, method: str, path: str) -> Callable[[Any], Any] | None:
        """The transform for this request's answer, if one is due (consuming it)."""
        for reshape in self._reshapes:
            if reshape.remaining > 0 and reshape.method == method and reshape.path.search(path):
                reshape.remaining -= 1
                return reshape.transform
        return None

    def hold_next(self, method: str, path: str, body: bytes = b"") -> Hold:
        """Keep the next request of `method` whose path matches the regex `path` (and whose body
        contains `body`) waiting until the test releases it: a moment to act at, exactly."""
        hold = Hold(method, re.compile(path), body)
        self._holds.append(hold)
        return hold

    def take_hold(self, method: str, path: str, body: bytes) -> Hold | None:
        """The hold this request is caught by, if any (each hold catches one request)."""
        for hold in self._holds:
            if hold.matches(method, path, body):
                self._holds.remove(hold)
                return hold
        return None

    @property
    def holding(self) -> bool:
        """True while a hold waits for its request."""
        return bool(self._holds)

    def clear(self) -> None:
        """Back to a well-behaved GitHub (held deliveries stay held until released)."""
        self.latency = 0.0
        self._bursts.clear()
        self._reshapes.clear()
        self.drop_next = self.duplicate_next = self.reorder_next = 0
