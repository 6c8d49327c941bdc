"""Priority 1: app auth, token scoping, request log, unknown routes, rate limits, pagination."""

from __future__ import annotations

import time

import aiohttp
import jwt
import pytest
from gidgethub import BadRequest
from gidgethub.aiohttp import GitHubAPI
from gidgethub.apps import get_installation_access_token

from tests.fakegithub.scenario import FakeGitHub


async def test_gidgethub_gets_a_token_and_lists_repositories(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    fakegithub.create_repo("acme/one")
    fakegithub.create_repo("acme/two")
    fakegithub.create_repo("other/three")
    async with aiohttp.ClientSession() as session:
        gh = GitHubAPI(session, "test", base_url=fakegithub.url)
        token = await get_installation_access_token(
            gh,
            installation_id=str(inst.id),
            app_id=str(fakegithub.app.id),
            private_key=fakegithub.app.private_key_pem,
        )
        assert token["token"].startswith("ghs_")
        assert token["expires_at"].endswith("Z")
        app_gh = GitHubAPI(session, "test", base_url=fakegithub.url, oauth_token=token["token"])
        names = [
            r["full_name"]
            async for r in app_gh.getiter("/installation/repositories", iterable_key="repositories")
        ]
    assert names == ["acme/one", "acme/two"]
    assert [c.app for c in fakegithub.calls(path_prefix="/app/")] == ["jwt"]
    assert fakegithub.calls("GET", "/installation")[0].installation_id == inst.id


def _jwt(sim: FakeGitHub, **claims: object) -> str:
    now = int(time.time())
    payload = {"iat": now - 30, "exp": now + 500, "iss": str(sim.app.id), **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, sim.app.private_key_pem, algorithm="RS256")


NOW = int(time.time())


@pytest.mark.parametrize(
    ("claims", "status", "fragment"),
    [
        ({}, 200, None),
        ({"iat": "now+50"}, 200, None),  # within GitHub's 60 s skew
        ({"iat": "now+120"}, 401, "'Issued at' claim"),
        ({"exp": "now+700"}, 401, "too far in the future"),
        ({"exp": "now-5"}, 401, "'Expiration time' claim"),
        ({"iss": "999999"}, 401, "Integration not found"),
        ({"iat": None}, 401, "'Issued at' claim"),
        ({"exp": None}, 401, "'Expiration time' claim"),
    ],
)
async def test_jwt_rules(
    fakegithub: FakeGitHub, claims: dict[str, object], status: int, fragment: str | None
) -> None:
    now = int(time.time())
    resolved = {
        k: (now + int(v[3:]) if isinstance(v, str) and v.startswith("now") else v)
        for k, v in claims.items()
    }
    token = _jwt(fakegithub, **resolved)
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{fakegithub.url}/app", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        body = await r.json()
    assert r.status == status, body
    if fragment:
        assert fragment in body["message"]
    else:
        assert body["slug"] == "autopack"


async def test_jwt_signed_with_another_key_is_refused(fakegithub: FakeGitHub) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 60, "iss": str(fakegithub.app.id)}, other, "RS256")
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{fakegithub.url}/app", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 401


@pytest.mark.parametrize("scheme", ["token", "Bearer"])
async def test_installation_token_both_schemes_and_scoping(
    fakegithub: FakeGitHub, scheme: str
) -> None:
    mine = fakegithub.install("acme")
    fakegithub.install("other")
    fakegithub.create_repo("acme/widgets")
    fakegithub.create_repo("other/secret")
    token = fakegithub.installation_token(mine)
    headers = {"Authorization": f"{scheme} {token}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(f"{fakegithub.url}/repos/acme/widgets") as r:
            assert r.status == 200
            assert (await r.json())["default_branch"] == "main"
        async with s.get(f"{fakegithub.url}/repos/other/secret") as r:
            assert r.status == 404
        async with s.get(f"{fakegithub.url}/app") as r:
            assert r.status == 401  # an installation token is no JWT


async def test_selected_repositories_only(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme", ["widgets"])
    fakegithub.create_repo("acme/widgets")
    fakegithub.create_repo("acme/hidden")
    headers = {"Authorization": f"token {fakegithub.installation_token(inst)}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(f"{fakegithub.url}/repos/acme/hidden") as r:
            assert r.status == 404
        async with s.get(f"{fakegithub.url}/installation/repositories") as r:
            body = await r.json()
    assert body["repository_selection"] == "selected"
    assert [x["name"] for x in body["repositories"]] == ["widgets"]


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("token nope", 401), ("Basic abc", 401)],
)
async def test_bad_credentials(
    fakegithub: FakeGitHub, authorization: str | None, status: int
) -> None:
    fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    headers = {"Authorization": authorization} if authorization else {}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.get(f"{fakegithub.url}/repos/acme/widgets") as r,
    ):
        assert r.status == status


