"""The App manifest flow: the web form, the redirect with a code, the conversion, the hook."""

from __future__ import annotations

import html
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from gidgethub.apps import get_jwt

from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import ManifestCode

MANIFEST = {
    "name": "Builder",
    "url": "https://builder.example",
    "hook_attributes": {"url": "https://builder.example/hooks"},
    "redirect_url": "https://builder.example/setup/callback?x=1",
    "default_permissions": {"issues": "write", "metadata": "read"},
    "default_events": ["issues"],
}


async def _register(sim: FakeGitHub, manifest: Any, path: str = "/settings/apps/new") -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sim.url}{path}?state=st-1",
            data={"manifest": json.dumps(manifest)},
            allow_redirects=False,
        ) as response,
    ):
        return response.status, response.headers.get("Location"), await response.text()


async def _convert(sim: FakeGitHub, code: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.url}/app-manifests/{code}/conversions") as response,
    ):
        return response.status, await response.json()


def _code(location: str) -> str:
    return location.split("code=")[1].split("&")[0]


async def test_user_flow_redirects_with_code_and_state_and_converts_once(
    fakegithub: FakeGitHub,
) -> None:
    status, location, _ = await _register(fakegithub, MANIFEST)
    assert status == 302
    assert location.startswith("https://builder.example/setup/callback?x=1&code=")
    assert location.endswith("&state=st-1")
    status, app = await _convert(fakegithub, _code(location))
    assert status == 201
    assert app["slug"] == "builder"
    assert app["owner"]["login"] == "octocat"
    assert app["owner"]["type"] == "User"
    assert app["permissions"] == {"issues": "write", "metadata": "read"}
    assert app["events"] == ["issues"]
    assert len(app["webhook_secret"]) >= 20
    assert app["client_id"] == fakegithub.world.apps[app["id"]].client_id
    assert app["client_secret"]
    # The pem is the app's key: a JWT signed with it is accepted for the new app's id.
    token = get_jwt(app_id=str(app["id"]), private_key=app["pem"])
    public = fakegithub.world.apps[app["id"]].public_key_pem
    assert jwt.decode(token, public, algorithms=["RS256"])["iss"] == str(app["id"])
    assert (await _convert(fakegithub, _code(location)))[0] == 404  # one use


async def test_org_flow_owned_by_the_org_and_a_taken_name_gets_a_number(
    fakegithub: FakeGitHub,
) -> None:
    manifest = {**MANIFEST, "name": "Autopack"}  # the simulator's own app is "autopack"
    _, location, _ = await _register(fakegithub, manifest, "/organizations/acme/settings/apps/new")
    status, app = await _convert(fakegithub, _code(location))
    assert status == 201
    assert (app["owner"]["login"], app["owner"]["type"]) == ("acme", "Organization")
    assert (app["name"], app["slug"]) == ("Autopack 2", "autopack-2")


async def test_an_expired_code_is_not_found(fakegithub: FakeGitHub) -> None:
    _, location, _ = await _register(fakegithub, MANIFEST)
    code = _code(location)
    entry = fakegithub.world.manifest_codes[code]
    fakegithub.world.manifest_codes[code] = ManifestCode(entry.app_id, time.time() - 1)
    status, body = await _convert(fakegithub, code)
    assert (status, body["message"]) == (404, "Not Found")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("not json", "not JSON"),
        ({"name": "x"}, "Homepage URL can't be blank"),
        ({**MANIFEST, "hook_attributes": {}}, "Webhook URL can't be blank"),
        ({**MANIFEST, "default_events": "issues"}, "default_events must be a list"),
    ],
)
async def test_a_bad_manifest_is_refused(
    fakegithub: FakeGitHub, manifest: Any, message: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fakegithub.url}/settings/apps/new",
            data={"manifest": manifest if isinstance(manifest, str) else json.dumps(manifest)},
        ) as response,
    ):
        assert response.status == 422
        assert message in html.unescape(await response.text())


async def test_the_hook_config_takes_a_new_secret_from_the_app_only(
    fakegithub: FakeGitHub,
) -> None:
    fakegithub.world.manifest_webhook_secrets = False
    _, location, _ = await _register(fakegithub, MANIFEST)
    _, app = await _convert(fakegithub, _code(location))
    assert app["webhook_secret"] is None
    headers = {"Authorization": f"Bearer {get_jwt(app_id=str(app['id']), private_key=app['pem'])}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.patch(
            f"{fakegithub.url}/app/hook/config", json={"secret": "n" * 40}
        ) as response:
            assert response.status == 200
            assert await response.json() == {
                "url": "https://builder.example/hooks",
                "content_type": "json",
                "insecure_ssl": "0",
                "secret": "********",
            }
        async with session.patch(f"{fakegithub.url}/app/hook/config", json={"x": 1}) as bad:
            assert bad.status == 422
    assert fakegithub.world.hook_configs[app["id"]]["secret"] == "n" * 40
    async with (
        aiohttp.ClientSession() as session,
        session.patch(f"{fakegithub.url}/app/hook/config", json={"secret": "y"}) as anonymous,
    ):
        assert anonymous.status == 401
