"""gidgethub clients for an installation or the App itself, with auth refresh and retries.

gidgethub builds URLs, headers, pagination (`getiter` follows `Link: rel="next"`) and turns
error responses into exceptions; it neither retries nor tells rate limits apart. We override
its one I/O hook, `_request`, so every attempt gets fresh credentials and the retry policy of
`ratelimit.py`, and then hand the final response back to gidgethub to decipher as usual.
"""

from __future__ import annotations

import abc
import asyncio
import http
import logging
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import gidgethub
import gidgethub.aiohttp
from gidgethub import sansio

from app import installed_version, metrics
from app.github.auth import (
    DEFAULT_REFRESH_MARGIN,
    GitHubAuthError,
    InstallationTokens,
    PrivateKey,
)
from app.github.ratelimit import (
    DEFAULT_POLICY,
    RETRYABLE_SERVER_STATUSES,
    GiveUp,
    RateLimitStatus,
    RetryPolicy,
    retry_decision,
)

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
Jitter = Callable[[], float]

# No response at all: the request may or may not have reached GitHub.
_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)
# Refresh the App JWT well inside its 9 minutes of remaining validity.
_APP_JWT_REUSE_SECONDS = 5 * 60.0
# The note a failed request's exception carries, naming the call (see `failed_call`).
_CALL_NOTE = "GitHub call: "
# A request carrying this header is not repeated after a failure that may have landed (a 5xx or
# a lost connection): see app/github/create.py, which looks before it creates again.
NO_BLIND_RETRY_HEADER = "x-autopack-no-blind-retry"


def failed_call(exc: BaseException) -> str | None:
    """The call ("POST /repos/o/r/git/trees") a GitHub client exception came from, if known."""
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(_CALL_NOTE):
            return note.removeprefix(_CALL_NOTE)
    return None


class RateLimited(gidgethub.HTTPException):
    """GitHub's rate limit would make us wait too long (or too often); retry after `reset_at`."""

    def __init__(
        self, status: int, headers: Mapping[str, str], *, reset_at: float, reason: str
    ) -> None:
        when = datetime.fromtimestamp(reset_at, UTC).isoformat(timespec="seconds")
        super().__init__(
            http.HTTPStatus(status),
            f"GitHub rate limit: {reason}; retry after {when}",
            headers=headers,
        )
        self.reset_at = reset_at


def default_user_agent() -> str:
    """`autopack/<installed version>`, as GitHub asks every client to identify itself."""
    return f"autopack/{installed_version()}"


class RetryingGitHubAPI(gidgethub.aiohttp.GitHubAPI):
    """A gidgethub client that authenticates each attempt and retries per `RetryPolicy`."""

    installation_label = "app"  # who the requests count against in /metrics

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        user_agent: str,
        clock: Clock,
        sleep: Sleep,
        policy: RetryPolicy = DEFAULT_POLICY,
        jitter: Jitter = random.random,
    ) -> None:
        self._status: RateLimitStatus | None = None
        super().__init__(session, user_agent, base_url=base_url)
        self._clock = clock
        self._sleep = sleep
        self._policy = policy
        self._jitter = jitter
        self.calls = 0

    # gidgethub keeps its own `rate_limit` (set only from successful responses); ours is set
    # from every response, errors included, which is what /metrics wants.
    @property  # type: ignore[override]
    def rate_limit(self) -> RateLimitStatus | None:
        """The rate-limit headers of the last response (remaining decremented per request)."""
        return self._status

    @rate_limit.setter
    def rate_limit(self, value: object) -> None:
        """Ignore gidgethub's own bookkeeping; `_request` records every response."""

    async def sleep(self, seconds: float) -> None:
        """Sleep through the injected sleep function (tests record instead of sleeping)."""
        await self._sleep(seconds)

    async def _make_request(
        self,
        method: str,
        url: str,
        url_vars: Mapping[str, Any] | None,
        data: Any,
        accept: str,
        *args: Any,
        **kwargs: Any,
    ) -> tuple[bytes, str | None, int]:
        # Whatever fails after the retries names the call, so a report can say which one.
        try:
            return await super()._make_request(method, url, url_vars, data, accept, *args, **kwargs)
        except (gidgethub.HTTPException, *_CONNECTION_ERRORS) as exc:
            filled = sansio.format_url(url, url_vars or {}, base_url=self.base_url)
            path = urllib.parse.urlsplit(filled).path
            exc.add_note(f"{_CALL_NOTE}{method} {path}")
            raise

    @abc.abstractmethod
    async def _authorization(self) -> str:
        """The `Authorization` header value for the next attempt."""

    @abc.abstractmethod
    def _unauthorized(self, authorization: str) -> None:
        """Forget the credential that GitHub just refused with a 401."""

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        # POST/PATCH are retried on 5xx and lost connections too, although GitHub may already
        # have acted on them: every write Autopack makes is idempotent by design (stored ids,
        # `Autopack-Attempt:` commit trailers, lookups before creates), so a repeat is safe and
        # giving up would fail a run on a transient outage.
        explicit_auth = any(key.lower() == "authorization" for key in headers)
        blind_retry = not any(key.lower() == NO_BLIND_RETRY_HEADER for key in headers)
        headers = {k: v for k, v in headers.items() if k.lower() != NO_BLIND_RETRY_HEADER}
        attempt = 1
        refreshed = False
        while True:
            request_headers = dict(headers)
            authorization = ""
            try:
                if not explicit_auth:
                    authorization = await self._authorization()
                    request_headers["authorization"] = authorization
                self.calls += 1
                async with self._session.request(
                    method, url, headers=request_headers, data=body
                ) as response:
                    status, response_headers = response.status, response.headers
                    response_body = await response.read()
            except _CONNECTION_ERRORS as exc:
                if not blind_retry or not await self._backoff(
                    None, {}, b"", attempt, method, url, type(exc).__name__
                ):
                    raise
                attempt += 1
                continue
            except GitHubAuthError as exc:
                # The token endpoint is as flaky as any other; its 4xx are real auth failures.
                if exc.status not in RETRYABLE_SERVER_STATUSES or not await self._backoff(
                    exc.status, {}, b"", attempt, method, url, f"token request HTTP {exc.status}"
                ):
                    raise
                attempt += 1
                continue
            self._record(response_headers)
            metrics.observe_github_call(
                self.installation_label, method, url, self.base_url, status, response_headers
            )
            if status == 401 and not explicit_auth and not refreshed:
                # A token can be revoked before its expiry: fetch a new one, once.
                refreshed = True
                self._unauthorized(authorization)
                log.info("401 from %s %s: refreshing credentials and retrying once", method, url)
                continue
            if status < 400 or (status >= 500 and not blind_retry):
                return status, response_headers, response_body
            if await self._backoff(
                status, response_headers, response_body, attempt, method, url, f"HTTP {status}"
            ):
                attempt += 1
                continue
            return status, response_headers, response_body

    async def _backoff(
        self,
        status: int | None,
        headers: Mapping[str, str],
        body: bytes,
        attempt: int,
        method: str,
        url: str,
        what: str,
    ) -> bool:
        """Sleep and return True if the policy retries; raise RateLimited on a long limit."""
        now = self._clock()
        decision = retry_decision(
            status, headers, body, attempt, now, policy=self._policy, jitter=self._jitter()
        )
        if isinstance(decision, GiveUp):
            if decision.reset_at is not None and status is not None:
                raise RateLimited(
                    status, headers, reset_at=decision.reset_at, reason=decision.reason
                )
            return False
        log.warning(
            "%s %s: %s (%s); retry %d in %.1f s",
            method,
            url,
            what,
            decision.reason,
            attempt,
            decision.seconds,
        )
        await self._sleep(decision.seconds)
        return True

    def _record(self, headers: Mapping[str, str]) -> None:
        status = RateLimitStatus.from_headers(headers)
        if status is not None:
            self._status = status


