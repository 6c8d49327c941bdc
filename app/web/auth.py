"""The operator's credential: `AUTOPACK_API_TOKEN` as a bearer token or a derived session cookie.

The REST API takes `Authorization: Bearer <token>`; the dashboard takes either that or the
`autopack_session` cookie, whose value is an HMAC of the token (never the token itself), so a
leaked cookie does not reveal the token and changing the token logs every browser out.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from app.config import Settings
from app.web.keys import SETTINGS

COOKIE_NAME = "autopack_session"
# A fixed label: the cookie is HMAC-SHA256(key=token, msg=label), so it can be recomputed to check.
_COOKIE_LABEL = b"autopack-dashboard-session-v1"
_BEARER = "bearer "

NOT_CONFIGURED_MESSAGE = "the operator has not set AUTOPACK_API_TOKEN: the API is disabled"
WRONG_CREDENTIALS_MESSAGE = (
    "missing or wrong bearer token (Authorization: Bearer <AUTOPACK_API_TOKEN>)"
)


def _token(settings: Settings) -> str | None:
    if settings.api_token is None:
        return None
    value = settings.api_token.get_secret_value()
    # An empty token would let an empty Authorization header in: treat it as not configured.
    return value or None


def token_configured(settings: Settings) -> bool:
    """True when the operator has set a non-empty `AUTOPACK_API_TOKEN`."""
    return _token(settings) is not None


def bearer_ok(request: web.Request) -> bool:
    """True when the request carries `Authorization: Bearer <the configured token>`."""
    token = _token(request.app[SETTINGS])
    header = request.headers.get("Authorization", "")
    if token is None or header[: len(_BEARER)].lower() != _BEARER:
        return False
    return token_matches(request.app[SETTINGS], header[len(_BEARER) :].strip())


def token_matches(settings: Settings, offered: str) -> bool:
    """True when `offered` is the configured token (constant time); e.g. a login form's field."""
    token = _token(settings)
    if token is None:
        return False
    return hmac.compare_digest(_bytes(offered), _bytes(token))


def session_cookie_value(settings: Settings) -> str | None:
    """The `autopack_session` cookie value for the configured token (hex HMAC), or None."""
    token = _token(settings)
    if token is None:
        return None
    return hmac.new(token.encode(), _COOKIE_LABEL, hashlib.sha256).hexdigest()


def cookie_ok(request: web.Request) -> bool:
    """True when the request carries a valid `autopack_session` cookie."""
    expected = session_cookie_value(request.app[SETTINGS])
    offered = request.cookies.get(COOKIE_NAME)
    if expected is None or offered is None:
        return False
    return hmac.compare_digest(_bytes(offered), _bytes(expected))


def _bytes(text: str) -> bytes:
    # Header text may hold undecodable bytes as surrogates; a bad header must not become a 500.
    return text.encode("utf-8", "surrogatepass")


def unauthorized(settings: Settings) -> web.Response:
    """The 401 JSON answer for a request without valid credentials."""
    message = WRONG_CREDENTIALS_MESSAGE if token_configured(settings) else NOT_CONFIGURED_MESSAGE
    return web.json_response(
        {"error": "unauthorized", "message": message},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="autopack"'},
    )
