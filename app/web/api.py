"""The operator's REST API: runs, their events, repository backlogs and the budget report.

Every route but the OpenAPI document needs `Authorization: Bearer $AUTOPACK_API_TOKEN`
(app/web/auth.py). Query parameters are checked strictly; a bad one is a 400 naming it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from aiohttp import web

from app.web import auth, openapi
from app.web.keys import ENGINE, SETTINGS
from app.web.readmodel import (
    DEFAULT_EVENTS_PAGE,
    DEFAULT_PAGE,
    MAX_EVENTS_PAGE,
    MAX_PAGE,
    RUN_ID,
    STATUS_FILTERS,
    BadCursor,
    Page,
    ReadModel,
    RunFilters,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# GitHub's rules: owners are alphanumerics and single hyphens; names also allow `.` and `_`.
OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
NUMBER = re.compile(r"[0-9]{1,9}")
# Cursors are URL-safe base64 without padding (app/web/readmodel.encode_cursor).
CURSOR = re.compile(r"[A-Za-z0-9_-]{1,512}")
_NO_STORE = {"Cache-Control": "no-store"}


class BadParameter(Exception):
    """A query or path parameter with a value the API does not accept."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


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
    """Guard a handler: 401 unless the bearer token matches; 400 for a query parameter it does
    not take (a misspelt filter must not silently list everything) or for a BadParameter."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not auth.bearer_ok(request):
                return auth.unauthorized(request.app[SETTINGS])
            for name in request.query:
                if name not in parameters:
                    return error(400, "bad_request", "unknown query parameter", name[:100])
                if len(request.query.getall(name)) > 1:
                    return error(400, "bad_request", "given more than once", name)
            try:
                return await handler(request)
            except BadParameter as exc:
                return error(400, "bad_request", exc.message, exc.parameter)

        return guarded

    return decorate


def _ok(body: dict[str, Any]) -> web.Response:
    return web.json_response(body, headers=_NO_STORE)


def _not_found(what: str) -> web.Response:
    return error(404, "not_found", what)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadParameter(name, f"must be an integer from {low} to {high}")
    return int(raw)


def _repository(request: web.Request) -> str | None:
    raw = request.query.get("repository")
    if raw is None:
        return None
    owner, _, name = raw.partition("/")
    if not (OWNER.fullmatch(owner) and NAME.fullmatch(name)):
        raise BadParameter("repository", "must be owner/name, e.g. acme/widgets")
    return raw


def _since(request: web.Request) -> datetime | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError("no zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParameter(
            "since", "must be an ISO 8601 time with a zone, e.g. 2024-05-01T00:00:00Z"
        ) from None


def _status(request: web.Request) -> str | None:
    raw = request.query.get("status")
    if raw is None:
        return None
    if raw not in STATUS_FILTERS:
        raise BadParameter("status", "must be a run state (e.g. DONE_SUCCESS), active or terminal")
    return raw


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
    filters = RunFilters(
        repository=_repository(request), status=_status(request), since=_since(request)
    )
    limit = _int(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = request.query.get("cursor")
    if cursor is not None and not CURSOR.fullmatch(cursor):
        raise BadParameter("cursor", "not a cursor from this API")
    try:
        body = await _model(request).list_runs(filters, Page(limit=limit, cursor=cursor))
    except BadCursor:
        raise BadParameter("cursor", "not a cursor from this API") from None
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
    after = _int(request, "after", 0, 0, 10**9 - 1)
    limit = _int(request, "limit", DEFAULT_EVENTS_PAGE, 1, MAX_EVENTS_PAGE)
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
    owner, name = request.match_info["owner"], request.match_info["repo"]
    if not OWNER.fullmatch(owner):
        raise BadParameter("owner", "not a GitHub account name")
    if not NAME.fullmatch(name):
        raise BadParameter("repo", "not a GitHub repository name")
    return _ok(await _model(request).repo_backlog(f"{owner}/{name}"))


@_api("repository", "since")
async def budget_report(request: web.Request) -> web.StreamResponse:
    """GET /api/reports/budget: budget aborts, spend per slice, whether the auditor helped."""
    body = await _model(request).budget_report(
        repository=_repository(request), since=_since(request)
    )
    return _ok(body)
