"""The operator's REST API: runs, their events, repository backlogs and the budget report.

Every route but the OpenAPI document needs `Authorization: Bearer $AUTOPACK_API_TOKEN`
(app/web/auth.py). Query parameters are checked strictly; a bad one is a 400 naming it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from aiohttp import web

from app.web import auth, openapi, params
from app.web.keys import ENGINE, SETTINGS
from app.web.params import BadParameter
from app.web.readmodel import (
    DEFAULT_EVENTS_PAGE,
    DEFAULT_PAGE,
    MAX_EVENTS_PAGE,
    MAX_PAGE,
    RUN_ID,
    Page,
    ReadModel,
    RunFilters,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NO_STORE = {"Cache-Control": "no-store"}


def setup(app: web.Application) -> None:
    """Register the API routes on `app`."""
    app.router.add_get("/api/openapi.json", openapi_document, name="api-openapi")
    app.router.add_get("/api/runs", list_runs, name="api-runs")
    app.router.add_get("/api/runs/{id}", run_detail, name="api-run")
    app.router.add_get("/api/runs/{id}/events", run_events, name="api-run-events")
    app.router.add_get("/api/repos/{owner}/{repo}/backlog", repo_backlog, name="api-backlog")
    app.router.add_get("/api/reports/budget", budget_report, name="api-budget")


def error(status: int, code: str, message: str, parameter: str | None = None) -> web.Response:
    """A JSON error answer: `{"error": code, "message": ..., "parameter"?: ...}`."""
    body: dict[str, Any] = {"error": code, "message": message}
    if parameter is not None:
        body["parameter"] = parameter
    return web.json_response(body, status=status, headers=_NO_STORE)


def _api(*parameters: str) -> Callable[[Handler], Handler]:
    """Guard a handler: 429 for a client that gave too many wrong tokens, 401 unless the bearer
    token matches; 400 naming a query parameter it does not take, or a bad value."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                if not auth.authenticated(request, cookie=False):
                    return auth.unauthorized(request.app[SETTINGS])
            except auth.Throttled as throttled:
                return auth.too_many_attempts(throttled)
            try:
                params.check_names(request.query, parameters)
                return await handler(request)
            except BadParameter as exc:
                return error(400, "bad_request", exc.message, exc.parameter)

        return guarded

    return decorate


def _ok(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, headers=_NO_STORE)


def _not_found(what: str) -> web.Response:
    return error(404, "not_found", what)


def _model(request: web.Request) -> ReadModel:
    return ReadModel(request.app[ENGINE])


def _next(request: web.Request, **query: str | int) -> str:
    """The URL of the next page: this request's, with some query parameters replaced."""
    return str(request.rel_url.update_query(query))


async def openapi_document(request: web.Request) -> web.Response:
    """GET /api/openapi.json: the OpenAPI 3.1 description of this API (public)."""
    return web.json_response(openapi.document())


@_api("repository", "status", "since", "limit", "cursor")
async def list_runs(request: web.Request) -> web.StreamResponse:
    """GET /api/runs: run summaries newest first, filtered and paginated by cursor."""
    query = request.query
    filters = RunFilters(
        repository=params.repository(query), status=params.status(query), since=params.since(query)
    )
    limit = params.integer(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    page = Page(limit=limit, cursor=params.cursor(query))
    body = await _model(request).list_runs(filters, page)
    body["next"] = _next(request, cursor=body["next_cursor"]) if body["next_cursor"] else None
    return _ok(body)


@_api()
async def run_detail(request: web.Request) -> web.StreamResponse:
    """GET /api/runs/{id}: one run with tiers, phases, attempts, issues and budgets."""
    run_id = request.match_info["id"]
    body = await _model(request).run_detail(run_id) if RUN_ID.fullmatch(run_id) else None
    return _ok(body) if body is not None else _not_found("no run with this id")


@_api("after", "limit")
async def run_events(request: web.Request) -> web.StreamResponse:
    """GET /api/runs/{id}/events: the run's log entries with seq > `after`."""
    run_id = request.match_info["id"]
    after = params.integer(request.query, "after", 0, 0, 10**9 - 1)
    limit = params.integer(request.query, "limit", DEFAULT_EVENTS_PAGE, 1, MAX_EVENTS_PAGE)
    body = None
    if RUN_ID.fullmatch(run_id):
        body = await _model(request).run_events(run_id, after=after, limit=limit)
    if body is None:
        return _not_found("no run with this id")
    body["next"] = _next(request, after=body["next_after"]) if body["next_after"] else None
    return _ok(body)


@_api()
async def repo_backlog(request: web.Request) -> web.StreamResponse:
    """GET /api/repos/{owner}/{repo}/backlog: open issues with their effective severities."""
    repository = params.repository_path(request.match_info["owner"], request.match_info["repo"])
    return _ok(await _model(request).repo_backlog(repository))


@_api("repository", "since")
async def budget_report(request: web.Request) -> web.StreamResponse:
    """GET /api/reports/budget: budget aborts, spend per slice, whether the auditor helped."""
    query = request.query
    body = await _model(request).budget_report(
        repository=params.repository(query), since=params.since(query)
    )
    return _ok(body)