class InstallationClient(RetryingGitHubAPI):
    """A client acting as one installation, with its access token refreshed transparently."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: InstallationTokens,
        installation_id: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(session, **kwargs)
        self._tokens = tokens
        self.installation_id = installation_id
        self.installation_label = str(installation_id)

    def __repr__(self) -> str:
        return f"InstallationClient({self.installation_id}, base_url={self.base_url!r})"

    async def _authorization(self) -> str:
        return f"token {await self._tokens.get(self.installation_id)}"

    def _unauthorized(self, authorization: str) -> None:
        self._tokens.invalidate(self.installation_id, token=authorization.removeprefix("token "))


class AppClient(RetryingGitHubAPI):
    """A client acting as the App itself (App JWT), for the `/app/...` routes."""

    def __init__(
        self, session: aiohttp.ClientSession, tokens: InstallationTokens, **kwargs: Any
    ) -> None:
        super().__init__(session, **kwargs)
        self._tokens = tokens
        self._jwt: tuple[str, float] | None = None

    def __repr__(self) -> str:
        return f"AppClient(base_url={self.base_url!r})"

    async def _authorization(self) -> str:
        now = self._clock()
        if self._jwt is None or now >= self._jwt[1] + _APP_JWT_REUSE_SECONDS:
            self._jwt = (self._tokens.app_jwt(), now)
        return f"bearer {self._jwt[0]}"

    def _unauthorized(self, authorization: str) -> None:
        self._jwt = None


class GitHubApp:
    """Makes clients for the App and its installations; one per process, passed around."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        app_id: int | str,
        private_key: PrivateKey,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        jitter: Jitter = random.random,
        user_agent: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._session = session
        self._user_agent = user_agent or default_user_agent()
        self._client_args: dict[str, Any] = {
            "base_url": base_url,
            "user_agent": self._user_agent,
            "clock": clock,
            "sleep": sleep,
            "policy": policy,
            "jitter": jitter,
        }
        self.tokens = InstallationTokens(
            session,
            base_url=base_url,
            app_id=app_id,
            private_key=private_key,
            clock=clock,
            user_agent=self._user_agent,
            refresh_margin=refresh_margin,
        )
        self._installations: dict[int, InstallationClient] = {}
        self._app_client: AppClient | None = None

    def __repr__(self) -> str:
        return f"GitHubApp(base_url={self._client_args['base_url']!r})"

    def installation(self, installation_id: int) -> InstallationClient:
        """The (cached) client acting as the given installation."""
        client = self._installations.get(installation_id)
        if client is None:
            client = InstallationClient(
                self._session, self.tokens, installation_id, **self._client_args
            )
            self._installations[installation_id] = client
        return client

    async def app_client(self) -> AppClient:
        """The (cached) client authenticated with the App JWT, for `/app/...` routes."""
        if self._app_client is None:
            self._app_client = AppClient(self._session, self.tokens, **self._client_args)
        return self._app_client

    def rate_limits(self) -> dict[int, RateLimitStatus]:
        """Last seen rate-limit status per installation (for /metrics)."""
        return {
            installation_id: client.rate_limit
            for installation_id, client in self._installations.items()
            if client.rate_limit is not None
        }

    @property
    def calls(self) -> int:
        """API requests sent by all clients (token requests excluded; see `tokens.fetches`)."""
        app_calls = self._app_client.calls if self._app_client is not None else 0
        return app_calls + sum(client.calls for client in self._installations.values())
