"""The registration pages: `GET /setup` offers "Register on GitHub", `/setup/callback` finishes.

Served by `autopack setup`, and by the web server while APP_ID is unset (its `/` leads here).
The page posts app.yml's manifest to GitHub with a fresh `state`; GitHub sends the browser back to
the callback with a code, which is exchanged once (a refreshed page shows the result again) and
turned into `.env` lines. A callback whose state is not this flow's is refused, so nobody can
make the server store an App of theirs.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jinja2
from aiohttp import web

from app.setup_env import (
    credentials,
    existing_keys,
    overridden,
    write_env,
    write_key_file,
)
from app.setup_manifest import (
    MIN_SECRET_LENGTH,
    RegisteredApp,
    SetupError,
    convert,
    manifest_for,
    registration_url,
    set_webhook_secret,
    web_url,
)
from app.web import dashboard
from app.web.templating import environment

log = logging.getLogger("autopack.setup")


@dataclass(frozen=True)
class Registered:
    """A finished registration: the App and what was written where."""

    app: RegisteredApp
    env_file: Path
    written: tuple[str, ...]
    overridden: tuple[str, ...]  # also set in the environment, which wins over .env

    @property
    def install_url(self) -> str:
        """Where the person installs the new App on repositories."""
        return f"{self.app.html_url.rstrip('/')}/installations/new"


@dataclass
class SetupFlow:
    """One registration in progress: what to post, where to write, and how it ended."""

    manifest: dict[str, Any]
    api_url: str
    env_file: Path
    environ: Mapping[str, str]
    key_file: Path | None = None
    public_url: str | None = None  # this server's address as GitHub sees it; else the request's
    webhook_url: str | None = None  # where GitHub delivers, when not public_url's
    name: str | None = None
    replace: bool = False  # the person agreed to replace the keys `.env` already has
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    result: Registered | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def blocking_keys(self) -> list[str]:
        """Keys registration would replace without having asked."""
        return [] if self.replace else existing_keys(self.env_file, self.key_file)


FLOW = web.AppKey("setup_flow", SetupFlow)
TEMPLATES = web.AppKey("setup_templates", jinja2.Environment)
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def add_routes(app: web.Application, flow: SetupFlow) -> None:
    """Serve the registration pages from `app`."""
    app[FLOW] = flow
    app[TEMPLATES] = environment()
    app.router.add_get("/setup", setup_page, name="setup")
    app.router.add_get("/setup/callback", callback, name="setup-callback")


def standalone(flow: SetupFlow) -> web.Application:
    """The application `autopack setup` serves: the pages, their stylesheet, `/` leading there."""
    app = web.Application()
    add_routes(app, flow)
    static = importlib.resources.files("app.web") / "static"
    app[dashboard.STATIC] = {name: (static / name).read_bytes() for name in dashboard.STATIC_FILES}
    app.router.add_get("/static/{name}", dashboard.static_file)
    app.router.add_get("/", _to_setup)
    return app


async def _to_setup(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.app.router["setup"].url_for())


def _render(
    request: web.Request, status: int = 200, form_action: str | None = None, **context: Any
) -> web.Response:
    # Every state of the page is one template; what a state does not use is None.
    values = dict.fromkeys(("done", "error", "blocking", "env_file", "org", "org_action"))
    values.update(context, signed_in=False)
    html = request.app[TEMPLATES].get_template("setup.html").render(**values)
    targets = f" {form_action}" if form_action else ""
    csp = (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action 'self'{targets}; frame-ancestors 'none'; base-uri 'none'"
    )
    headers = {**_HEADERS, "Content-Security-Policy": csp}
    return web.Response(text=html, status=status, content_type="text/html", headers=headers)


def _base_url(request: web.Request, flow: SetupFlow) -> str:
    if flow.public_url:
        return flow.public_url.rstrip("/")
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}"


async def setup_page(request: web.Request) -> web.Response:
    """The start: a button per account kind, or why registering cannot start."""
    flow = request.app[FLOW]
    if flow.result is not None:
        return _render(request, done=flow.result)
    blocking = flow.blocking_keys()
    if blocking:
        return _render(request, 409, blocking=blocking, env_file=flow.env_file)
    base = _base_url(request, flow)
    manifest = manifest_for(flow.manifest, base, flow.webhook_url, flow.name)
    github = web_url(flow.api_url)
    org = request.query.get("org", "").strip() or None
    hook_host = urlsplit(manifest["hook_attributes"]["url"]).hostname or ""
    return _render(
        request,
        form_action=github,
        manifest=manifest,
        manifest_json=_json(manifest),
        user_action=registration_url(github, flow.state, None),
        org=org,
        org_action=registration_url(github, flow.state, org) if org else None,
        github=github,
        local_hook=hook_host in ("localhost", "127.0.0.1", "::1"),
    )


async def callback(request: web.Request) -> web.Response:
    """GitHub's redirect back: exchange the code once, write `.env`, say what is next."""
    flow = request.app[FLOW]
    async with flow.lock:
        if flow.result is not None:
            return _render(request, done=flow.result)
        given = request.query.get("state", "").encode()
        if not secrets.compare_digest(given, flow.state.encode()):
            return _render(
                request, 400, error="This registration was not started on this page: start again."
            )
        code = request.query.get("code", "")
        if not code:
            return _render(request, 400, error="GitHub's answer carries no code: start again.")
        try:
            flow.result = await _register(flow, code)
        except SetupError as exc:
            log.warning("registration failed: %s", exc)
            return _render(request, 502, error=f"{exc}.")
    log.info("registered the GitHub App %s (id %d)", flow.result.app.slug, flow.result.app.id)
    flow.done.set()
    return _render(request, done=flow.result)


async def _register(flow: SetupFlow, code: str) -> Registered:
    blocking = flow.blocking_keys()
    if blocking:  # someone edited .env since the page was shown
        raise SetupError(f"{flow.env_file} now sets {', '.join(blocking)}: start again")
    async with aiohttp.ClientSession() as session:
        app = await convert(session, flow.api_url, code)
        secret = app.webhook_secret or ""
        if len(secret) < MIN_SECRET_LENGTH:
            secret = secrets.token_hex(32)
            await set_webhook_secret(session, flow.api_url, app, secret)
    values = credentials(
        app, secret, flow.env_file, flow.environ, api_url=flow.api_url, key_file=flow.key_file
    )
    try:
        if flow.key_file is not None:
            write_key_file(flow.key_file, app.pem)
        write_env(flow.env_file, values)
    except OSError as exc:
        raise SetupError(
            f"GitHub registered the App {app.slug!r}, but {exc.filename or flow.env_file} cannot "
            f"be written ({exc.strerror}): delete the App in its settings ({app.html_url}) and "
            "register again once the file is writable"
        ) from None
    return Registered(app, flow.env_file, tuple(values), tuple(overridden(values, flow.environ)))


def _json(manifest: Mapping[str, Any]) -> str:
    return json.dumps(manifest, separators=(",", ":"))
