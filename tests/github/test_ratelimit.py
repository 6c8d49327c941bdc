"""The pure retry policy: table of GitHub's cases, plus properties that must hold for any input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.github.ratelimit import (
    DEFAULT_POLICY,
    GiveUp,
    RateLimitStatus,
    RetryAfter,
    RetryPolicy,
    retry_decision,
)

NOW = 1_700_000_000.0
SECONDARY = b'{"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}'
PRIMARY = {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000"}


def reset_in(seconds: float) -> dict[str, str]:
    return {**PRIMARY, "x-ratelimit-reset": str(int(NOW + seconds))}


@pytest.mark.parametrize(
    ("status", "headers", "body", "attempt", "expected"),
    [
        # Server errors and lost connections: 1, 2, 4 s (jitter 1.0), then give up at attempt 4.
        (502, {}, b"", 1, RetryAfter(1.0, "HTTP 502, backing off")),
        (500, {}, b"", 2, RetryAfter(2.0, "HTTP 500, backing off")),
        (503, {}, b"", 3, RetryAfter(4.0, "HTTP 503, backing off")),
        (504, {}, b"", 4, GiveUp("HTTP 504 after 4 attempts")),
        (None, {}, b"", 1, RetryAfter(1.0, "no response, backing off")),
        (None, {}, b"", 4, GiveUp("no response after 4 attempts")),
        (501, {}, b"", 1, GiveUp("HTTP 501 is not retryable")),
        # The caller's fault: never retried.
        (400, {}, b"", 1, GiveUp("HTTP 400 is not retryable")),
        (401, {}, b"", 1, GiveUp("HTTP 401 is not retryable")),
        (404, {}, b"", 1, GiveUp("HTTP 404 is not retryable")),
        (409, {}, b"", 1, GiveUp("HTTP 409 is not retryable")),
        (422, {}, b"", 1, GiveUp("HTTP 422 is not retryable")),
        (
            403,
            {"x-ratelimit-remaining": "4999"},
            b'{"message": "Resource not accessible by integration"}',
            1,
            GiveUp("HTTP 403 is not a rate limit (permission denied)"),
        ),
        (200, {}, b"", 1, GiveUp("not an error")),
        # Primary rate limit: until reset, plus a second.
        (403, reset_in(120), b"", 1, RetryAfter(121.0, "primary rate limit")),
        (429, reset_in(10), b"", 2, RetryAfter(11.0, "primary rate limit")),
        (403, reset_in(-30), b"", 1, RetryAfter(1.0, "primary rate limit")),
        (
            403,
            reset_in(3600),
            b"",
            1,
            GiveUp("primary rate limit: reset in 3601 s is beyond the maximum wait", NOW + 3601),
        ),
        (403, reset_in(60), b"", 4, GiveUp("primary rate limit: attempts exhausted", NOW + 61)),
        # Secondary rate limit: retry-after wins, even over remaining 0.
        (
            403,
            {"retry-after": "30"},
            SECONDARY,
            1,
            RetryAfter(30.0, "secondary rate limit (retry-after)"),
        ),
        (
            429,
            {**reset_in(600), "Retry-After": "5"},
            b"",
            1,
            RetryAfter(5.0, "secondary rate limit (retry-after)"),
        ),
        (
            403,
            {"retry-after": "7200"},
            SECONDARY,
            1,
            GiveUp(
                "secondary rate limit (retry-after): reset in 7200 s is beyond the maximum wait",
                NOW + 7200,
            ),
        ),
        # Secondary without retry-after: a minute, then exponentially longer.
        (403, {}, SECONDARY, 1, RetryAfter(60.0, "secondary rate limit")),
        (403, {}, SECONDARY, 2, RetryAfter(120.0, "secondary rate limit")),
        (403, {}, SECONDARY, 3, RetryAfter(240.0, "secondary rate limit")),
        (429, {}, b"", 1, RetryAfter(60.0, "secondary rate limit")),
        (
            403,
            {},
            b'{"message": "You have triggered an abuse detection mechanism."}',
            1,
            RetryAfter(60.0, "secondary rate limit"),
        ),
    ],
)
def test_retry_decision_table(
    status: int | None,
    headers: dict[str, str],
    body: bytes,
    attempt: int,
    expected: RetryAfter | GiveUp,
) -> None:
    assert retry_decision(status, headers, body, attempt, NOW, jitter=1.0) == expected


def test_jitter_scales_backoff_between_half_and_full() -> None:
    assert retry_decision(502, {}, b"", 3, NOW, jitter=0.0) == RetryAfter(
        2.0, "HTTP 502, backing off"
    )
    assert retry_decision(502, {}, b"", 3, NOW, jitter=0.5) == RetryAfter(
        3.0, "HTTP 502, backing off"
    )


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_attempts=20)
    assert retry_decision(503, {}, b"", 10, NOW, policy=policy) == RetryAfter(
        30.0, "HTTP 503, backing off"
    )


def test_secondary_wait_is_capped_by_maximum_wait() -> None:
    policy = RetryPolicy(max_attempts=20, max_rate_limit_wait=300)
    decision = retry_decision(403, {}, SECONDARY, 4, NOW, policy=policy)
    assert decision == GiveUp(
        "secondary rate limit: reset in 480 s is beyond the maximum wait", NOW + 480
    )


def test_retry_after_as_http_date() -> None:
    # NOW is 2023-11-14T22:13:20Z, so this date is 60 s ahead.
    decision = retry_decision(429, {"retry-after": "Tue, 14 Nov 2023 22:14:20 GMT"}, b"", 1, NOW)
    assert decision == RetryAfter(60.0, "secondary rate limit (retry-after)")


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_factor"):
        RetryPolicy(backoff_factor=0.5)


def test_rate_limit_status_from_headers() -> None:
    headers = {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "4990",
        "X-RateLimit-Reset": "1700003600",
        "X-RateLimit-Used": "10",
        "X-RateLimit-Resource": "core",
    }
    assert RateLimitStatus.from_headers(headers) == RateLimitStatus(
        5000, 4990, 1_700_003_600.0, 10, "core"
    )
    assert RateLimitStatus.from_headers({"x-ratelimit-limit": "5000"}) is None
    assert RateLimitStatus.from_headers({**headers, "X-RateLimit-Reset": "soon"}) is None


header_values = st.one_of(
    st.integers(-(10**6), 10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet="0123456789 -.eEinfaGMT,:", max_size=12),
)
headers_strategy = st.dictionaries(
    st.sampled_from(
        ["retry-after", "x-ratelimit-remaining", "x-ratelimit-reset", "X-RateLimit-Remaining"]
    ),
    header_values,
    max_size=4,
)
policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 10),
    backoff_base=st.floats(0, 10),
    backoff_factor=st.floats(1, 4),
    backoff_cap=st.floats(0, 60),
    max_rate_limit_wait=st.floats(0, 3600),
    secondary_min_wait=st.floats(0, 120),
)


@given(
    status=st.one_of(st.none(), st.integers(100, 599)),
    headers=headers_strategy,
    body=st.sampled_from([b"", SECONDARY, b"not json", b'{"message": "Not Found"}']),
    attempt=st.integers(1, 50),
    now=st.floats(0, 4e9),
    policy=policies,
    jitter=st.floats(allow_nan=True, allow_infinity=True),
)
def test_waits_are_bounded(
    status: int | None,
    headers: dict[str, str],
    body: bytes,
    attempt: int,
    now: float,
    policy: RetryPolicy,
    jitter: float,
) -> None:
    decision = retry_decision(status, headers, body, attempt, now, policy=policy, jitter=jitter)
    if attempt >= policy.max_attempts:
        assert isinstance(decision, GiveUp)
    if isinstance(decision, RetryAfter):
        assert decision.seconds >= 0
        if status is None or status >= 500:
            assert decision.seconds <= policy.backoff_cap
        else:
            assert status in (403, 429)
            assert decision.seconds <= policy.max_rate_limit_wait
    elif decision.reset_at is not None:
        assert decision.reset_at >= now


@given(
    status=st.integers(400, 499).filter(lambda s: s not in (403, 429)),
    headers=headers_strategy,
    body=st.sampled_from([b"", SECONDARY]),
    attempt=st.integers(1, 3),
)
def test_other_client_errors_are_never_retried(
    status: int, headers: dict[str, str], body: bytes, attempt: int
) -> None:
    assert retry_decision(status, headers, body, attempt, NOW) == GiveUp(
        f"HTTP {status} is not retryable"
    )


@given(attempt=st.integers(1, 3), jitter=st.floats(0, 1))
def test_server_error_waits_grow(attempt: int, jitter: float) -> None:
    first = retry_decision(502, {}, b"", attempt, NOW, jitter=jitter)
    second = retry_decision(502, {}, b"", attempt + 1, NOW, jitter=jitter)
    assert isinstance(first, RetryAfter)
    if isinstance(second, RetryAfter):
        assert second.seconds >= first.seconds
    assert DEFAULT_POLICY.max_attempts == 4
