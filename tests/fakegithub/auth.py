"""App keys, App JWT verification as GitHub applies it, installation tokens and rate budgets."""

from __future__ import annotations

import functools
import secrets
import time
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakegithub.state import AppRegistration, Token, World

CLOCK_SKEW = 60  # seconds GitHub tolerates on `iat` being ahead of its clock
MAX_JWT_AHEAD = 600  # `exp` may be at most 10 minutes in the future
TOKEN_LIFETIME = 3600


@functools.cache
def _keypair() -> tuple[str, str]:
    """One 2048-bit RSA key per process: generation is slow, and every app may share it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY", as GitHub issues
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def register_app(
    world: World,
    slug: str,
    name: str,
    owner: str = "autopack-org",
    owner_type: str = "Organization",
) -> AppRegistration:
    """Create an app with the session key and a fresh webhook secret."""
    private, public = _keypair()
    app = AppRegistration(
        id=world.next_id("app"),
        slug=slug,
        name=name,
        private_key_pem=private,
        webhook_secret=secrets.token_hex(20),
        public_key_pem=public,
        client_id=f"Iv1.{secrets.token_hex(8)}",
        owner_login=owner,
    )
    world.apps[app.id] = app
    world.user(owner, owner_type)
    world.bot(app)
    return app


class AuthError(Exception):
    """A credential GitHub would refuse: status and message as GitHub answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def verify_jwt(world: World, raw: str, now: float | None = None) -> AppRegistration:
    """Check an App JWT the way GitHub does and return the app it authenticates."""
    now = time.time() if now is None else now
    try:
        unverified = jwt.decode(raw, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthError(401, "A JSON web token could not be decoded") from exc
    iss = unverified.get("iss")
    try:
        app = world.apps[int(str(iss))]
    except (TypeError, ValueError, KeyError) as exc:
        raise AuthError(401, "Integration not found") from exc
    try:
        claims = jwt.decode(
            raw,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(401, "A JSON web token could not be decoded") from exc
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or iat > now + CLOCK_SKEW:
        raise AuthError(
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued.",
        )
    if not isinstance(exp, int) or exp <= now:
        raise AuthError(
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires.",
        )
    if exp > now + MAX_JWT_AHEAD + 1:  # +1: both sides round down to whole seconds
        raise AuthError(401, "'Expiration time' claim ('exp') is too far in the future.")
    return app


def issue_token(world: World, installation_id: int, app_id: int) -> Token:
    """A fresh installation token valid for one hour."""
    token = Token(
        token="ghs_" + secrets.token_urlsafe(27)[:36],
        installation_id=installation_id,
        app_id=app_id,
        expires_at=time.time() + TOKEN_LIFETIME,
    )
    world.tokens[token.token] = token
    return token


@dataclass
class Budget:
    """One hourly rate-limit window."""

    limit: int
    used: int = 0
    reset: int = field(default_factory=lambda: int(time.time()) + 3600)


class RateLimits:
    """A real per-installation (and per-app for JWT calls) request budget."""

    def __init__(self, limit: int = 5000) -> None:
        self.limit = limit
        self._budgets: dict[str, Budget] = {}

    def set_limit(self, limit: int) -> None:
        """Change the hourly limit for every budget (existing windows keep their usage)."""
        self.limit = limit
        for budget in self._budgets.values():
            budget.limit = limit

    def budget(self, key: str) -> Budget:
        """The current window for `key` ("installation:N", "app:N" or "anon")."""
        budget = self._budgets.get(key)
        if budget is None or budget.reset <= time.time():
            budget = Budget(self.limit)
            self._budgets[key] = budget
        return budget

    def reset_all(self) -> None:
        """Start a fresh window for everybody (as if an hour passed)."""
        self._budgets.clear()
