"""The governed write path against the simulator: what lands, in how many calls, what never can."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.github.client import GitHubApp
from app.github.commits import (
    Attempt,
    BranchMoved,
    GovernedWriter,
    RefPolicy,
    RefRefused,
    parse_trailers,
)
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"
BRANCH = "autopack/issue-1-run-1"
POLICY = RefPolicy(default_branch="main", protected=frozenset({"release"}))


@dataclass
class Setup:
    sim: FakeGitHub
    writer: GovernedWriter
    base: str
    base_tree: str


@pytest.fixture
async def setup(fakegithub: FakeGitHub) -> AsyncIterator[Setup]:
    inst = fakegithub.install("acme")
    repo = fakegithub.create_repo(
        REPO,
        {"README.md": "# widgets\n", "src/app.py": "print('hi')\n", "old.txt": "bye\n"},
        installation=inst,
        protected_branches=["release"],
    )
    base = repo.ref("heads/main")
    assert base is not None
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem)
        writer = GovernedWriter(app.installation(inst.id), REPO, POLICY)
        await writer.create_branch(BRANCH, base)
        base_tree = repo.git.get_commit(base).tree
        yield Setup(fakegithub, writer, base, base_tree)


def text_change(base: str) -> Change:
    return Change(
        base_commit=base,
        files=(
            FileChange(
                "src/app.py", ChangeKind.MODIFIED, EntryType.FILE, b"print('hello')\n", 1, 1
            ),
            FileChange("bin/run", ChangeKind.ADDED, EntryType.EXECUTABLE, b"#!/bin/sh\n", 1, 0),
            FileChange("old.txt", ChangeKind.DELETED, EntryType.FILE, None, 0, 1),
        ),
    )


ATTEMPT = Attempt("run-1", "phase-1", 1)


@pytest.mark.parametrize(
    "ref",
    [
        "main",
        "refs/heads/main",
        "release",
        "feature/x",
        "autopack",
        "refs/tags/v1.0",
        "refs/notes/autopack/x",
        "autopack/../main",
        "autopack//x",
        "autopack/x~1",
        "refs/heads/autopack/../../heads/main",
    ],
)
def test_policy_refuses(ref: str) -> None:
    with pytest.raises(RefRefused):
        POLICY.check(ref)


def test_policy_refuses_a_default_branch_inside_the_prefix() -> None:
    policy = RefPolicy(default_branch="autopack/main")
    with pytest.raises(RefRefused, match="default branch"):
        policy.check("autopack/main")
    assert policy.check("autopack/other") == "refs/heads/autopack/other"


def test_policy_accepts_integration_refs() -> None:
    assert POLICY.check(BRANCH) == f"refs/heads/{BRANCH}"
    assert POLICY.check("refs/tags/autopack/r/p") == "refs/tags/autopack/r/p"


_REF_NAME = st.text(st.characters(codec="ascii"), max_size=30) | st.from_regex(
    r"[a-z0-9][a-z0-9._-]{0,20}(/[a-z0-9][a-z0-9._-]{0,20}){0,2}", fullmatch=True
)
_REF = st.one_of(
    st.text(max_size=60),
    st.builds(
        "".join,
        st.tuples(
            st.sampled_from(
                ["", "autopack/", "refs/heads/autopack/", "refs/tags/autopack/", "refs/heads/"]
            ),
            _REF_NAME,
        ),
    ),
)


@given(_REF)
@settings(deadline=None)
def test_policy_never_accepts_anything_else(ref: str) -> None:
    try:
        full = POLICY.check(ref)
    except RefRefused:
        event("refused")
        return
    event("accepted")  # the assertions below must run, not only the refusal
    assert full.startswith(("refs/heads/autopack/", "refs/tags/autopack/"))
    assert ".." not in full.split("/")
    assert full not in ("refs/heads/main", "refs/heads/release")
    assert full.removeprefix("refs/heads/").removeprefix("refs/tags/").startswith("autopack/")


def test_the_ref_strategy_reaches_acceptance() -> None:
    accepted = 0

    @given(_REF)
    @settings(deadline=None, max_examples=200, database=None)
    def count(ref: str) -> None:
        nonlocal accepted
        try:
            POLICY.check(ref)
        except RefRefused:
            return
        accepted += 1

    count()
    assert accepted >= 20


async def test_text_change_lands_in_three_calls(setup: Setup) -> None:
    before = len(setup.sim.request_log)
    result = await setup.writer.push(
        BRANCH,
        text_change(setup.base),
        expected_head=setup.base,
        base_tree=setup.base_tree,
        message="Phase 1: greet properly",
        attempt=ATTEMPT,
    )
    calls = [(r.method, r.path) for r in setup.sim.request_log[before:] if r.app == "autopack"]
    assert calls == [
        ("POST", f"/repos/{REPO}/git/trees"),
        ("POST", f"/repos/{REPO}/git/commits"),
        ("PATCH", f"/repos/{REPO}/git/refs/heads/{BRANCH}"),
    ]
    assert result.created
    repo = setup.sim.repo(REPO)
    assert repo.ref(f"heads/{BRANCH}") == result.commit_sha
    assert repo.ref("heads/main") == setup.base
    files = repo.files(f"heads/{BRANCH}")
    assert files["src/app.py"] == b"print('hello')\n"
    assert files["bin/run"] == b"#!/bin/sh\n"
    assert "old.txt" not in files
    modes = {path: entry.mode for path, entry in repo.git.read_tree_recursive(result.tree_sha)}
    assert modes["bin/run"] == "100755"
    commit = repo.git.get_commit(result.commit_sha)
    assert commit.parents == (setup.base,)
    assert parse_trailers(commit.message) == {
        "Autopack-Run": "run-1",
        "Autopack-Phase": "phase-1",
        "Autopack-Attempt": "1",
    }


async def test_binary_content_goes_through_a_blob(setup: Setup) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    change = Change(
        setup.base, (FileChange("logo.png", ChangeKind.ADDED, EntryType.FILE, png, binary=True),)
    )
    before = len(setup.sim.request_log)
    result = await setup.writer.push(
        BRANCH,
        change,
        expected_head=setup.base,
        base_tree=setup.base_tree,
        message="logo",
        attempt=ATTEMPT,
    )
    posts = [r.path for r in setup.sim.request_log[before:] if r.method == "POST"]
    assert posts[0] == f"/repos/{REPO}/git/blobs"
    assert setup.sim.repo(REPO).files(result.commit_sha)["logo.png"] == png


async def test_retried_push_finds_the_landed_commit(setup: Setup) -> None:
    def push(message: str) -> Any:
        return setup.writer.push(
            BRANCH,
            text_change(setup.base),
            expected_head=setup.base,
            base_tree=setup.base_tree,
            message=message,
            attempt=ATTEMPT,
        )

    first = await push("Phase 1")
    # Within the same second the retry builds the identical commit: the ref update is a no-op.
    same = await push("Phase 1")
    assert same.commit_sha == first.commit_sha
    # Later (another timestamp, here another message) the new commit is not a fast-forward, and
    # the trailers identify the commit already on the branch as this attempt's.
    later = await push("Phase 1, retried after a crash")
    assert not later.created
    assert later.commit_sha == first.commit_sha
    history = setup.sim.repo(REPO).commits(f"heads/{BRANCH}")
    assert [c.sha for c in history] == [first.commit_sha, setup.base]


async def test_an_empty_retry_after_the_push_returns_the_landed_commit(setup: Setup) -> None:
    kwargs: Any = {"expected_head": setup.base, "base_tree": setup.base_tree, "message": "m"}
    first = await setup.writer.push(BRANCH, text_change(setup.base), attempt=ATTEMPT, **kwargs)
    # The worker died after the push and after its workspace took the pushed tree as its base:
    # carried out again, the push sees no change left, and the branch holds this attempt.
    empty = Change(base_commit=setup.base, files=())
    again = await setup.writer.push(BRANCH, empty, attempt=ATTEMPT, **kwargs)
    assert (again.commit_sha, again.created) == (first.commit_sha, False)
    with pytest.raises(ValueError, match="empty change"):
        await setup.writer.push(BRANCH, empty, attempt=Attempt("run-1", "phase-1", 2), **kwargs)


async def test_a_moved_branch_is_reported_never_forced(setup: Setup) -> None:
    human = await setup.sim.push(REPO, BRANCH, {"human.txt": "mine\n"}, sender="alice")
    with pytest.raises(BranchMoved) as caught:
        await setup.writer.push(
            BRANCH,
            text_change(setup.base),
            expected_head=setup.base,
            base_tree=setup.base_tree,
            message="Phase 1",
            attempt=ATTEMPT,
        )
    assert caught.value.actual == human
    assert setup.sim.repo(REPO).ref(f"heads/{BRANCH}") == human


async def test_a_different_attempt_on_a_moved_branch_is_not_mistaken_for_ours(
    setup: Setup,
) -> None:
    kwargs = {"expected_head": setup.base, "base_tree": setup.base_tree, "message": "m"}
    await setup.writer.push(BRANCH, text_change(setup.base), attempt=ATTEMPT, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(BranchMoved):
        await setup.writer.push(
            BRANCH,
            text_change(setup.base),
            attempt=Attempt("run-1", "phase-1", 2),
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("branch", ["main", "release", "feature/x", "refs/heads/main"])
async def test_no_code_path_writes_outside_the_prefix(setup: Setup, branch: str) -> None:
    before = len(setup.sim.request_log)
    with pytest.raises(RefRefused):
        await setup.writer.push(
            branch,
            text_change(setup.base),
            expected_head=setup.base,
            base_tree=setup.base_tree,
            message="x",
            attempt=ATTEMPT,
        )
    with pytest.raises(RefRefused):
        await setup.writer.create_branch(branch, setup.base)
    assert len(setup.sim.request_log) == before  # refused before any request
    assert setup.sim.repo(REPO).ref("heads/main") == setup.base


async def test_snapshot_and_create_branch_are_idempotent(setup: Setup) -> None:
    ref = await setup.writer.snapshot("run-1", "phase-1", setup.base)
    assert ref == "refs/tags/autopack/run-1/phase-1"
    assert await setup.writer.snapshot("run-1", "phase-1", setup.base) == ref
    assert setup.sim.repo(REPO).ref("tags/autopack/run-1/phase-1") == setup.base
    await setup.writer.create_branch(BRANCH, setup.base)  # exists at that sha: fine
    human = await setup.sim.push(REPO, BRANCH, {"x": "y"}, sender="alice")
    with pytest.raises(BranchMoved):
        await setup.writer.create_branch(BRANCH, setup.base)
    assert setup.sim.repo(REPO).ref(f"heads/{BRANCH}") == human


def test_attempt_ids_are_validated() -> None:
    with pytest.raises(ValueError, match="safe identifier"):
        Attempt("run 1\nAutopack-Run: other", "p", 1)
    with pytest.raises(ValueError, match="start at 1"):
        Attempt("r", "p", 0)
