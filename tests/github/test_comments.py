"""One comment per run, edited in place, never duplicated by a crash or a lost id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from app.github.client import GitHubApp, InstallationClient
from app.github.comments import (
    MAX_BODY,
    cap_body,
    find_run_comment,
    post_comment,
    run_marker,
    upsert_run_comment,
)
from tests.fakegithub.core import RequestRecord
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import Comment

REPO = "acme/widgets"


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient
    issue: int

    def api_calls(self) -> list[RequestRecord]:
        return [r for r in self.sim.request_log if r.app == "autopack"]

    def comments(self) -> list[Comment]:
        return self.sim.repo(REPO).comments(self.issue)

    def ours(self) -> list[Comment]:
        return [c for c in self.comments() if c.app_id == self.sim.app.id]


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst)
    number = await fakegithub.open_issue(REPO, "Add X", "please", user="alice")
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        yield Env(fakegithub, app.installation(inst.id), number)


def test_marker() -> None:
    assert run_marker("run-1") == "<!-- autopack:run:run-1 -->"


@pytest.mark.parametrize("bad", ["", "x -->", "a b", "../x", "-x", "x" * 101])
def test_marker_refuses_unsafe_run_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="safe run id"):
        run_marker(bad)


def test_cap_body() -> None:
    assert cap_body("short") == "short"
    capped = cap_body("x" * 100_000)
    assert len(capped) == MAX_BODY
    assert capped.endswith("the full report is in the check run and the run artefacts.")


async def test_first_upsert_looks_then_creates(env: Env) -> None:
    comment_id = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Planning…", None)
    assert [c.id for c in env.ours()] == [comment_id]
    assert env.ours()[0].body == "<!-- autopack:run:run-1 -->\nPlanning…"
    assert [r.method for r in env.api_calls()] == ["GET", "POST"]


async def test_upsert_with_a_stored_id_edits_in_place(env: Env) -> None:
    comment_id = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Planning…", None)
    before = len(env.api_calls())
    again = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Phase 1 done", comment_id)
    assert again == comment_id
    assert [r.method for r in env.api_calls()[before:]] == ["PATCH"]
    assert [c.body for c in env.ours()] == ["<!-- autopack:run:run-1 -->\nPhase 1 done"]


async def test_a_lost_id_finds_the_comment_across_pages(env: Env) -> None:
    comment_id = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Planning…", None)
    for i in range(105):
        await env.sim.comment(REPO, env.issue, f"chatter {i}", sender="bob")
    await env.sim.comment(REPO, env.issue, "> <!-- autopack:run:run-2 -->\nquoted", sender="bob")
    before = len(env.api_calls())
    # A crash lost the stored id: the marker finds the comment instead of posting a second.
    again = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Resumed", None)
    assert again == comment_id
    assert [r.method for r in env.api_calls()[before:]] == ["GET", "PATCH"]
    assert len(env.ours()) == 1
    # run-2's marker appears only quoted by a person (on page 2): not adopted.
    before = len(env.api_calls())
    assert await find_run_comment(env.gh, REPO, env.issue, "run-2") is None
    assert len(env.api_calls()) - before == 2
    other = await upsert_run_comment(env.gh, REPO, env.issue, "run-2", "Second run", None)
    assert other != comment_id
    assert len(env.ours()) == 2


async def test_a_deleted_comment_is_recreated(env: Env) -> None:
    comment_id = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Planning…", None)
    await env.gh.delete(f"/repos/{REPO}/issues/comments/{comment_id}")
    again = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "Still here", comment_id)
    assert again != comment_id
    assert [c.body for c in env.ours()] == ["<!-- autopack:run:run-1 -->\nStill here"]


async def test_a_long_body_is_capped(env: Env) -> None:
    comment_id = await upsert_run_comment(env.gh, REPO, env.issue, "run-1", "y" * 70_000, None)
    body = env.sim.repo(REPO).all_comments[comment_id].body
    assert len(body) == MAX_BODY
    assert body.startswith(run_marker("run-1"))


async def test_post_comment(env: Env) -> None:
    comment_id = await post_comment(env.gh, REPO, env.issue, "You need write permission.")
    assert [(c.id, c.body) for c in env.ours()] == [(comment_id, "You need write permission.")]
    assert [r.method for r in env.api_calls()] == ["POST"]
    with pytest.raises(ValueError, match="empty"):
        await post_comment(env.gh, REPO, env.issue, "  \n")
