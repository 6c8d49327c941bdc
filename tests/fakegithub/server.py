"""The aiohttp application: route table and the middleware that makes it behave like GitHub.

Order of the middleware chain: request log -> injected faults -> unknown routes -> auth ->
rate limit -> the route (routes raise ApiError for GitHub-shaped errors).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.fakegithub import (
    routes_actions,
    routes_apps,
    routes_checks,
    routes_git,
    routes_issues,
    routes_pulls,
    routes_repos,
    routes_statuses,
    routes_web,
)
from tests.fakegithub.auth import AuthError, verify_jwt
from tests.fakegithub.core import Actor, Core, RequestRecord
from tests.fakegithub.respond import (
    ACTOR,
    CORE,
    DOCS,
    INSTALLATION_ID,
    JWT_APP,
    RATE_KEY,
    WHO,
    ApiError,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Routes that need no credentials: the tarball download URL carries its own token, the manifest
# conversion its one-time code; the manifest flow's web pages stand for a signed-in browser.
PUBLIC_PREFIXES = ("/_codeload/", "/app-manifests/", "/settings/apps/new", "/organizations/")


# The "find the installation" lookups are App-JWT routes outside /app.
INSTALLATION_LOOKUP = re.compile(r"/(repos/[^/]+/[^/]+|orgs/[^/]+|users/[^/]+)/installation")


def _route_kind(request: web.Request) -> str:
    if request.path.startswith(PUBLIC_PREFIXES):
        return "public"
    if request.path == "/app" or request.path.startswith("/app/"):
        return "jwt"
    if INSTALLATION_LOOKUP.fullmatch(request.path):
        return "jwt"
    return "token"


@web.middleware
async def log_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every request with its status and duration."""
    core = request.app[CORE]
    started = time.perf_counter()
    response = await handler(request)
    who = request.get(WHO)
    core.request_log.append(
        RequestRecord(
            method=request.method,
            path=request.path,
            query=request.query_string,
            status=response.status,
            ms=(time.perf_counter() - started) * 1000,
            installation_id=request.get(INSTALLATION_ID),
            app=who,
            body=await _json_body(request),
        )
    )
    return response


async def _json_body(request: web.Request) -> Any:
    """The request's JSON body (aiohttp keeps what the route read), or None."""
    if not request.body_exists:
        return None
    try:
        return json.loads(await request.read())
    except ValueError:
        return None


@web.middleware
async def errors_and_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Injected latency and HTTP faults; ApiError and unknown routes to GitHub-shaped answers."""
    core = request.app[CORE]
    if core.faults.latency > 0:
        await asyncio.sleep(core.faults.latency)
    if core.faults.holding:
        hold = core.faults.take_hold(request.method, request.path, await request.read())
        if hold is not None:
            hold.reached.set()
            await hold.release.wait()
    public = request.path.startswith(PUBLIC_PREFIXES)
    fault = core.faults.take_http_fault(request.path, method=request.method, public=public)
    if fault is not None:
        return ApiError(fault.status, fault.message, headers=fault.headers).response()
    route = request.match_info.route
    if route.resource is None or request.match_info.http_exception is not None:
        core.unknown_routes.append(f"{request.method} {request.path}")
        return ApiError(404, "Not Found").response()
    try:
        response = await handler(request)
    except ApiError as exc:
        return exc.response()
    lost = core.faults.take_http_fault(
        request.path, method=request.method, after_handler=True, public=public
    )
    if lost is not None:
        return ApiError(lost.status, lost.message, headers=lost.headers).response()
    transform = core.faults.take_reshape(request.method, request.path)
    if transform is not None and isinstance(response, web.Response) and response.body:
        assert isinstance(response.body, bytes)
        reshaped = web.json_response(transform(json.loads(response.body)), status=response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-type", "content-length"):
                reshaped.headers[name] = value
        return reshaped
    return response


def _credentials(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """App JWT on /app routes, an unexpired installation token everywhere else."""
    core = request.app[CORE]
    kind = _route_kind(request)
    if kind == "public":
        return await handler(request)
    credential = _credentials(request)
    if credential is None:
        raise ApiError(401, "Requires authentication")
    if kind == "jwt":
        try:
            app = verify_jwt(core.world, credential)
        except AuthError as exc:
            if core.world.live_token(credential) is not None:
                raise ApiError(401, "A JSON web token could not be decoded") from exc
            raise ApiError(exc.status, exc.message) from exc
        request[JWT_APP] = app
        request[WHO] = "jwt"
        request[RATE_KEY] = f"app:{app.id}"
        return await handler(request)
    token = core.world.live_token(credential)
    if token is None:
        if credential.count(".") == 2:  # a JWT where an installation token belongs
            raise ApiError(403, "Resource not accessible by integration")
        raise ApiError(401, "Bad credentials")
    installation = core.world.installations.get(token.installation_id)
    if installation is None:  # uninstalled since the token was made
        raise ApiError(401, "Bad credentials")
    app = core.world.apps[token.app_id]
    request[ACTOR] = Actor(core.world.bot(app), app, installation)
    request[INSTALLATION_ID] = installation.id
    request[WHO] = "ci" if app.id == core.ci_app.id else "autopack"
    request[RATE_KEY] = f"installation:{installation.id}"
    return await handler(request)


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Spend one unit of the caller's hourly budget; x-ratelimit-* on every answer."""
    key = request.get(RATE_KEY)
    if key is None:
        return await handler(request)
    budget = request.app[CORE].rate_limits.budget(key)
    exhausted = budget.used >= budget.limit
    if not exhausted:
        budget.used += 1
    headers = {
        "x-ratelimit-limit": str(budget.limit),
        "x-ratelimit-remaining": str(max(budget.limit - budget.used, 0)),
        "x-ratelimit-reset": str(budget.reset),
        "x-ratelimit-used": str(budget.used),
        "x-ratelimit-resource": "core",
    }
    if exhausted:
        who = key.split(":", 1)
        subject = "installation ID" if who[0] == "installation" else "app ID"
        message = f"API rate limit exceeded for {subject} {who[1]}."
        error = ApiError(403, message, headers=headers)
        return error.response()
    try:
        response = await handler(request)
    except ApiError as exc:
        exc.headers.update(headers)
        raise
    response.headers.update(headers)
    return response


def build_app(core: Core) -> web.Application:
    """The simulator's aiohttp application."""
    app = web.Application(
        middlewares=[log_requests, errors_and_faults, authenticate, rate_limit],
        client_max_size=64 * 1024 * 1024,
    )
    app[CORE] = core
    for module in (
        routes_apps,
        routes_git,
        routes_repos,
        routes_issues,
        routes_pulls,
        routes_checks,
        routes_statuses,
        routes_actions,
        routes_web,
    ):
        app.router.add_routes(module.routes)
    return app


__all__ = ["DOCS", "build_app"]
