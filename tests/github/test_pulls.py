"""The run's pull request: one draft per branch, updated, marked ready (GraphQL), never merged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import gidgethub
import pytest

import app.github.pulls as pulls_module
from app.github.client import GitHubApp, InstallationClient
from app.github.pulls import (
    PullView,
    ensure_draft_pull,
    graphql_endpoint,
    mark_ready_for_review,
    update_pull,
)
from tests.fakegithub.core import RequestRecord
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"
BRANCH = "autopack/issue-1-run-1"


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient

    def api_calls(self) -> list[RequestRecord]:
        return [r for r in self.sim.request_log if r.app == "autopack"]


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst)
    await fakegithub.push(REPO, BRANCH, {"x.py": "x = 1\n"})
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        yield Env(fakegithub, app.installation(inst.id))


@pytest.mark.parametrize(
    ("base_url", "endpoint"),
    [
        ("https://api.github.com", "https://api.github.com/graphql"),
        ("https://api.github.com/", "https://api.github.com/graphql"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com/api/graphql"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com/api/graphql"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/graphql"),
    ],
)
def test_graphql_endpoint(base_url: str, endpoint: str) -> None:
    assert graphql_endpoint(base_url) == endpoint


def test_the_simulator_endpoint(env: Env) -> None:
    assert graphql_endpoint(env.gh.base_url) == f"{env.sim.url}/graphql"


async def test_ensure_draft_pull_opens_once(env: Env) -> None:
    pull = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "Autopack: Add X", "Run 1")
    assert pull.draft
    assert pull.html_url.endswith(f"/acme/widgets/pull/{pull.number}")
    stored = env.sim.repo(REPO).issues[pull.number]
    assert stored.pull is not None
    assert (stored.pull.head_ref, stored.pull.base_ref, stored.pull.draft) == (BRANCH, "main", True)
    assert [r.method for r in env.api_calls()] == ["GET", "POST"]
    assert f"head=acme:{BRANCH}&state=open" in env.api_calls()[0].query

    before = len(env.api_calls())
    again = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "other title", "other")
    assert again == pull
    assert [r.method for r in env.api_calls()[before:]] == ["GET"]
    assert len(env.sim.repo(REPO).pulls) == 1


async def test_ensure_draft_pull_after_a_lost_race(env: Env) -> None:
    existing = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "T", "B")

    class StaleFirstLookup:
        """Delegates to the real client, but the first lookup misses (another worker's race)."""

        def __init__(self, gh: InstallationClient) -> None:
            self._gh = gh
            self.base_url = gh.base_url
            self.stale = True

        async def getitem(self, url: str, url_vars: Any = None) -> Any:
            if self.stale:
                self.stale = False
                return []
            return await self._gh.getitem(url, url_vars)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._gh, name)

    before = len(env.api_calls())
    found = await ensure_draft_pull(StaleFirstLookup(env.gh), REPO, BRANCH, "main", "T", "B")
    assert found == existing
    assert [(r.method, r.status) for r in env.api_calls()[before:]] == [("POST", 422), ("GET", 200)]


async def test_ensure_draft_pull_reports_a_real_refusal(env: Env) -> None:
    with pytest.raises(gidgethub.BadRequest):
        await ensure_draft_pull(env.gh, REPO, "no-such-branch", "main", "T", "B")


async def test_update_pull(env: Env) -> None:
    pull = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "T", "B")
    before = len(env.api_calls())
    updated = await update_pull(
        env.gh, REPO, pull.number, title="Autopack: done", body="z" * 70_000
    )
    assert updated == pull  # number, node id, draft, url unchanged
    issue = env.sim.repo(REPO).issues[pull.number]
    assert issue.title == "Autopack: done"
    assert issue.body is not None
    assert len(issue.body) == 65_536
    assert await update_pull(env.gh, REPO, pull.number) is None
    assert [r.method for r in env.api_calls()[before:]] == ["PATCH"]
    with pytest.raises(ValueError, match="title"):
        await update_pull(env.gh, REPO, pull.number, title="  ")


async def test_mark_ready_for_review(env: Env) -> None:
    pull = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "T", "B")
    before = len(env.api_calls())
    assert await mark_ready_for_review(env.gh, pull.node_id)
    issue = env.sim.repo(REPO).issues[pull.number]
    assert issue.pull is not None
    assert not issue.pull.draft
    assert [(r.method, r.path) for r in env.api_calls()[before:]] == [("POST", "/graphql")]
    again = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "T", "B")
    assert again == PullView(pull.number, pull.node_id, False, pull.html_url)


async def test_mark_ready_for_an_unknown_node_raises(env: Env) -> None:
    with pytest.raises(gidgethub.GraphQLException):
        await mark_ready_for_review(env.gh, "PR_doesnotexist")


async def test_autopack_never_merges(env: Env) -> None:
    pull = await ensure_draft_pull(env.gh, REPO, BRANCH, "main", "T", "B")
    await update_pull(env.gh, REPO, pull.number, title="T2")
    await mark_ready_for_review(env.gh, pull.node_id)
    assert not [name for name in dir(pulls_module) if "merge" in name.lower()]
    assert env.api_calls()
    assert not [r for r in env.sim.request_log if r.method == "PUT" or r.path.endswith("/merge")]
