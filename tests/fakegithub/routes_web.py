"""github.com's side of the App manifest flow: the form a browser posts a manifest to.

On GitHub the person sees a "Create GitHub App" page (the name editable) and clicks; here the
browser's POST registers the app at once, as if they had, and answers GitHub's redirect to the
manifest's `redirect_url` with a one-hour, one-use `code` (and the `state` it was given). The
person signed in is `world.web_user`; a name already taken gets a number appended, as they would
edit it. The code is exchanged through `POST /app-manifests/{code}/conversions` (routes_apps.py).
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakegithub.auth import register_app
from tests.fakegithub.respond import core_of
from tests.fakegithub.state import ManifestCode, World

routes = web.RouteTableDef()
CODE_LIFETIME = 3600


def _page(status: int, message: str) -> web.Response:
    body = f"<!doctype html><title>GitHub</title><p>{html.escape(message)}</p>"
    return web.Response(status=status, text=body, content_type="text/html")


def _problem(manifest: Any) -> str | None:
    """What GitHub's form would refuse in a manifest, or None."""
    if not isinstance(manifest, dict):
        return "The manifest must be a JSON object"
    if not isinstance(manifest.get("url"), str) or not manifest["url"]:
        return "Homepage URL can't be blank"
    hook = manifest.get("hook_attributes")
    if hook is not None and (not isinstance(hook, dict) or not isinstance(hook.get("url"), str)):
        return "Webhook URL can't be blank"
    if not isinstance(manifest.get("default_permissions", {}), dict):
        return "default_permissions must be an object"
    events = manifest.get("default_events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        return "default_events must be a list of event names"
    return None


def _unique_name(world: World, wanted: str) -> tuple[str, str]:
    """(name, slug): GitHub names are unique, so a taken one gets a number, as a person edits it."""
    taken = {app.slug for app in world.apps.values()}
    for number in range(1, 1000):
        name = wanted if number == 1 else f"{wanted} {number}"
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"
        if slug not in taken:
            return name, slug
    raise AssertionError("no free app name")


@routes.post("/settings/apps/new")
@routes.post("/organizations/{org}/settings/apps/new")
async def new_app_from_manifest(request: web.Request) -> web.Response:
    """Register an app from the posted `manifest` form field, then redirect with a code."""
    world = core_of(request).world
    form = await request.post()
    try:
        manifest = json.loads(str(form.get("manifest", "")))
    except ValueError:
        return _page(422, "Invalid GitHub App manifest: not JSON")
    problem = _problem(manifest)
    if problem is not None:
        return _page(422, f"Invalid GitHub App manifest: {problem}")
    org = request.match_info.get("org")
    name, slug = _unique_name(world, str(manifest.get("name") or "My GitHub App"))
    owner_type = "Organization" if org else "User"
    app = register_app(world, slug, name, owner=org or world.web_user, owner_type=owner_type)
    world.app_manifests[app.id] = manifest
    hook = manifest.get("hook_attributes") or {}
    world.hook_configs[app.id] = {
        "url": str(hook.get("url", "")),
        "content_type": "json",
        "insecure_ssl": "0",
        "secret": app.webhook_secret if world.manifest_webhook_secrets else "",
    }
    code = secrets.token_hex(20)
    world.manifest_codes[code] = ManifestCode(app.id, time.time() + CODE_LIFETIME)
    redirect = manifest.get("redirect_url")
    if not isinstance(redirect, str) or not redirect:
        return _page(200, f"Your GitHub App {name} was created.")
    query = {"code": code}
    if request.query.get("state"):
        query["state"] = request.query["state"]
    separator = "&" if "?" in redirect else "?"
    return web.Response(status=302, headers={"Location": redirect + separator + urlencode(query)})
