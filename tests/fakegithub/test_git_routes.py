"""Priority 2: git data over HTTP (ids agree with the git CLI), refs, repository reads, tarball."""

from __future__ import annotations

import base64
import gzip
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.testkit import Api, api, first_installation

REPO = "/repos/acme/widgets"


@pytest.fixture
def sim(fakegithub: FakeGitHub) -> FakeGitHub:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(
        "acme/widgets",
        {
            "README.md": "hello\n",
            "src/app.py": "print('hi')\n",
            "run.sh": ("#!/bin/sh\n", "100755"),
        },
        installation=inst,
        protected_branches=["main"],
    )
    return fakegithub


async def _commit_on(gh: Api, parent: str, path: str, content: str, message: str) -> str:
    _, parent_commit = await gh.get(f"{REPO}/git/commits/{parent}")
    status, tree = await gh.post(
        f"{REPO}/git/trees",
        {
            "base_tree": parent_commit["tree"]["sha"],
            "tree": [{"path": path, "mode": "100644", "type": "blob", "content": content}],
        },
    )
    assert status == 201
    status, commit = await gh.post(
        f"{REPO}/git/commits", {"message": message, "tree": tree["sha"], "parents": [parent]}
    )
    assert status == 201
    return str(commit["sha"])


async def test_tree_ids_match_git_cli(sim: FakeGitHub, tmp_path: Path) -> None:
    async with api(sim, first_installation(sim)) as gh:
        status, blob = await gh.post(
            f"{REPO}/git/blobs",
            {"content": base64.b64encode(b"\x00\x01bin").decode(), "encoding": "base64"},
        )
        assert status == 201
        status, tree = await gh.post(
            f"{REPO}/git/trees",
            {
                "tree": [
                    {"path": "a.txt", "mode": "100644", "type": "blob", "content": "alpha\n"},
                    {"path": "dir/b.bin", "mode": "100644", "type": "blob", "sha": blob["sha"]},
                    {"path": "tool", "mode": "100755", "type": "blob", "content": "#!x\n"},
                ]
            },
        )
        assert status == 201
    expected_tree, expected_blob = _git_cli_ids(tmp_path)
    assert tree["sha"] == expected_tree
    assert blob["sha"] == expected_blob


