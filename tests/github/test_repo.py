"""Repository reads against the simulator: values, errors, and how many calls each costs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from app.github.client import GitHubApp, InstallationClient
from app.github.repo import (
    DefaultHead,
    FileTooLarge,
    IssueView,
    NotAFile,
    RepositoryEmpty,
    default_branch_head,
    get_issue,
    protected_branches,
    read_file,
    repo_vars,
    sender_permission,
)
from tests.fakegithub.ci import CIScript
from tests.fakegithub.core import RequestRecord
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.state import Repo

REPO = "acme/widgets"
FILES = {
    "README.md": "# widgets\n",
    "src/app.py": "print('hi')\n",
    "docs/a b.txt": "spaced\n",
    "logo.bin": b"\x89PNG\x00\xff\xfe",
}


@dataclass
class Env:
    sim: FakeGitHub
    gh: InstallationClient
    repo: Repo

    def api_calls(self) -> list[RequestRecord]:
        """Requests made as the installation (token requests excluded)."""
        return [r for r in self.sim.request_log if r.app == "autopack"]


@pytest.fixture
async def env(fakegithub: FakeGitHub) -> AsyncIterator[Env]:
    inst = fakegithub.install("acme")
    repo = fakegithub.create_repo(
        REPO, FILES, installation=inst, protected_branches=["release"], ci=CIScript.flaky()
    )
    fakegithub.create_repo("acme/empty", {}, installation=inst)
    fakegithub.create_repo("acme/trunky", default_branch="trunk", installation=inst)
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        yield Env(fakegithub, app.installation(inst.id), repo)


@pytest.mark.parametrize("bad", ["acme", "acme/", "/widgets", "acme/widgets/x", ""])
def test_repo_vars_refuses_anything_but_owner_name(bad: str) -> None:
    with pytest.raises(ValueError, match="owner/name"):
        repo_vars(bad)


async def test_default_branch_head_in_two_calls(env: Env) -> None:
    head = await default_branch_head(env.gh, REPO)
    assert head == DefaultHead("main", env.repo.ref("heads/main"))
    branch, sha = head  # unpacks as the engine expects
    assert (branch, sha) == ("main", env.repo.ref("heads/main"))
    assert [(r.method, r.path) for r in env.api_calls()] == [
        ("GET", "/repos/acme/widgets"),
        ("GET", "/repos/acme/widgets/git/ref/heads/main"),
    ]


async def test_default_branch_head_follows_a_renamed_default(env: Env) -> None:
    head = await default_branch_head(env.gh, "acme/trunky")
    assert head.branch == "trunk"
    assert head.sha == env.sim.repo("acme/trunky").ref("heads/trunk")


async def test_default_branch_head_of_an_empty_repository(env: Env) -> None:
    with pytest.raises(RepositoryEmpty, match="no commits"):
        await default_branch_head(env.gh, "acme/empty")


async def test_protected_branches_follows_pagination(env: Env) -> None:
    base = env.repo.ref("heads/main")
    assert base is not None
    names = {f"keep-{i:03d}" for i in range(120)}
    for name in names | {"release", "feature"}:
        env.repo.refs[f"refs/heads/{name}"] = base
    env.repo.protected |= names
    found = await protected_branches(env.gh, REPO)
    assert found == frozenset(names | {"release"})
    calls = env.api_calls()
    assert [r.method for r in calls] == ["GET", "GET"]  # 121 names, 100 per page
    assert all("protected=true" in r.query for r in calls)


async def test_protected_branches_none(env: Env) -> None:
    assert await protected_branches(env.gh, "acme/trunky") == frozenset()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", b"# widgets\n"),
        ("src/app.py", b"print('hi')\n"),
        ("/src/app.py", b"print('hi')\n"),
        ("docs/a b.txt", b"spaced\n"),
        ("logo.bin", b"\x89PNG\x00\xff\xfe"),
        ("missing.txt", None),
        ("src/missing.py", None),
    ],
)
async def test_read_file(env: Env, path: str, expected: bytes | None) -> None:
    assert await read_file(env.gh, REPO, path, "main", max_bytes=1000) == expected
    assert len(env.api_calls()) == 1


async def test_read_file_at_a_branch_ref(env: Env) -> None:
    await env.sim.push(REPO, "autopack/issue-1-run-1", {"src/app.py": "print('new')\n"})
    got = await read_file(env.gh, REPO, "src/app.py", "autopack/issue-1-run-1", 100)
    assert got == b"print('new')\n"
    assert await read_file(env.gh, REPO, "src/app.py", "main", 100) == b"print('hi')\n"


async def test_read_file_refuses_a_directory(env: Env) -> None:
    with pytest.raises(NotAFile, match="directory") as caught:
        await read_file(env.gh, REPO, "src", "main", 1000)
    assert caught.value.kind == "directory"


async def test_read_file_refuses_a_large_file_before_decoding(env: Env) -> None:
    with pytest.raises(FileTooLarge) as caught:
        await read_file(env.gh, REPO, "src/app.py", "main", max_bytes=5)
    assert (caught.value.size, caught.value.max_bytes) == (12, 5)


@pytest.mark.parametrize("path", ["", "/", "a/../README.md", "./README.md", "a//b"])
async def test_read_file_refuses_odd_paths_without_a_request(env: Env, path: str) -> None:
    with pytest.raises(ValueError, match="not a repository file path"):
        await read_file(env.gh, REPO, path, "main", 1000)
    assert env.api_calls() == []


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("admin", "admin"),
        ("maintain", "write"),
        ("write", "write"),
        ("triage", "read"),
        ("read", "read"),
        ("none", "none"),
    ],
)
async def test_sender_permission(env: Env, role: str, expected: str) -> None:
    env.sim.set_permission(REPO, "alice", role)
    assert await sender_permission(env.gh, REPO, "alice") == expected
    assert len(env.api_calls()) == 1


async def test_sender_permission_of_an_unknown_user_is_none(env: Env) -> None:
    assert await sender_permission(env.gh, REPO, "nobody-at-all") == "none"


async def test_get_issue_and_pull_request(env: Env) -> None:
    number = await env.sim.open_issue(REPO, "Add X", "Please add X.", user="alice")
    await env.sim.label_issue(REPO, number, "autopack:run")
    issue = await get_issue(env.gh, REPO, number)
    assert issue == IssueView(number, "Add X", "Please add X.", "open", ("autopack:run",), False)
    await env.sim.push(REPO, "feature", {"x.txt": "x\n"})
    pull = await env.gh.post(
        "/repos/acme/widgets/pulls", data={"title": "T", "head": "feature", "base": "main"}
    )
    seen = await get_issue(env.gh, REPO, pull["number"])
    assert seen.is_pull_request
    assert seen.body == ""  # a null body reads as empty
