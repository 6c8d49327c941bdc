"""GitHub App authentication: the App JWT and cached installation access tokens."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from gidgethub import sansio

log = logging.getLogger(__name__)

# GitHub refuses App JWTs living longer than 10 minutes from iat; iat is back-dated by a
# minute for clock drift, so exp = now + 9 min keeps the lifetime at exactly 10 min.
JWT_BACKDATE_SECONDS = 60
JWT_EXPIRES_AFTER_SECONDS = 9 * 60
DEFAULT_REFRESH_MARGIN = 5 * 60.0

PrivateKey = str | bytes | RSAPrivateKey


class GitHubAuthError(Exception):
    """Authentication as the App or an installation failed; never carries key or token text."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def load_private_key(private_key: PrivateKey) -> RSAPrivateKey:
    """Parse an RSA private key in PEM form, or raise a GitHubAuthError that omits the key."""
    if isinstance(private_key, RSAPrivateKey):
        return private_key
    data = private_key.encode() if isinstance(private_key, str) else private_key
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, RSAPrivateKey):
        # `from None`: the parser's own error could echo part of the input.
        raise GitHubAuthError("PRIVATE_KEY is not a valid RSA private key in PEM form") from None
    return key


def app_jwt(app_id: int | str, private_key: PrivateKey, *, now: float) -> str:
    """Sign a GitHub App JWT (RS256) issued a minute in the past and valid for 10 minutes."""
    issued_at = int(now) - JWT_BACKDATE_SECONDS
    claims = {"iat": issued_at, "exp": int(now) + JWT_EXPIRES_AFTER_SECONDS, "iss": str(app_id)}
    return jwt.encode(claims, load_private_key(private_key), algorithm="RS256")


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token and when it expires (epoch seconds)."""

    token: str = field(repr=False)
    expires_at: float


class InstallationTokens:
    """Per-installation cache of installation access tokens, refreshed before they expire."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        app_id: int | str,
        private_key: PrivateKey,
        clock: Callable[[], float],
        user_agent: str,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._app_id = str(app_id)
        self._key = load_private_key(private_key)
        self._clock = clock
        self._user_agent = user_agent
        self._refresh_margin = refresh_margin
        self._tokens: dict[int, InstallationToken] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self.fetches = 0

    def __repr__(self) -> str:
        return (
            f"InstallationTokens(base_url={self._base_url!r}, app_id={self._app_id!r}, "
            f"cached={sorted(self._tokens)})"
        )

    def app_jwt(self) -> str:
        """A fresh App JWT signed with this App's key at the injected clock's time."""
        return app_jwt(self._app_id, self._key, now=self._clock())

    async def get(self, installation_id: int) -> str:
        """Return a token for the installation, fetching one if none is fresh enough."""
        cached = self._fresh(installation_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            # Whoever held the lock before us may have fetched one already.
            cached = self._fresh(installation_id)
            if cached is not None:
                return cached
            token = await self._fetch(installation_id)
            self._tokens[installation_id] = token
            return token.token

    def invalidate(self, installation_id: int, *, token: str | None = None) -> None:
        """Forget the cached token after a 401; with `token`, only if that one is still cached."""
        current = self._tokens.get(installation_id)
        if current is not None and (token is None or current.token == token):
            del self._tokens[installation_id]

    def _fresh(self, installation_id: int) -> str | None:
        current = self._tokens.get(installation_id)
        if current is None or self._clock() >= current.expires_at - self._refresh_margin:
            return None
        return current.token

    async def _fetch(self, installation_id: int) -> InstallationToken:
        url = sansio.format_url(
            "/app/installations/{id}/access_tokens",
            {"id": installation_id},
            base_url=self._base_url,
        )
        headers = sansio.create_headers(self._user_agent, jwt=self.app_jwt())
        self.fetches += 1
        async with self._session.post(url, headers=headers) as response:
            status = response.status
            body = await response.read()
        if status != 201:
            raise GitHubAuthError(
                f"installation token request for installation {installation_id} failed: "
                f"HTTP {status}{_github_message(body)}",
                status=status,
            )
        try:
            payload = json.loads(body)
            token = str(payload["token"])
            expires_at = datetime.fromisoformat(str(payload["expires_at"])).timestamp()
        except (ValueError, KeyError, TypeError):
            raise GitHubAuthError(
                f"installation token response for installation {installation_id} is malformed"
            ) from None
        log.info("installation token fetched for installation %s", installation_id)
        return InstallationToken(token, expires_at)


def _github_message(body: bytes) -> str:
    """The `message` of a GitHub error body, as a suffix (tokens never appear in error bodies)."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {message}" if isinstance(message, str) and message else ""
