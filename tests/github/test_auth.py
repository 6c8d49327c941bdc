"""App JWT and the installation token cache, against a fake token endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_aiohttp import AiohttpServer

from app.github.auth import GitHubAuthError, InstallationTokens, app_jwt, load_private_key
from tests.github.fake_github import FakeClock, FakeGitHub, KeyPair, make_keypair, serve

APP_ID = 4242
BAD_PEM = "PRIVATE_KEY is not a valid RSA private key in PEM form"


@pytest.fixture(scope="module")
def keys() -> KeyPair:
    return make_keypair()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(aiohttp_server: AiohttpServer, keys: KeyPair, clock: FakeClock) -> FakeGitHub:
    return await serve(aiohttp_server, FakeGitHub(keys.public_key, APP_ID, clock))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def tokens(
    session: aiohttp.ClientSession, fake: FakeGitHub, keys: KeyPair, clock: FakeClock
) -> InstallationTokens:
    return InstallationTokens(
        session,
        base_url=fake.base_url,
        app_id=APP_ID,
        private_key=keys.private_pem,
        clock=clock,
        user_agent="autopack/test",
    )


def test_app_jwt_claims(keys: KeyPair) -> None:
    now = 1_700_000_000.7
    token = app_jwt(APP_ID, keys.private_pem, now=now)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, keys.public_key, algorithms=["RS256"], options={"verify_exp": False})
    assert claims["iss"] == str(APP_ID)
    assert claims["iat"] == 1_700_000_000 - 60
    assert claims["exp"] == 1_700_000_000 + 9 * 60
    assert claims["exp"] - claims["iat"] <= 600


def test_app_jwt_accepts_str_app_id_and_pem_bytes(keys: KeyPair) -> None:
    token = app_jwt("77", keys.private_pem.encode(), now=1_700_000_000)
    claims = jwt.decode(token, keys.public_key, algorithms=["RS256"], options={"verify_exp": False})
    assert claims["iss"] == "77"


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a key",
        "-----BEGIN RSA PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END RSA PRIVATE KEY-----\n",
    ],
)
def test_bad_pem_is_a_clear_error_without_the_key(pem: str) -> None:
    with pytest.raises(GitHubAuthError) as caught:
        app_jwt(APP_ID, pem, now=1_700_000_000)
    assert str(caught.value) == BAD_PEM
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    if pem:
        assert pem.strip() not in repr(caught.value)


def test_non_rsa_key_is_refused() -> None:
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(GitHubAuthError, match=BAD_PEM):
        load_private_key(ec_pem)


async def test_token_is_fetched_once_and_reused(
    tokens: InstallationTokens, fake: FakeGitHub
) -> None:
    first = await tokens.get(1)
    for _ in range(5):
        assert await tokens.get(1) == first
    assert fake.token_requests == [1]
    assert fake.jwt_failures == []
    assert tokens.fetches == 1
    assert first in fake.valid_tokens


async def test_tokens_are_per_installation(tokens: InstallationTokens, fake: FakeGitHub) -> None:
    one, two = await tokens.get(1), await tokens.get(2)
    assert one != two
    assert fake.token_requests == [1, 2]


async def test_token_refreshed_within_margin_of_expiry(
    tokens: InstallationTokens, fake: FakeGitHub, clock: FakeClock
) -> None:
    first = await tokens.get(1)
    # The fake issues one-hour tokens; the default margin is five minutes.
    clock.advance(3600 - 5 * 60 - 1)
    assert await tokens.get(1) == first
    clock.advance(1)
    second = await tokens.get(1)
    assert second != first
    assert fake.token_requests == [1, 1]
    assert fake.jwt_failures == []


async def test_concurrent_callers_share_one_fetch(
    tokens: InstallationTokens, fake: FakeGitHub
) -> None:
    results = await asyncio.gather(*(tokens.get(7) for _ in range(10)))
    assert len(set(results)) == 1
    assert fake.token_requests == [7]


async def test_invalidate_forces_a_new_fetch(tokens: InstallationTokens, fake: FakeGitHub) -> None:
    first = await tokens.get(1)
    tokens.invalidate(1)
    second = await tokens.get(1)
    assert second != first
    # A stale token does not evict the fresh one another caller already fetched.
    tokens.invalidate(1, token=first)
    assert await tokens.get(1) == second
    assert fake.token_requests == [1, 1]


async def test_token_endpoint_failure_is_a_clear_error(
    tokens: InstallationTokens, fake: FakeGitHub
) -> None:
    fake.token_failures.append(503)
    with pytest.raises(GitHubAuthError) as caught:
        await tokens.get(3)
    assert caught.value.status == 503
    assert "installation 3" in str(caught.value)
    assert "HTTP 503: Server Error" in str(caught.value)


async def test_wrong_key_is_refused_by_github(
    session: aiohttp.ClientSession, fake: FakeGitHub, clock: FakeClock
) -> None:
    other = make_keypair()
    tokens = InstallationTokens(
        session,
        base_url=fake.base_url,
        app_id=APP_ID,
        private_key=other.private_pem,
        clock=clock,
        user_agent="autopack/test",
    )
    with pytest.raises(GitHubAuthError) as caught:
        await tokens.get(1)
    assert caught.value.status == 401
    assert other.private_pem not in str(caught.value)
    assert fake.jwt_failures
    assert fake.jwt_failures[0].startswith("undecodable")


async def test_reprs_leak_neither_key_nor_token(tokens: InstallationTokens, keys: KeyPair) -> None:
    token = await tokens.get(1)
    shown = repr(tokens)
    assert token not in shown
    assert "PRIVATE KEY" not in shown
    assert keys.private_pem not in shown
    assert "cached=[1]" in shown
