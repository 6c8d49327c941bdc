"""The operator's dashboard: server-rendered HTML pages over the same read model as the REST API.

Pages: the runs list (`/`), a run (`/runs/{id}`: timeline, budgets, phases, attempts, issues,
log), a repository's backlog (`/repos/{owner}/{repo}/backlog`) and the budget report (`/budget`).
The credential is the API's: `POST /login` with `AUTOPACK_API_TOKEN` sets the `autopack_session`
cookie (an HMAC of the token, see `auth.py`); a bearer header works too. No JavaScript, no CDN:
one stylesheet served from the package, and a Content-Security-Policy that allows nothing else.
Rendering (Jinja2, autoescaped, and its filters) is in `templating.py`.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from markupsafe import Markup

from app.web import auth, params
from app.web.keys import ENGINE, SETTINGS
from app.web.params import BadParameter
from app.web.readmodel import (
    DEFAULT_EVENTS_PAGE,
    RUN_ID,
    STATUS_FILTERS,
    Page,
    ReadModel,
    RunFilters,
)
from app.web.templating import AttemptView, environment
from app.web.timeline import OUTCOME_COLOURS, render_timeline

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

TEMPLATES = web.AppKey("dashboard_templates", jinja2.Environment)
STATIC_FILES = {"dashboard.css": "text/css", "favicon.svg": "image/svg+xml"}
STATIC = web.AppKey("dashboard_static", dict[str, bytes])

# Nothing but our own stylesheet and icon may load; inline SVG attributes are not styles.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, browsers send `Origin: null` on form posts, refused below.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
NOT_CONFIGURED = "AUTOPACK_API_TOKEN is not set: the dashboard is disabled."
REFUSED = "That is not the API token."
MAX_NEXT = 2000
MAX_FORM_BYTES = 16 * 1024  # a token, a `next` path and a hidden field
RUNS_PAGE = 50


def setup(app: web.Application) -> None:
    """Add the dashboard's routes, templates and static files to the application."""
    app[TEMPLATES] = environment()
    static = importlib.resources.files("app.web") / "static"
    app[STATIC] = {name: (static / name).read_bytes() for name in STATIC_FILES}
    app.router.add_get("/", runs_page, name="dashboard-runs")
    app.router.add_get("/login", login_form, name="dashboard-login")
    app.router.add_post("/login", login, name="dashboard-login-post")
    app.router.add_post("/logout", logout, name="dashboard-logout")
    app.router.add_get("/runs/{id}", run_page, name="dashboard-run")
    app.router.add_get("/repos/{owner}/{repo}/backlog", backlog_page, name="dashboard-backlog")
    app.router.add_get("/budget", budget_page, name="dashboard-budget")
    app.router.add_get("/static/{name}", static_file, name="dashboard-static")


# --- rendering and the credential ---------------------------------------------------------------


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    html = request.app[TEMPLATES].get_template(template).render(**context)
    return web.Response(
        text=html, status=status, content_type="text/html", headers=_SECURITY_HEADERS
    )


def _dashboard(*parameters: str) -> Callable[[Handler], Handler]:
    """Guard a page: a request without a valid session goes to the login form (and back after);
    a query parameter the page does not take, or a bad value, is a 400 page naming it."""

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                signed_in = auth.authenticated(request, cookie=True)
            except auth.Throttled as throttled:
                return _too_many_attempts(request, throttled)
            if not signed_in:
                login_url = request.app.router["dashboard-login"].url_for()
                target = login_url.with_query(next=request.rel_url.path_qs)
                return web.Response(status=303, headers={"Location": str(target)})
            try:
                params.check_names(request.query, parameters)
                return await handler(request)
            except BadParameter as exc:
                return _render(
                    request,
                    "error.html",
                    400,
                    signed_in=True,
                    heading="Bad request",
                    message=f"{exc.parameter}: {exc.message}.",
                )

        return guarded

    return decorate


def _filled(query: Mapping[str, str]) -> dict[str, str]:
    """The query without empty fields, trimmed: the filter form sends every field."""
    return {name: value.strip() for name, value in query.items() if value.strip()}


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site, never another host."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith(("//", "/\\")) or any(ord(c) < 0x20 or c == "\\" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return value


