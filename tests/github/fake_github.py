"""A tiny scripted GitHub for the auth/client tests: token endpoint + REST routes on 127.0.0.1."""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_aiohttp import AiohttpServer
from yarl import URL

START = 1_700_000_000.0
_TOKEN_ROUTE = re.compile(r"^/app/installations/(\d+)/access_tokens$")


@dataclass(frozen=True)
class KeyPair:
    """An RSA key pair as PEM text (private) and a key object (public)."""

    private_pem: str
    public_key: rsa.RSAPublicKey


def make_keypair() -> KeyPair:
    """Generate a 2048-bit RSA key pair (slow-ish: call once per module)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return KeyPair(pem, key.public_key())


@dataclass
class FakeClock:
    """A wall clock (epoch seconds) that moves only when told."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class RecordingSleep:
    """An injected sleep: records each wait and advances the fake clock by it."""

    clock: FakeClock
    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@dataclass(frozen=True)
class Reply:
    """One scripted response; `disconnect` drops the connection instead of answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    next_page: str | None = None
    disconnect: bool = False


@dataclass(frozen=True)
class Seen:
    """A request the fake received (token requests excluded)."""

    method: str
    path: str
    query: str
    authorization: str
    user_agent: str
    body: bytes


async def serve(aiohttp_server: AiohttpServer, github: FakeGitHub) -> FakeGitHub:
    """Serve the fake on 127.0.0.1 (random port) and set its `base_url`, prefix included."""
    server = await aiohttp_server(github.app())
    github.base_url = str(server.make_url(github.prefix or "/")).removesuffix("/")
    return github


class FakeGitHub:
    """Serves installation tokens (checking the App JWT) and scripted API responses."""

    def __init__(
        self, public_key: rsa.RSAPublicKey, app_id: int, clock: FakeClock, prefix: str = ""
    ) -> None:
        self.public_key = public_key
        self.app_id = app_id
        self.clock = clock
        self.prefix = prefix
        self.base_url = ""
        self.token_lifetime = 3600.0
        self.token_failures: deque[int] = deque()
        self.requests: list[Seen] = []
        self.token_requests: list[int] = []
        self.jwt_failures: list[str] = []
        self.valid_tokens: set[str] = set()
        self._scripts: dict[tuple[str, str], deque[Reply]] = {}

    def script(self, method: str, path: str, *replies: Reply) -> None:
        """Queue replies for `method path` (path without prefix); later calls get 200 {}."""
        self._scripts.setdefault((method, path), deque()).extend(replies)

    def revoke_all(self) -> None:
        """Make every token issued so far answer 401, as after a revocation."""
        self.valid_tokens.clear()

    def calls(self, method: str, path: str) -> list[Seen]:
        """Requests received for `method path`."""
        return [seen for seen in self.requests if (seen.method, seen.path) == (method, path)]

    def app(self) -> web.Application:
        """The aiohttp application to serve."""
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", self._handle)
        return application

    def verify_jwt(self, token: str) -> str | None:
        """Why this App JWT would be refused, or None if GitHub would accept it."""
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["RS256"],
                # Checked by hand below against the fake clock, not the real one.
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
            )
        except jwt.InvalidTokenError as exc:
            return f"undecodable: {exc}"
        now = self.clock()
        if claims.get("iss") != str(self.app_id):
            return f"iss {claims.get('iss')!r}"
        if not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int):
            return "iat/exp missing"
        if claims["iat"] > now:
            return "iat in the future"
        if claims["exp"] - claims["iat"] > 600:
            return "lifetime over 10 minutes"
        if claims["exp"] <= now:
            return "expired"
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith(self.prefix + "/"):
            return _json(404, {"message": f"Not Found (no {self.prefix!r} prefix)"})
        path = request.path.removeprefix(self.prefix)
        authorization = request.headers.get("Authorization", "")
        match = _TOKEN_ROUTE.match(path)
        if request.method == "POST" and match:
            return self._issue_token(int(match.group(1)), authorization)
        self.requests.append(
            Seen(
                request.method,
                path,
                request.query_string,
                authorization,
                request.headers.get("User-Agent", ""),
                await request.read(),
            )
        )
        refusal = self._check_auth(authorization)
        if refusal is not None:
            return _json(401, {"message": refusal})
        queue = self._scripts.get((request.method, path))
        reply = queue.popleft() if queue else Reply(body={})
        if reply.disconnect:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        headers = dict(reply.headers)
        if reply.next_page is not None:
            url = request.url.origin().join(URL(self.prefix + reply.next_page))
            headers["Link"] = f'<{url}>; rel="next", <{url}>; rel="last"'
        return _json(reply.status, reply.body, headers)

    def _check_auth(self, authorization: str) -> str | None:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return self.verify_jwt(credential)
        if scheme.lower() == "token" and credential in self.valid_tokens:
            return None
        return "Bad credentials"

    def _issue_token(self, installation_id: int, authorization: str) -> web.Response:
        self.token_requests.append(installation_id)
        scheme, _, credential = authorization.partition(" ")
        refusal = "not a bearer JWT" if scheme.lower() != "bearer" else self.verify_jwt(credential)
        if refusal is not None:
            self.jwt_failures.append(refusal)
            return _json(401, {"message": "A JSON web token could not be decoded"})
        if self.token_failures:
            return _json(self.token_failures.popleft(), {"message": "Server Error"})
        token = f"ghs_fake_{installation_id}_{len(self.token_requests)}"
        self.valid_tokens.add(token)
        expires = datetime.fromtimestamp(self.clock() + self.token_lifetime, UTC)
        return _json(201, {"token": token, "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )
