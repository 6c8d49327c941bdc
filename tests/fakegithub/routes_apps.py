"""App-level routes: the app, installations, tokens, deliveries, hook config, manifest codes."""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

from tests.fakegithub import render
from tests.fakegithub.auth import issue_token
from tests.fakegithub.hooks import DeliveryRecord
from tests.fakegithub.respond import (
    JWT_APP,
    ApiError,
    actor,
    body_of,
    core_of,
    not_found,
    paginate,
)
from tests.fakegithub.state import AppRegistration, iso_at

routes = web.RouteTableDef()


def _app(request: web.Request) -> AppRegistration:
    app = request.get(JWT_APP)
    if not isinstance(app, AppRegistration):
        raise ApiError(401, "A JSON web token could not be decoded")
    return app


@routes.get("/app")
async def get_app(request: web.Request) -> web.Response:
    """GET /app."""
    return web.json_response(render.app(core_of(request).world, _app(request)))


@routes.get("/app/installations")
async def list_installations(request: web.Request) -> web.Response:
    """GET /app/installations."""
    world = core_of(request).world
    items = [render.installation(world, i) for i in world.installations_of(_app(request).id)]
    return paginate(request, items)


@routes.get("/app/installations/{installation_id}")
async def get_installation(request: web.Request) -> web.Response:
    """GET /app/installations/{id}."""
    world = core_of(request).world
    inst = world.installations.get(_int(request.match_info["installation_id"]))
    if inst is None or inst.app_id != _app(request).id:
        not_found()
    return web.json_response(render.installation(world, inst))


@routes.post("/app/installations/{installation_id}/access_tokens")
async def create_token(request: web.Request) -> web.Response:
    """POST /app/installations/{id}/access_tokens: a one-hour installation token."""
    world = core_of(request).world
    app = _app(request)
    inst = world.installations.get(_int(request.match_info["installation_id"]))
    if inst is None or inst.app_id != app.id:
        not_found()
    token = issue_token(world, inst.id, app.id)
    body = {
        "token": token.token,
        "expires_at": iso_at(token.expires_at),
        "permissions": dict(render.APP_PERMISSIONS),
        "repository_selection": "all" if inst.repos is None else "selected",
    }
    return web.json_response(body, status=201)


@routes.get("/installation/repositories")
async def installation_repositories(request: web.Request) -> web.Response:
    """GET /installation/repositories (installation token)."""
    world = core_of(request).world
    inst = actor(request).installation
    repos = sorted((r for r in world.repos.values() if inst.covers(r)), key=lambda r: r.id)
    items = [render.repo(world, r, full=False) for r in repos]
    selection = "all" if inst.repos is None else "selected"
    return paginate(request, items, wrap="repositories", extra={"repository_selection": selection})


def _lookup(request: web.Request, owner: str, repo_name: str | None) -> web.Response:
    world = core_of(request).world
    app = _app(request)
    for inst in world.installations_of(app.id):
        if inst.account.login.lower() != owner.lower():
            continue
        repo = world.get_repo(owner, repo_name) if repo_name else None
        if repo_name is None or (repo is not None and inst.covers(repo)):
            return web.json_response(render.installation(world, inst))
    not_found()


@routes.get("/repos/{owner}/{repo}/installation")
async def repo_installation(request: web.Request) -> web.Response:
    """GET /repos/{o}/{r}/installation (App JWT)."""
    return _lookup(request, request.match_info["owner"], request.match_info["repo"])


@routes.get("/orgs/{org}/installation")
async def org_installation(request: web.Request) -> web.Response:
    """GET /orgs/{org}/installation (App JWT)."""
    return _lookup(request, request.match_info["org"], None)


@routes.get("/users/{username}/installation")
async def user_installation(request: web.Request) -> web.Response:
    """GET /users/{user}/installation (App JWT)."""
    return _lookup(request, request.match_info["username"], None)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        not_found()


def _delivery(record: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "guid": record.guid,
        "delivered_at": record.at,
        "redelivery": record.redelivery,
        "duration": round(record.duration, 3),
        "status": record.status,
        "status_code": record.status_code or 0,
        "event": record.event,
        "action": record.action,
        "installation_id": record.installation_id,
        "repository_id": record.repository_id,
        "throttled_at": None,
    }


def _records(request: web.Request) -> list[DeliveryRecord]:
    core = core_of(request)
    return core.dispatcher.records if _app(request).id == core.app.id else []


@routes.get("/app/hook/deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """GET /app/hook/deliveries, newest first as GitHub lists them."""
    return paginate(request, [_delivery(r) for r in reversed(_records(request))])


@routes.get("/app/hook/deliveries/{delivery_id}")
async def get_delivery(request: web.Request) -> web.Response:
    """GET /app/hook/deliveries/{id}, with the request and response."""
    wanted = _int(request.match_info["delivery_id"])
    record = next((r for r in _records(request) if r.id == wanted), None)
    if record is None:
        not_found()
    body = _delivery(record)
    body["url"] = core_of(request).dispatcher.webhook_url or ""
    body["request"] = {"headers": record.request_headers, "payload": record.payload}
    body["response"] = {"headers": {}, "payload": record.response_body}
    return web.json_response(body)


@routes.post("/app/hook/deliveries/{delivery_id}/attempts")
async def redeliver(request: web.Request) -> web.Response:
    """POST /app/hook/deliveries/{id}/attempts: redeliver with the same X-GitHub-Delivery."""
    wanted = _int(request.match_info["delivery_id"])
    record = next((r for r in _records(request) if r.id == wanted), None)
    if record is None:
        not_found()
    core_of(request).dispatcher.enqueue(
        record.event, record.payload, guid=record.guid, redelivery=True
    )
    return web.json_response({}, status=202)


@routes.post("/app-manifests/{code}/conversions")
async def convert_manifest(request: web.Request) -> web.Response:
    """POST /app-manifests/{code}/conversions: the app, its key and secrets; the code is spent."""
    world = core_of(request).world
    entry = world.manifest_codes.pop(request.match_info["code"], None)
    if entry is None or entry.expires_at <= time.time():
        not_found()
    app = world.apps[entry.app_id]
    body = render.app(world, app)
    body.update(
        client_id=app.client_id,
        client_secret=secrets.token_hex(20),
        webhook_secret=world.hook_configs[app.id]["secret"] or None,
        pem=app.private_key_pem,
    )
    return web.json_response(body, status=201)


_HOOK_CONFIG_KEYS = ("url", "content_type", "secret", "insecure_ssl")


@routes.patch("/app/hook/config")
async def update_hook_config(request: web.Request) -> web.Response:
    """PATCH /app/hook/config (App JWT): the app's webhook URL, secret, content type."""
    app = _app(request)
    body = await body_of(request)
    for key, value in body.items():
        if key not in _HOOK_CONFIG_KEYS or not isinstance(value, str):
            raise ApiError(422, "Invalid request.", [f"{key} is not a permitted string key"])
    world = core_of(request).world
    config = world.hook_configs.setdefault(
        app.id,
        {"url": "", "content_type": "json", "insecure_ssl": "0", "secret": app.webhook_secret},
    )
    config.update(body)
    shown = {key: config[key] for key in ("url", "content_type", "insecure_ssl")}
    if config["secret"]:
        shown["secret"] = "********"  # GitHub never shows a secret back, only that there is one
    return web.json_response(shown)
