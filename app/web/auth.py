"""The operator's credential: `AUTOPACK_API_TOKEN` as a bearer token or a derived session cookie.

The REST API takes `Authorization: Bearer <token>`; the dashboard takes either that or the
`autopack_session` cookie, whose value is an HMAC of the token (never the token itself), so a
leaked cookie does not reveal the token and changing the token logs every browser out. A wrong
token (bearer or sign-in form) counts against the client's address (`throttle.py`); a client over
the limit is refused before its token is even looked at.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from app.config import Settings
from app.web.keys import LOGIN_THROTTLE, SETTINGS

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


class Throttled(Exception):
    """The client gave too many wrong tokens lately; it may try again in `seconds`."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many wrong tokens: try again in {seconds} s")
        self.seconds = seconds


def client_address(request: web.Request) -> str:
    """The address failed sign-ins are counted against (a proxy's, behind one)."""
    return request.remote or "unknown"


def check_throttle(request: web.Request) -> None:
    """Raise Throttled when the client must wait before offering a token again."""
    wait = request.app[LOGIN_THROTTLE].retry_after(client_address(request))
    if wait is not None:
        raise Throttled(wait)


def count_failure(request: web.Request) -> None:
    """Count a wrong token against the client."""
    request.app[LOGIN_THROTTLE].failed(client_address(request))


def count_success(request: web.Request) -> None:
    """The client signed in: forget its earlier wrong tokens."""
    request.app[LOGIN_THROTTLE].succeeded(client_address(request))


def authenticated(request: web.Request, *, cookie: bool) -> bool:
    """True for a valid bearer token (or, with `cookie`, session cookie); Throttled when the client
    must wait. A wrong bearer token counts as a failed sign-in; a stale cookie does not (a browser
    keeps sending one after the token changed)."""
    check_throttle(request)
    if (cookie and cookie_ok(request)) or bearer_ok(request):
        return True
    if request.headers.get("Authorization", "")[: len(_BEARER)].lower() == _BEARER:
        count_failure(request)
    return False


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


def too_many_attempts(throttled: Throttled) -> web.Response:
    """The 429 JSON answer for a client that gave too many wrong tokens."""
    return web.json_response(
        {"error": "too_many_attempts", "message": str(throttled)},
        status=429,
        headers={"Retry-After": str(throttled.seconds)},
    )


def unauthorized(settings: Settings) -> web.Response:
    """The 401 JSON answer for a request without valid credentials."""
    message = WRONG_CREDENTIALS_MESSAGE if token_configured(settings) else NOT_CONFIGURED_MESSAGE
    return web.json_response(
        {"error": "unauthorized", "message": message},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="autopack"'},
    )
