"""Pure retry policy for GitHub REST calls: what to do after a failed attempt.

GitHub's rules (docs "Rate limits for the REST API" / "Best practices"): a `retry-after` header
says exactly how long to wait; otherwise `x-ratelimit-remaining: 0` means wait until
`x-ratelimit-reset`; otherwise a secondary limit means wait at least a minute, then longer.
Server errors and lost connections get exponential backoff with jitter. Other 4xx are the
caller's fault and are never retried. No I/O here: the client feeds in what it saw.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass

# 501 and 505 mean "this will never work"; the rest are worth another try.
RETRYABLE_SERVER_STATUSES = frozenset({500, 502, 503, 504})
RATE_LIMIT_STATUSES = frozenset({403, 429})
_SECONDARY_MARKERS = (b"secondary rate limit", b"abuse detection")


@dataclass(frozen=True)
class RetryPolicy:
    """Knobs of the retry policy (defaults follow GitHub's guidance)."""

    max_attempts: int = 4
    backoff_base: float = 1.0
    backoff_factor: float = 2.0
    backoff_cap: float = 30.0
    max_rate_limit_wait: float = 15 * 60.0
    secondary_min_wait: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.backoff_base, self.backoff_cap, self.secondary_min_wait) < 0:
            raise ValueError("waits must not be negative")
        if self.backoff_factor < 1:
            raise ValueError("backoff_factor must be at least 1")
        if self.max_rate_limit_wait < 0:
            raise ValueError("max_rate_limit_wait must not be negative")


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class RetryAfter:
    """Sleep this many seconds, then try again."""

    seconds: float
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """Stop retrying; `reset_at` (epoch seconds) is set when a rate limit outlasts our patience."""

    reason: str
    reset_at: float | None = None


Decision = RetryAfter | GiveUp


# Not frozen on purpose: gidgethub's request loop decrements `client.rate_limit.remaining` in
# place before each request as a running estimate; the next response replaces the whole value.
@dataclass
class RateLimitStatus:
    """The last rate-limit headers GitHub sent (`x-ratelimit-*`)."""

    limit: int
    remaining: int
    reset_at: float
    used: int | None = None
    resource: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitStatus | None:
        """Parse `x-ratelimit-*` headers; None when they are absent or malformed."""
        lowered = _lower(headers)
        try:
            limit = int(lowered["x-ratelimit-limit"])
            remaining = int(lowered["x-ratelimit-remaining"])
            reset_at = float(lowered["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return None
        if not math.isfinite(reset_at):
            return None
        used = _parse_int(lowered.get("x-ratelimit-used"))
        return cls(limit, remaining, reset_at, used, lowered.get("x-ratelimit-resource"))


def retry_decision(
    status: int | None,
    headers: Mapping[str, str],
    body: bytes,
    attempt: int,
    now: float,
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    jitter: float = 1.0,
) -> Decision:
    """Decide whether attempt number `attempt` (1-based) that got `status` should be retried.

    `status` None means no response at all (timeout or connection error). `jitter` in [0, 1]
    scales backoff waits between half and all of the exponential delay; pass a random number.
    """
    if status is not None and status < 400:
        return GiveUp("not an error")
    exhausted = attempt >= policy.max_attempts
    if status is None or status in RETRYABLE_SERVER_STATUSES:
        what = "no response" if status is None else f"HTTP {status}"
        if exhausted:
            return GiveUp(f"{what} after {attempt} attempts")
        return RetryAfter(_backoff(attempt, policy, jitter), f"{what}, backing off")
    if status not in RATE_LIMIT_STATUSES:
        return GiveUp(f"HTTP {status} is not retryable")
    return _rate_limit_decision(status, _lower(headers), body, attempt, now, policy, exhausted)


def _rate_limit_decision(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    attempt: int,
    now: float,
    policy: RetryPolicy,
    exhausted: bool,
) -> Decision:
    retry_after = _parse_retry_after(headers.get("retry-after"), now)
    if retry_after is not None:
        return _bounded_wait(
            retry_after, "secondary rate limit (retry-after)", now, policy, exhausted
        )
    if headers.get("x-ratelimit-remaining", "").strip() == "0":
        reset = _parse_float(headers.get("x-ratelimit-reset"))
        if reset is not None:
            # One extra second: the reset instant itself may still be refused.
            wait = max(reset - now, 0.0) + 1.0
            return _bounded_wait(wait, "primary rate limit", now, policy, exhausted)
    lowered_body = body.lower()
    if status == 429 or any(marker in lowered_body for marker in _SECONDARY_MARKERS):
        # No retry-after: GitHub asks for at least a minute, growing while it keeps refusing.
        wait = policy.secondary_min_wait * policy.backoff_factor ** min(attempt - 1, 32)
        return _bounded_wait(wait, "secondary rate limit", now, policy, exhausted)
    return GiveUp(f"HTTP {status} is not a rate limit (permission denied)")


def _bounded_wait(
    wait: float, reason: str, now: float, policy: RetryPolicy, exhausted: bool
) -> Decision:
    if wait > policy.max_rate_limit_wait:
        return GiveUp(f"{reason}: reset in {wait:.0f} s is beyond the maximum wait", now + wait)
    if exhausted:
        return GiveUp(f"{reason}: attempts exhausted", now + wait)
    return RetryAfter(wait, reason)


def _backoff(attempt: int, policy: RetryPolicy, jitter: float) -> float:
    # min() on the exponent keeps huge attempt numbers from overflowing the float.
    delay = policy.backoff_base * policy.backoff_factor ** min(attempt - 1, 64)
    delay = min(delay, policy.backoff_cap)
    jitter = min(max(jitter, 0.0), 1.0) if math.isfinite(jitter) else 1.0
    return delay * (0.5 + 0.5 * jitter)


def _parse_retry_after(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    seconds = _parse_float(value)
    if seconds is None:
        try:
            seconds = email.utils.parsedate_to_datetime(value.strip()).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(seconds, 0.0)


def _parse_float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}