async def test_expired_token_is_refused(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    token = fakegithub.installation_token(inst)
    fakegithub.world.tokens[token].expires_at = time.time() - 1
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as s,
        s.get(f"{fakegithub.url}/repos/acme/widgets") as r,
    ):
        assert r.status == 401
        assert (await r.json())["message"] == "Bad credentials"


async def test_unknown_route_is_404_and_recorded(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    headers = {"Authorization": f"token {fakegithub.installation_token(inst)}"}
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.get(f"{fakegithub.url}/repos/acme/widgets/frobnicate") as r,
    ):
        assert r.status == 404
    assert fakegithub.unknown_routes == ["GET /repos/acme/widgets/frobnicate"]
    assert fakegithub.request_log[-1].status == 404
    fakegithub.unknown_routes.clear()  # expected here; the fixture fails tests on any


async def test_rate_limit_budget(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    fakegithub.rate_limits.set_limit(3)
    headers = {"Authorization": f"token {fakegithub.installation_token(inst)}"}
    seen = []
    async with aiohttp.ClientSession(headers=headers) as s:
        for _ in range(4):
            async with s.get(f"{fakegithub.url}/repos/acme/widgets") as r:
                seen.append((r.status, r.headers["x-ratelimit-remaining"], await r.json()))
    assert [(st, rem) for st, rem, _ in seen] == [
        (200, "2"),
        (200, "1"),
        (200, "0"),
        (403, "0"),
    ]
    assert seen[3][2]["message"] == f"API rate limit exceeded for installation ID {inst.id}."
    async with (
        aiohttp.ClientSession(headers=headers) as s,
        s.get(f"{fakegithub.url}/repos/acme/widgets") as r,
    ):
        assert r.headers["x-ratelimit-limit"] == "3"
        assert r.headers["x-ratelimit-resource"] == "core"
        assert int(r.headers["x-ratelimit-reset"]) > time.time()


async def test_pagination_links_and_getiter(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    for n in range(5):
        await fakegithub.open_issue("acme/widgets", f"issue {n}", "body")
    token = fakegithub.installation_token(inst)
    async with aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as s:
        async with s.get(f"{fakegithub.url}/repos/acme/widgets/issues?per_page=2") as r:
            first = await r.json()
            link = r.headers["Link"]
        async with s.get(f"{fakegithub.url}/repos/acme/widgets/issues?per_page=2&page=3") as r:
            last = await r.json()
            last_link = r.headers["Link"]
        async with s.get(f"{fakegithub.url}/repos/acme/widgets/issues?per_page=500") as r:
            capped = await r.json()
        gh = GitHubAPI(s, "test", base_url=fakegithub.url, oauth_token=token)
        titles = [i["title"] async for i in gh.getiter("/repos/acme/widgets/issues?per_page=2")]
    assert [i["number"] for i in first] == [5, 4]
    assert link == (
        f'<{fakegithub.url}/repos/acme/widgets/issues?per_page=2&page=2>; rel="next", '
        f'<{fakegithub.url}/repos/acme/widgets/issues?per_page=2&page=3>; rel="last"'
    )
    assert [i["number"] for i in last] == [1]
    assert 'rel="prev"' in last_link
    assert 'rel="next"' not in last_link
    assert len(capped) == 5
    assert titles == [f"issue {n}" for n in range(4, -1, -1)]


async def test_gidgethub_raises_on_validation_errors(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets")
    token = fakegithub.installation_token(inst)
    async with aiohttp.ClientSession() as s:
        gh = GitHubAPI(s, "test", base_url=fakegithub.url, oauth_token=token)
        with pytest.raises(BadRequest):
            await gh.post("/repos/acme/widgets/issues", data={"body": "no title"})


async def test_installation_lookups_need_the_jwt(fakegithub: FakeGitHub) -> None:
    inst = fakegithub.install("acme", ["widgets"])
    fakegithub.create_repo("acme/widgets")
    fakegithub.create_repo("acme/other")
    token = _jwt(fakegithub)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as s:
        async with s.get(f"{fakegithub.url}/repos/acme/widgets/installation") as r:
            assert (r.status, (await r.json())["id"]) == (200, inst.id)
        async with s.get(f"{fakegithub.url}/repos/acme/other/installation") as r:
            assert r.status == 404
        async with s.get(f"{fakegithub.url}/orgs/acme/installation") as r:
            assert (r.status, (await r.json())["account"]["login"]) == (200, "acme")
    bearer = f"token {fakegithub.installation_token(inst)}"
    async with (
        aiohttp.ClientSession(headers={"Authorization": bearer}) as s,
        s.get(f"{fakegithub.url}/repos/acme/widgets/installation") as r,
    ):
        assert r.status == 401