def _cross_site(request: web.Request) -> bool:
    """True for a form posted from another site (refused, whatever SameSite already blocks)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:  # every current browser sends it, and proxies leave it alone
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return urlsplit(origin).netloc != host


def _over_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def _too_many_attempts(request: web.Request, throttled: auth.Throttled) -> web.Response:
    response = _render(
        request,
        "login.html",
        429,
        signed_in=False,
        next="/",
        error=f"Too many wrong tokens from your address: try again in {throttled.seconds} s.",
    )
    response.headers["Retry-After"] = str(throttled.seconds)
    return response


def _forbidden(request: web.Request) -> web.Response:
    return _render(
        request,
        "error.html",
        status=403,
        signed_in=False,
        heading="Refused",
        message="A form from another site cannot sign in or out here.",
    )


# --- handlers ------------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.StreamResponse:
    """GET /login: the sign-in form (straight on when already signed in)."""
    target = safe_next(request.query.get("next"))
    try:
        signed_in = auth.authenticated(request, cookie=True)
    except auth.Throttled as throttled:
        return _too_many_attempts(request, throttled)
    if signed_in:
        return web.Response(status=303, headers={"Location": target})
    configured = auth.token_configured(request.app[SETTINGS])
    error = None if configured else NOT_CONFIGURED
    return _render(request, "login.html", signed_in=False, next=target, error=error)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /login: the right token sets the session cookie; a wrong one gets the form, 401;
    too many wrong ones from one address get it with 429 until they age out."""
    if _cross_site(request):
        return _forbidden(request)
    try:
        auth.check_throttle(request)
    except auth.Throttled as throttled:
        return _too_many_attempts(request, throttled)
    length = request.content_length
    if length is None or length > MAX_FORM_BYTES:
        # Anyone may post here: a body is read only when it is as small as the form's.
        response = _render(
            request,
            "error.html",
            413,
            signed_in=False,
            heading="Refused",
            message=f"The sign-in form is at most {MAX_FORM_BYTES} bytes, with a length.",
        )
        response.force_close()
        return response
    form = await request.post()
    token, target = form.get("token"), form.get("next")
    target = safe_next(target if isinstance(target, str) else None)
    settings = request.app[SETTINGS]
    value = auth.session_cookie_value(settings)
    if value is None or not isinstance(token, str) or not auth.token_matches(settings, token):
        if value is not None:
            auth.count_failure(request)
        error = NOT_CONFIGURED if value is None else REFUSED
        return _render(request, "login.html", 401, signed_in=False, next=target, error=error)
    auth.count_success(request)
    response = web.Response(status=303, headers={"Location": target, "Cache-Control": "no-store"})
    response.set_cookie(
        auth.COOKIE_NAME,
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_over_https(request),
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    """POST /logout: clear the session cookie and go back to the form."""
    if _cross_site(request):
        return _forbidden(request)
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(auth.COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    return response


@_dashboard("repository", "status", "cursor")
async def runs_page(request: web.Request) -> web.StreamResponse:
    """GET /: runs newest first, filtered by repository and status, a page at a time."""
    query = _filled(request.query)
    repository = params.repository(query)
    status = params.status(query)
    model = ReadModel(request.app[ENGINE])
    filters = RunFilters(repository=repository, status=status)
    listing = await model.list_runs(filters, Page(limit=RUNS_PAGE, cursor=params.cursor(query)))
    next_url = None
    if listing["next_cursor"] is not None:
        next_url = str(request.rel_url.update_query(cursor=listing["next_cursor"]))
    return _render(
        request,
        "runs.html",
        signed_in=True,
        runs=listing["runs"],
        repository=repository,
        status_filter=status,
        statuses=STATUS_FILTERS,
        next_url=next_url,
    )


@_dashboard("after")
async def run_page(request: web.Request) -> web.StreamResponse:
    """GET /runs/{id}: one run with its timeline, budgets, phases, attempts, issues and log."""
    run_id = request.match_info["id"]
    now = datetime.now(UTC)
    after = params.integer(request.query, "after", 0, 0, 10**9 - 1)
    model = ReadModel(request.app[ENGINE])
    detail = events = None
    if RUN_ID.fullmatch(run_id):
        detail = await model.run_detail(run_id, now=now)
        events = await model.run_events(run_id, after=after, limit=DEFAULT_EVENTS_PAGE)
    if detail is None or events is None:
        return _render(
            request,
            "error.html",
            404,
            signed_in=True,
            heading="Run not found",
            message=f"There is no run {run_id}.",
        )
    attempts = [AttemptView.from_json(a) for a in detail["attempts"]]
    phases = [p["phase_id"] for p in detail["phases"]]
    return _render(
        request,
        "run.html",
        signed_in=True,
        run=detail["run"],
        detail=detail,
        budgets=detail["budgets"],
        events=events,
        after=after,
        now=now,
        timeline=Markup(render_timeline(attempts, now, phases)),  # noqa: S704 - escapes inside
        legend=list(OUTCOME_COLOURS.items()),
    )


@_dashboard()
async def backlog_page(request: web.Request) -> web.StreamResponse:
    """GET /repos/{owner}/{repo}/backlog: the repository's open issues, effective major first."""
    repository = params.repository_path(request.match_info["owner"], request.match_info["repo"])
    backlog = await ReadModel(request.app[ENGINE]).repo_backlog(repository)
    return _render(request, "backlog.html", signed_in=True, backlog=backlog)


@_dashboard()
async def budget_page(request: web.Request) -> web.StreamResponse:
    """GET /budget: budget aborts, spend per slice and whether the auditor helped."""
    report = await ReadModel(request.app[ENGINE]).budget_report()
    return _render(request, "budget.html", signed_in=True, report=report)


async def static_file(request: web.Request) -> web.StreamResponse:
    """GET /static/{name}: the stylesheet and icon, from the package (no login: nothing secret)."""
    name = request.match_info["name"]
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=request.app[STATIC][name],
        content_type=content_type,
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
