"""Failed sign-ins, counted per client address, so that the API token cannot be guessed fast.

After `allowed` wrong tokens within `window` seconds, a client is refused (429 with Retry-After)
until the oldest of them is `window` seconds old, whether its next token is right or not. Memory is
bounded: at most `max_clients` addresses are remembered, the one that failed longest ago forgotten
first. Per process: several web processes each keep their own count.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

ALLOWED_FAILURES = 5
WINDOW_SECONDS = 60.0
MAX_CLIENTS = 10_000


class LoginThrottle:
    """Wrong tokens per client address within a sliding window."""

    def __init__(
        self,
        allowed: int = ALLOWED_FAILURES,
        window: float = WINDOW_SECONDS,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._allowed = allowed
        self._window = window
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Whole seconds the client must wait before trying again, or None if it may try now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self._allowed:
            return None
        return max(1, math.ceil(failures[0] + self._window - now))

    def failed(self, client: str) -> None:
        """Count one wrong token from the client."""
        failures = self._failures.setdefault(client, deque(maxlen=self._allowed))
        failures.append(self._clock())
        self._failures.move_to_end(client)
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """The client signed in: its earlier failures no longer count."""
        self._failures.pop(client, None)
