"""HTTP helpers for the routes: GitHub's error shape, JSON bodies, pagination, request context."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from aiohttp import web
from yarl import URL

from tests.fakegithub.core import Actor, Core
from tests.fakegithub.state import AppRegistration, Repo

DOCS = "https://docs.github.com/rest"
CORE: web.AppKey[Core] = web.AppKey("fakegithub_core", Core)
# What the auth middleware learned about the caller.
ACTOR = web.RequestKey("fakegithub_actor", Actor)
JWT_APP = web.RequestKey("fakegithub_jwt_app", AppRegistration)
WHO = web.RequestKey("fakegithub_who", str)  # "autopack" | "ci" | "jwt"
INSTALLATION_ID = web.RequestKey("fakegithub_installation_id", int)
RATE_KEY = web.RequestKey("fakegithub_rate_key", str)


class ApiError(Exception):
    """Raised by a route; the middleware answers it in GitHub's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}

    def response(self) -> web.Response:
        """The JSON answer."""
        body: dict[str, Any] = {"message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        body["documentation_url"] = DOCS
        body["status"] = str(self.status)
        return web.json_response(body, status=self.status, headers=self.headers)


def not_found() -> NoReturn:
    """404 as GitHub answers it (also for things the token may not see)."""
    raise ApiError(404, "Not Found")


def invalid(message: str = "Validation Failed", errors: list[Any] | None = None) -> NoReturn:
    """422."""
    raise ApiError(422, message, errors if errors is not None else [])


def core_of(request: web.Request) -> Core:
    """The simulator core behind this request."""
    return request.app[CORE]


def actor(request: web.Request) -> Actor:
    """The authenticated installation actor (set by the auth middleware)."""
    value = request.get(ACTOR)
    if not isinstance(value, Actor):
        raise ApiError(401, "Requires authentication")
    return value


def repo_of(request: web.Request) -> Repo:
    """The repository named in the path, if the caller's installation may see it; else 404."""
    core = core_of(request)
    repo = core.world.get_repo(request.match_info["owner"], request.match_info["repo"])
    if repo is None or not actor(request).installation.covers(repo):
        not_found()
    return repo


async def body_of(request: web.Request) -> dict[str, Any]:
    """The JSON object body ({} when empty); 400 on malformed JSON as GitHub answers."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "Problems parsing JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "Problems parsing JSON")
    return data


def int_param(request: web.Request, name: str, default: int) -> int:
    """An integer query parameter (GitHub ignores garbage and uses the default)."""
    try:
        return int(request.query.get(name, default))
    except ValueError:
        return default


def page_bounds(request: web.Request) -> tuple[int, int]:
    """(page, per_page) with GitHub's defaults and the 100 cap."""
    per_page = min(max(int_param(request, "per_page", 30), 1), 100)
    page = max(int_param(request, "page", 1), 1)
    return page, per_page


def paginate(
    request: web.Request,
    items: list[Any],
    wrap: str | None = None,
    status: int = 200,
    extra: dict[str, Any] | None = None,
) -> web.Response:
    """Answer one page of `items` with a Link header (wrapped as {total_count, <wrap>: [...]})."""
    page, per_page = page_bounds(request)
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    base = URL(core_of(request).world.api_url + request.path)

    def link(number: int, rel: str) -> str:
        query = dict(request.query)
        query.update({"per_page": str(per_page), "page": str(number)})
        return f'<{base.with_query(query)}>; rel="{rel}"'

    links = []
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(min(page - 1, last), "prev")]
    headers = {"Link": ", ".join(links)} if links else {}
    body: Any = chunk if wrap is None else {"total_count": len(items), wrap: chunk, **(extra or {})}
    return web.json_response(body, status=status, headers=headers)