def _git_cli_ids(tmp_path: Path) -> tuple[str, str]:
    """The same files written with the git CLI: (tree id, id of dir/b.bin)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "dir").mkdir()
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "dir" / "b.bin").write_bytes(b"\x00\x01bin")
    (tmp_path / "tool").write_text("#!x\n")
    (tmp_path / "tool").chmod(0o755)
    git = ["git", "-C", str(tmp_path), "-c", "core.fileMode=true"]
    subprocess.run([*git, "add", "-A"], check=True)
    tree = subprocess.run([*git, "write-tree"], check=True, capture_output=True, text=True)
    blob = subprocess.run(
        ["git", "hash-object", str(tmp_path / "dir" / "b.bin")],
        check=True,
        capture_output=True,
        text=True,
    )
    return tree.stdout.strip(), blob.stdout.strip()


async def test_recursive_tree_and_deletion(sim: FakeGitHub) -> None:
    head = sim.repo("acme/widgets").ref("heads/main")
    async with api(sim, first_installation(sim)) as gh:
        _, flat = await gh.get(f"{REPO}/git/trees/{head}")
        _, deep = await gh.get(f"{REPO}/git/trees/main?recursive=1")
        _, commit = await gh.get(f"{REPO}/git/commits/{head}")
        status, pruned = await gh.post(
            f"{REPO}/git/trees",
            {
                "base_tree": commit["tree"]["sha"],
                "tree": [{"path": "src/app.py", "mode": "100644", "type": "blob", "sha": None}],
            },
        )
    assert [e["path"] for e in flat["tree"]] == ["README.md", "run.sh", "src"]
    assert [e["path"] for e in deep["tree"]] == ["README.md", "run.sh", "src", "src/app.py"]
    assert {e["path"]: e["mode"] for e in deep["tree"]}["run.sh"] == "100755"
    assert status == 201
    assert [e["path"] for e in pruned["tree"]] == ["README.md", "run.sh"]


async def test_refs_create_update_delete(sim: FakeGitHub) -> None:
    main = sim.repo("acme/widgets").ref("heads/main")
    assert main is not None
    async with api(sim, first_installation(sim)) as gh:
        status, ref = await gh.post(f"{REPO}/git/refs", {"ref": "refs/heads/feature", "sha": main})
        assert (status, ref["object"]["sha"]) == (201, main)
        status, body = await gh.post(f"{REPO}/git/refs", {"ref": "refs/heads/feature", "sha": main})
        assert (status, body["message"]) == (422, "Reference already exists")
        status, body = await gh.post(f"{REPO}/git/refs", {"ref": "heads/x", "sha": main})
        assert status == 422
        child = await _commit_on(gh, main, "new.txt", "new\n", "child")
        sibling = await _commit_on(gh, main, "other.txt", "other\n", "sibling")
        status, _ = await gh.patch(f"{REPO}/git/refs/heads/feature", {"sha": child, "force": False})
        assert status == 200
        status, body = await gh.patch(
            f"{REPO}/git/refs/heads/feature", {"sha": sibling, "force": False}
        )
        assert (status, body["message"]) == (422, "Update is not a fast forward")
        status, body = await gh.patch(f"{REPO}/git/refs/heads/feature", {"sha": sibling})
        assert (status, body["message"]) == (422, "Update is not a fast forward")
        status, body = await gh.patch(
            f"{REPO}/git/refs/heads/feature", {"sha": sibling, "force": True}
        )
        assert (status, body["object"]["sha"]) == (200, sibling)
        status, body = await gh.patch(f"{REPO}/git/refs/heads/main", {"sha": child})
        assert status == 422  # protected
        status, got = await gh.get(f"{REPO}/git/ref/heads/feature")
        assert (status, got["ref"]) == (200, "refs/heads/feature")
        status, matching = await gh.get(f"{REPO}/git/matching-refs/heads/")
        assert [m["ref"] for m in matching] == ["refs/heads/feature", "refs/heads/main"]
        status, _ = await gh.delete(f"{REPO}/git/refs/heads/feature")
        assert status == 204
        status, body = await gh.delete(f"{REPO}/git/refs/heads/feature")
        assert (status, body["message"]) == (422, "Reference does not exist")
        status, _ = await gh.get(f"{REPO}/git/ref/heads/feature")
        assert status == 404
    assert sim.repo("acme/widgets").ref("heads/feature") is None


async def test_annotated_tag_and_tag_ref(sim: FakeGitHub) -> None:
    main = sim.repo("acme/widgets").ref("heads/main")
    async with api(sim, first_installation(sim)) as gh:
        status, tag = await gh.post(
            f"{REPO}/git/tags",
            {"tag": "v1", "message": "release", "object": main, "type": "commit"},
        )
        assert status == 201
        status, _ = await gh.post(f"{REPO}/git/refs", {"ref": "refs/tags/v1", "sha": tag["sha"]})
        assert status == 201
        _, got = await gh.get(f"{REPO}/git/ref/tags/v1")
        _, read = await gh.get(f"{REPO}/git/tags/{tag['sha']}")
    assert got["object"] == {"type": "tag", "sha": tag["sha"], "url": got["object"]["url"]}
    assert read["object"]["sha"] == main
    assert sim.repo("acme/widgets").resolve("v1") == main


async def test_contents_branches_commit(sim: FakeGitHub) -> None:
    async with api(sim, first_installation(sim)) as gh:
        status, file = await gh.get(f"{REPO}/contents/src/app.py?ref=main")
        assert status == 200
        assert base64.b64decode(file["content"]) == b"print('hi')\n"
        status, listing = await gh.get(f"{REPO}/contents/src")
        assert [e["name"] for e in listing] == ["app.py"]
        status, _ = await gh.get(f"{REPO}/contents/missing.txt")
        assert status == 404
        _, branches = await gh.get(f"{REPO}/branches")
        assert [(b["name"], b["protected"]) for b in branches] == [("main", True)]
        status, branch = await gh.get(f"{REPO}/branches/main")
        assert (status, branch["protected"]) == (200, True)
        status, _ = await gh.get(f"{REPO}/branches/nope")
        assert status == 404
        status, commit = await gh.get(f"{REPO}/commits/main")
        assert commit["commit"]["message"] == "Initial commit"


async def test_tarball_redirects_to_download(sim: FakeGitHub) -> None:
    sha = sim.repo("acme/widgets").ref("heads/main")
    assert sha is not None
    async with api(sim, first_installation(sim)) as gh:
        status, _, headers = await gh.call("GET", f"{REPO}/tarball/main")
        assert status == 302
        location = headers["Location"]
        assert location.startswith(sim.url)
        async with gh.session.get(location) as r:
            assert r.status == 200
            data = await r.read()
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        names = tar.getnames()
    top = f"acme-widgets-{sha[:7]}"
    assert f"{top}/src/app.py" in names
    assert all(n == top or n.startswith(top + "/") for n in names)


async def test_app_created_commits_push_events_have_bot_sender(
    sim: FakeGitHub, webhook_receiver: object
) -> None:
    from tests.fakegithub.receiver import Receiver

    assert isinstance(webhook_receiver, Receiver)
    sim.webhook_url = webhook_receiver.url
    main = sim.repo("acme/widgets").ref("heads/main")
    async with api(sim, first_installation(sim)) as gh:
        await gh.post(f"{REPO}/git/refs", {"ref": "refs/heads/autopack/x", "sha": main})
    await sim.idle()
    push = [r.payload for r in webhook_receiver.received if r.event == "push"]
    assert push[0]["ref"] == "refs/heads/autopack/x"
    assert push[0]["created"] is True
    assert push[0]["sender"]["login"] == "autopack[bot]"
    assert push[0]["sender"]["type"] == "Bot"
