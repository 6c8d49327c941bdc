"""The installation/App clients against a fake GitHub: auth refresh, retries, pagination, GHES."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import gidgethub
import pytest
from gidgethub import sansio
from pytest_aiohttp import AiohttpServer

from app.github.client import GitHubApp, RateLimited, default_user_agent
from app.github.ratelimit import RateLimitStatus, RetryPolicy
from tests.github.fake_github import (
    FakeClock,
    FakeGitHub,
    KeyPair,
    RecordingSleep,
    Reply,
    make_keypair,
    serve,
)

APP_ID = 4242
REPO = "/repos/octo/hello"
SECONDARY = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}

MakeApp = Callable[..., Awaitable[tuple[GitHubApp, FakeGitHub]]]


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return make_keypair()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep(clock: FakeClock) -> RecordingSleep:
    return RecordingSleep(clock)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def make_app(
    aiohttp_server: AiohttpServer,
    session: aiohttp.ClientSession,
    keys: KeyPair,
    clock: FakeClock,
    sleep: RecordingSleep,
) -> MakeApp:
    async def make(prefix: str = "", **kwargs: Any) -> tuple[GitHubApp, FakeGitHub]:
        fake = await serve(aiohttp_server, FakeGitHub(keys.public_key, APP_ID, clock, prefix))
        kwargs.setdefault("jitter", lambda: 1.0)
        app = GitHubApp(session, fake.base_url, APP_ID, keys.private_pem, clock, sleep, **kwargs)
        return app, fake

    return make


@pytest.fixture
async def github(make_app: MakeApp) -> tuple[GitHubApp, FakeGitHub]:
    return await make_app()


async def test_requests_carry_user_agent_and_installation_token(
    github: tuple[GitHubApp, FakeGitHub],
) -> None:
    app, fake = github
    fake.script("GET", REPO, Reply(body={"full_name": "octo/hello"}))
    gh = app.installation(1)
    assert await gh.getitem(REPO) == {"full_name": "octo/hello"}
    [seen] = fake.calls("GET", REPO)
    assert seen.user_agent == default_user_agent()
    assert seen.user_agent.startswith("autopack/")
    assert seen.authorization == "token ghs_fake_1_1"
    assert fake.jwt_failures == []


async def test_token_fetched_once_for_many_requests(github: tuple[GitHubApp, FakeGitHub]) -> None:
    app, fake = github
    gh = app.installation(1)
    for _ in range(5):
        await gh.getitem(REPO)
    assert fake.token_requests == [1]
    assert gh.calls == 5
    assert app.calls == 5


async def test_token_refreshed_transparently_near_expiry(
    github: tuple[GitHubApp, FakeGitHub], clock: FakeClock
) -> None:
    app, fake = github
    gh = app.installation(1)
    await gh.getitem(REPO)
    clock.advance(3600 - 5 * 60)
    await gh.getitem(REPO)
    assert [seen.authorization for seen in fake.calls("GET", REPO)] == [
        "token ghs_fake_1_1",
        "token ghs_fake_1_2",
    ]


async def test_401_invalidates_the_token_and_retries_once(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    gh = app.installation(1)
    await gh.getitem(REPO)
    fake.revoke_all()
    await gh.getitem(REPO)
    assert [seen.authorization for seen in fake.calls("GET", REPO)] == [
        "token ghs_fake_1_1",
        "token ghs_fake_1_1",
        "token ghs_fake_1_2",
    ]
    assert fake.token_requests == [1, 1]
    assert sleep.waits == []


async def test_persistent_401_is_raised_after_one_refresh(
    github: tuple[GitHubApp, FakeGitHub],
) -> None:
    app, fake = github
    refused = Reply(401, {"message": "Bad credentials"})
    fake.script("GET", REPO, refused, refused, Reply())
    with pytest.raises(gidgethub.BadRequest) as caught:
        await app.installation(1).getitem(REPO)
    assert caught.value.status_code == 401
    assert len(fake.calls("GET", REPO)) == 2
    assert fake.token_requests == [1, 1]


async def test_502_is_retried_with_backoff(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    fake.script("GET", REPO, Reply(502), Reply(502), Reply(body={"ok": True}))
    assert await app.installation(1).getitem(REPO) == {"ok": True}
    assert sleep.waits == [1.0, 2.0]
    assert len(fake.calls("GET", REPO)) == 3


async def test_gives_up_after_max_attempts(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    fake.script("GET", REPO, *[Reply(503)] * 5)
    with pytest.raises(gidgethub.GitHubBroken):
        await app.installation(1).getitem(REPO)
    assert len(fake.calls("GET", REPO)) == 4
    assert sleep.waits == [1.0, 2.0, 4.0]


async def test_jitter_shortens_waits(make_app: MakeApp, sleep: RecordingSleep) -> None:
    app, fake = await make_app(jitter=lambda: 0.0)
    fake.script("GET", REPO, Reply(500), Reply(500))
    await app.installation(1).getitem(REPO)
    assert sleep.waits == [0.5, 1.0]


async def test_post_is_retried_on_5xx(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    route = f"{REPO}/issues/1/comments"
    fake.script("POST", route, Reply(502), Reply(201, {"id": 9}))
    assert await app.installation(1).post(route, data={"body": "hi"}) == {"id": 9}
    assert [seen.body for seen in fake.calls("POST", route)] == [b'{"body": "hi"}'] * 2
    assert sleep.waits == [1.0]


async def test_dropped_connection_is_retried(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    # POST: aiohttp itself silently re-sends idempotent requests once on a dropped pooled
    # connection, which would hide our own retry.
    route = f"{REPO}/statuses/abc"
    fake.script("POST", route, Reply(disconnect=True), Reply(201, {"ok": True}))
    assert await app.installation(1).post(route, data={}) == {"ok": True}
    assert len(fake.calls("POST", route)) == 2
    assert sleep.waits == [1.0]


async def test_connection_errors_give_up_after_max_attempts(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    route = f"{REPO}/statuses/abc"
    fake.script("POST", route, *[Reply(disconnect=True)] * 4)
    with pytest.raises(aiohttp.ClientConnectionError):
        await app.installation(1).post(route, data={})
    assert len(fake.calls("POST", route)) == 4
    assert sleep.waits == [1.0, 2.0, 4.0]


async def test_token_endpoint_5xx_is_retried(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    fake.token_failures.append(502)
    await app.installation(1).getitem(REPO)
    assert fake.token_requests == [1, 1]
    assert sleep.waits == [1.0]


@pytest.mark.parametrize("status", [403, 429])
async def test_primary_rate_limit_waits_until_reset(
    github: tuple[GitHubApp, FakeGitHub],
    sleep: RecordingSleep,
    clock: FakeClock,
    status: int,
) -> None:
    app, fake = github
    limited = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(int(clock() + 120)),
    }
    body = {"message": "API rate limit exceeded"}
    fake.script("GET", REPO, Reply(status, body, limited), Reply(body={"ok": True}))
    assert await app.installation(1).getitem(REPO) == {"ok": True}
    assert sleep.waits == [121.0]


async def test_primary_rate_limit_beyond_max_wait_raises(
    make_app: MakeApp, sleep: RecordingSleep, clock: FakeClock
) -> None:
    app, fake = await make_app(policy=RetryPolicy(max_rate_limit_wait=600))
    reset = int(clock() + 3600)
    limited = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0"}
    limited["x-ratelimit-reset"] = str(reset)
    fake.script("GET", REPO, Reply(403, {"message": "API rate limit exceeded"}, limited))
    gh = app.installation(1)
    with pytest.raises(RateLimited) as caught:
        await gh.getitem(REPO)
    assert caught.value.reset_at == reset + 1
    assert caught.value.status_code == 403
    assert "retry after 2023-11-14T23:13:21+00:00" in str(caught.value)
    assert sleep.waits == []
    assert len(fake.calls("GET", REPO)) == 1
    assert gh.rate_limit == RateLimitStatus(5000, 0, float(reset))


async def test_secondary_rate_limit_with_retry_after(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    fake.script("GET", REPO, Reply(403, SECONDARY, {"retry-after": "30"}), Reply())
    await app.installation(1).getitem(REPO)
    assert sleep.waits == [30.0]


async def test_secondary_rate_limit_without_retry_after(
    github: tuple[GitHubApp, FakeGitHub], sleep: RecordingSleep
) -> None:
    app, fake = github
    fake.script("GET", REPO, Reply(403, SECONDARY), Reply(403, SECONDARY), Reply())
    await app.installation(1).getitem(REPO)
    assert sleep.waits == [60.0, 120.0]


@pytest.mark.parametrize(
    ("status", "body", "exception"),
    [
        (404, {"message": "Not Found"}, gidgethub.BadRequest),
        (
            422,
            {"message": "Validation Failed", "errors": [{"code": "custom", "message": "bad"}]},
            gidgethub.ValidationError,
        ),
        (409, {"message": "Conflict"}, gidgethub.BadRequest),
        (403, {"message": "Resource not accessible by integration"}, gidgethub.BadRequest),
    ],
)
async def test_client_errors_are_not_retried(
    github: tuple[GitHubApp, FakeGitHub],
    sleep: RecordingSleep,
    status: int,
    body: dict[str, object],
    exception: type[Exception],
) -> None:
    app, fake = github
    fake.script("PATCH", REPO, Reply(status, body), Reply())
    with pytest.raises(exception) as caught:
        await app.installation(1).patch(REPO, data={"name": "x"})
    assert isinstance(caught.value, gidgethub.HTTPException)
    assert caught.value.status_code == status
    assert len(fake.calls("PATCH", REPO)) == 1
    assert sleep.waits == []


async def test_pagination_follows_link_over_three_pages(
    github: tuple[GitHubApp, FakeGitHub],
) -> None:
    app, fake = github
    route = f"{REPO}/issues"
    fake.script(
        "GET",
        route,
        Reply(body=[1, 2], next_page=f"{route}?page=2"),
        Reply(body=[3, 4], next_page=f"{route}?page=3"),
        Reply(body=[5]),
    )
    items = [item async for item in app.installation(1).getiter(route)]
    assert items == [1, 2, 3, 4, 5]
    assert [seen.query for seen in fake.calls("GET", route)] == ["", "page=2", "page=3"]


async def test_ghes_base_url_keeps_the_path_prefix(make_app: MakeApp) -> None:
    app, fake = await make_app(prefix="/api/v3")
    assert fake.base_url.endswith("/api/v3")
    route = f"{REPO}/pulls"
    fake.script("GET", route, Reply(body=[1], next_page=f"{route}?page=2"), Reply(body=[2]))
    gh = app.installation(5)
    assert [item async for item in gh.getiter(route)] == [1, 2]
    assert await gh.getitem(REPO.removeprefix("/")) == {}
    assert fake.token_requests == [5]
    assert len(fake.calls("GET", route)) == 2
    assert len(fake.calls("GET", REPO)) == 1


def test_format_url_joins_under_a_path_prefix() -> None:
    base = "https://ghe.example.com/api/v3"
    assert sansio.format_url("/app", {}, base_url=base) == f"{base}/app"
    assert sansio.format_url("/repos/{o}/{r}", {"o": "a", "r": "b"}, base_url=base + "/") == (
        f"{base}/repos/a/b"
    )
    assert sansio.format_url(f"{base}/x?page=2", {}, base_url=base) == f"{base}/x?page=2"


async def test_rate_limit_status_recorded_per_installation(
    github: tuple[GitHubApp, FakeGitHub], clock: FakeClock
) -> None:
    app, fake = github
    headers = {
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": "4321",
        "x-ratelimit-reset": str(int(clock() + 900)),
        "x-ratelimit-used": "679",
        "x-ratelimit-resource": "core",
    }
    fake.script("GET", REPO, Reply(body={}, headers=headers))
    one, two = app.installation(1), app.installation(2)
    assert one.rate_limit is None
    await one.getitem(REPO)
    expected = RateLimitStatus(5000, 4321, clock() + 900, 679, "core")
    assert one.rate_limit == expected
    assert two.rate_limit is None
    assert app.rate_limits() == {1: expected}


async def test_clients_are_cached(github: tuple[GitHubApp, FakeGitHub]) -> None:
    app, _ = github
    assert app.installation(1) is app.installation(1)
    assert app.installation(1) is not app.installation(2)
    assert await app.app_client() is await app.app_client()


async def test_app_client_uses_a_valid_app_jwt(
    github: tuple[GitHubApp, FakeGitHub], clock: FakeClock
) -> None:
    app, fake = github
    fake.script("GET", "/app", Reply(body={"id": APP_ID}))
    gh = await app.app_client()
    assert await gh.getitem("/app") == {"id": APP_ID}
    await gh.post("/app/hook/deliveries/{id}/attempts", {"id": 12}, data=b"")
    clock.advance(6 * 60)
    await gh.getitem("/app/hook/deliveries")
    first, second, third = fake.requests
    assert (first.path, second.path, third.path) == (
        "/app",
        "/app/hook/deliveries/12/attempts",
        "/app/hook/deliveries",
    )
    assert first.authorization.startswith("bearer ")
    assert second.authorization == first.authorization
    # Re-signed once the cached JWT got old; the fake verified all three against the clock.
    assert third.authorization != first.authorization
    assert fake.token_requests == []


async def test_reprs_do_not_leak_tokens(github: tuple[GitHubApp, FakeGitHub]) -> None:
    app, fake = github
    gh = app.installation(1)
    await gh.getitem(REPO)
    shown = repr(gh) + repr(app) + repr(app.tokens) + repr(await app.app_client())
    assert fake.valid_tokens
    assert not any(token in shown for token in fake.valid_tokens)
    assert "PRIVATE KEY" not in shown
