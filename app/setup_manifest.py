"""Registering Autopack as a GitHub App from `app.yml`: GitHub's manifest flow, as Probot does it.

A browser posts the manifest (this server's URLs filled in) to GitHub's "new App" page for a user
or an organisation; GitHub creates the App and sends the browser back to our callback with a
one-hour `code`, which `convert` exchanges for the App's id, key and webhook secret. GitHub's web
pages live at another address than its API: `web_url` derives one from `GITHUB_API_URL`, so
GitHub Enterprise Server works the same way.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import aiohttp
import yaml

from app.github.auth import GitHubAuthError, app_jwt, load_private_key
from app.github.client import default_user_agent

MANIFEST_FILE = "app.yml"
WEBHOOK_PATH = "/api/github/webhooks"
CALLBACK_PATH = "/setup/callback"
# Shorter webhook secrets are refused as configuration (WEBHOOK_SECRET); ours are never shorter.
MIN_SECRET_LENGTH = 20
_TIMEOUT = aiohttp.ClientTimeout(total=30)


class SetupError(Exception):
    """Registration cannot go on; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class RegisteredApp:
    """What GitHub answered the conversion with (the parts Autopack keeps)."""

    id: int
    slug: str
    name: str
    owner: str
    html_url: str
    client_id: str
    webhook_secret: str | None = field(repr=False)
    pem: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Any) -> RegisteredApp:
        """Validate the conversion's answer, or raise SetupError naming what is wrong."""
        try:
            app = cls(
                id=int(data["id"]),
                slug=str(data["slug"]),
                name=str(data["name"]),
                owner=str((data.get("owner") or {}).get("login", "")),
                html_url=str(data["html_url"]),
                client_id=str(data["client_id"]),
                webhook_secret=str(data["webhook_secret"]) if data.get("webhook_secret") else None,
                pem=str(data["pem"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SetupError(
                "GitHub's answer to the registration lacks the App's details"
            ) from None
        try:
            load_private_key(app.pem)
        except GitHubAuthError:
            raise SetupError("GitHub's answer to the registration holds no usable key") from None
        return app


def find_manifest(explicit: Path | None = None) -> Path:
    """The manifest to register: the given path, ./app.yml, or the one beside the source."""
    candidates = (
        [explicit]
        if explicit is not None
        else [
            Path(MANIFEST_FILE),
            Path(__file__).resolve().parent.parent / MANIFEST_FILE,
        ]
    )
    for path in candidates:
        if path.is_file():
            return path
    raise SetupError(f"cannot find the App manifest {candidates[0]} (pass --manifest PATH)")


def load_manifest(path: Path) -> dict[str, Any]:
    """app.yml as a dict, checked for the keys registration needs."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SetupError(f"cannot read the App manifest {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("default_permissions"), dict):
        raise SetupError(f"{path} is not an App manifest (no default_permissions mapping)")
    return data


def manifest_for(
    template: dict[str, Any], base_url: str, webhook_url: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """The manifest to post: app.yml with this server's webhook and callback URLs."""
    base = base_url.rstrip("/")
    manifest = dict(template)
    hook = dict(template.get("hook_attributes") or {})
    hook["url"] = webhook_url or base + WEBHOOK_PATH
    manifest["hook_attributes"] = hook
    manifest["redirect_url"] = base + CALLBACK_PATH
    manifest.setdefault("url", base)
    if name:
        manifest["name"] = name
    return manifest


def web_url(api_url: str) -> str:
    """GitHub's web address for its REST URL: api.github.com: github.com; HOST/api/v3: HOST."""
    parts = urlsplit(api_url.rstrip("/"))
    host, path = parts.netloc, parts.path
    if path.endswith("/api/v3"):
        path = path.removesuffix("/api/v3")
    elif host.startswith("api."):  # api.github.com, and GHE.com's api.<subdomain>.ghe.com
        host = host.removeprefix("api.")
    return urlunsplit((parts.scheme, host, path, "", ""))


def registration_url(web: str, state: str, org: str | None = None) -> str:
    """Where the browser posts the manifest: the user's or an organisation's new-App page."""
    owner = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{web.rstrip('/')}{owner}/settings/apps/new?{urlencode({'state': state})}"


def _headers(**extra: str) -> dict[str, str]:
    return {
        "Accept": "application/vnd.github+json",
        "User-Agent": default_user_agent(),
        "X-GitHub-Api-Version": "2022-11-28",
        **extra,
    }


async def _answer(response: aiohttp.ClientResponse) -> tuple[int, Any]:
    text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, {"message": text.strip()[:200]}


async def convert(session: aiohttp.ClientSession, api_url: str, code: str) -> RegisteredApp:
    """Exchange the flow's `code` for the new App (`POST /app-manifests/{code}/conversions`)."""
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    try:
        async with session.post(url, headers=_headers(), timeout=_TIMEOUT) as response:
            status, body = await _answer(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SetupError(f"cannot reach GitHub at {api_url}: {exc or type(exc).__name__}") from None
    if status != 201:
        message = body.get("message", "") if isinstance(body, dict) else ""
        raise SetupError(
            f"GitHub did not accept the registration code (HTTP {status} {message}); a code is "
            "good once and for an hour: register again"
        )
    return RegisteredApp.from_json(body)


async def set_webhook_secret(
    session: aiohttp.ClientSession, api_url: str, app: RegisteredApp, secret: str
) -> None:
    """Give the App this webhook secret (`PATCH /app/hook/config`, as the App itself)."""
    token = app_jwt(app.id, app.pem, now=time.time())
    url = f"{api_url.rstrip('/')}/app/hook/config"
    headers = _headers(Authorization=f"Bearer {token}")
    try:
        async with session.patch(
            url, json={"secret": secret}, headers=headers, timeout=_TIMEOUT
        ) as response:
            status, body = await _answer(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise SetupError(f"cannot reach GitHub at {api_url}: {exc or type(exc).__name__}") from None
    if status != 200:
        message = body.get("message", "") if isinstance(body, dict) else ""
        raise SetupError(f"GitHub refused the App's webhook secret (HTTP {status} {message})")
