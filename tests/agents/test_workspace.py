"""The workspace against the GitHub simulator, compute_change, reuse between phases, reset."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.agents.tarball import blob_sha
from app.agents.workspace import (
    BaseEntry,
    TarballSource,
    Workspace,
    WorkspaceError,
)
from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.github.client import GitHubApp
from tests.agents.test_tarball import TOP, info, reg, tar_bytes, top
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
FILES: dict[str, bytes | str | tuple[bytes | str, str]] = {
    "README.md": "# widgets\n\nline two\nline three\n",
    "run.sh": ("#!/bin/sh\necho run\n", "100755"),
    "src/app.py": "import os\n\nprint('hi')\n",
    "src/pkg/deep/mod.py": "X = 1\n",
    "src/link.py": ("app.py", "120000"),
    "assets/logo.png": PNG,
}


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def sim(fakegithub: FakeGitHub) -> FakeGitHub:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, FILES, installation=inst)
    return fakegithub


@pytest.fixture
def workspace(sim: FakeGitHub, session: aiohttp.ClientSession, tmp_path: Path) -> Workspace:
    app = GitHubApp(session, sim.url, sim.app.id, sim.app.private_key_pem)
    installation_id = next(iter(sim.world.installations))
    source = TarballSource.from_app(app, session, installation_id, REPO)
    return Workspace.for_run(tmp_path / "data", 42, source)


def head_of(sim: FakeGitHub, branch: str = "main") -> str:
    sha = sim.repo(REPO).ref(f"heads/{branch}")
    assert sha is not None
    return sha


def sim_manifest(sim: FakeGitHub, commit: str) -> dict[str, BaseEntry]:
    """The simulator's own tree of `commit` as a manifest."""
    git = sim.repo(REPO).git
    types = {"100644": EntryType.FILE, "100755": EntryType.EXECUTABLE, "120000": EntryType.SYMLINK}
    return {
        path: BaseEntry(types[entry.mode], entry.sha)
        for path, entry in git.read_tree_recursive(git.get_commit(commit).tree)
        if entry.type == "blob"
    }


def tarball_requests(sim: FakeGitHub) -> int:
    return len(sim.calls("GET", f"/repos/{REPO}/tarball"))


# -- materialising from the simulator ----------------------------------------------------------


async def test_materialise_from_the_simulator(sim: FakeGitHub, workspace: Workspace) -> None:
    head = head_of(sim)
    assert await workspace.ensure(head) is True
    tree = workspace.tree
    assert workspace.root == tree.parent
    assert workspace.root.parts[-2:] == ("workspaces", "42")
    assert (tree / "README.md").read_text() == FILES["README.md"]
    assert (tree / "src/pkg/deep/mod.py").read_text() == "X = 1\n"
    assert (tree / "assets/logo.png").read_bytes() == PNG
    assert os.stat(tree / "run.sh").st_mode & 0o100
    assert not os.stat(tree / "README.md").st_mode & 0o111
    assert os.readlink(tree / "src/link.py") == "app.py"
    assert workspace.head == head
    assert workspace.manifest == sim_manifest(sim, head)
    assert workspace.manifest["src/app.py"].sha == blob_sha(b"import os\n\nprint('hi')\n")
    on_disk = json.loads((workspace.root / "manifest.json").read_text())
    assert on_disk["head"] == head
    assert on_disk["entries"]["run.sh"] == ["executable", workspace.manifest["run.sh"].sha]
    assert workspace.stray_entries() == []
    assert workspace.compute_change() == Change(head, ())
    # The tarball request carried the installation token and the download followed.
    tar_calls = sim.calls("GET", f"/repos/{REPO}/tarball")
    installation_id = next(iter(sim.world.installations))
    assert [(c.status, c.installation_id) for c in tar_calls] == [(302, installation_id)]
    assert [c.status for c in sim.calls("GET", "/_codeload/")] == [200]


async def test_ensure_reuses_and_advance_rebases(sim: FakeGitHub, workspace: Workspace) -> None:
    head = head_of(sim)
    await workspace.ensure(head)
    assert tarball_requests(sim) == 1
    assert await workspace.ensure(head) is False
    assert tarball_requests(sim) == 1

    # A builder's change, pushed by Autopack as the next commit of the branch.
    (workspace.tree / "src/app.py").write_text("import os\n\nprint('hello')\n")
    (workspace.tree / "NEW.md").write_text("new\n")
    (workspace.tree / "src/pkg/deep/mod.py").unlink()
    change = workspace.compute_change()
    pushed = await sim.push(
        REPO,
        "main",
        {
            "src/app.py": "import os\n\nprint('hello')\n",
            "NEW.md": "new\n",
            "src/pkg/deep/mod.py": None,
        },
    )
    assert {f.path for f in change.files} == {"src/app.py", "NEW.md", "src/pkg/deep/mod.py"}
    await asyncio.to_thread(workspace.advance, pushed)
    assert workspace.head == pushed
    assert workspace.manifest == sim_manifest(sim, pushed)
    assert workspace.compute_change() == Change(pushed, ())
    assert await workspace.ensure(pushed) is False
    assert tarball_requests(sim) == 1

    # After advance, reset restores the new base, not the old download.
    (workspace.tree / "NEW.md").unlink()
    workspace.reset()
    assert (workspace.tree / "NEW.md").read_text() == "new\n"
    assert not (workspace.tree / "src/pkg/deep/mod.py").exists()

    # Someone else moved the branch: exactly one more download.
    moved = await sim.push(REPO, "main", {"by-a-person.txt": "hi\n"})
    assert await workspace.ensure(moved) is True
    assert tarball_requests(sim) == 2
    assert (workspace.tree / "by-a-person.txt").read_text() == "hi\n"
    assert workspace.manifest == sim_manifest(sim, moved)


async def test_a_reopened_workspace_knows_its_head(sim: FakeGitHub, workspace: Workspace) -> None:
    head = head_of(sim)
    await workspace.ensure(head)
    again = Workspace(workspace.root, workspace.source)
    assert again.head == head
    assert again.manifest == workspace.manifest
    assert await again.ensure(head) is False
    assert tarball_requests(sim) == 1
    # A damaged manifest means "no base": the next ensure downloads again.
    (workspace.root / "manifest.json").write_text("{not json")
    broken = Workspace(workspace.root, workspace.source)
    assert broken.head is None
    assert await broken.ensure(head) is True
    assert tarball_requests(sim) == 2


async def test_reset_restores_the_tree(sim: FakeGitHub, workspace: Workspace) -> None:
    head = head_of(sim)
    await workspace.ensure(head)
    tree = workspace.tree
    shutil.rmtree(tree / "src")
    (tree / "README.md").write_text("rewritten\n")
    (tree / "added.txt").write_text("added\n")
    (tree / "newdir/deeper").mkdir(parents=True)
    os.chmod(tree / "run.sh", 0o644)
    (tree / "passwd").symlink_to("/etc/passwd")
    (tree / "locked").mkdir()
    os.chmod(tree / "locked", 0o500)
    assert not workspace.compute_change().empty
    workspace.reset()
    assert workspace.compute_change() == Change(head, ())
    assert sorted(os.listdir(tree)) == ["README.md", "assets", "run.sh", "src"]
    assert (tree / "src/pkg/deep/mod.py").read_text() == "X = 1\n"
    assert os.stat(tree / "run.sh").st_mode & 0o100
    assert tarball_requests(sim) == 1
    assert sorted(os.listdir(workspace.root)) == ["base.tar.gz", "manifest.json", "tree"]


async def test_reset_refuses_a_tampered_archive(sim: FakeGitHub, workspace: Workspace) -> None:
    await workspace.ensure(head_of(sim))
    workspace.archive.write_bytes(tar_bytes([top(), reg(f"{TOP}/README.md", b"evil\n")]))
    assert workspace.stray_entries() == ["base.tar.gz (modified)"]
    with pytest.raises(WorkspaceError, match="does not match the recorded base"):
        workspace.reset()


async def test_stray_entries(sim: FakeGitHub, workspace: Workspace) -> None:
    await workspace.ensure(head_of(sim))
    assert workspace.stray_entries() == []
    (workspace.root / "escaped.txt").write_text("outside the tree")
    (workspace.root / ".hidden").mkdir()
    manifest = workspace.root / "manifest.json"
    manifest.write_text(manifest.read_text())  # same bytes, rewritten
    assert workspace.stray_entries() == [".hidden", "escaped.txt", "manifest.json (modified)"]


async def test_tree_replaced_by_a_link_is_noticed(sim: FakeGitHub, workspace: Workspace) -> None:
    await workspace.ensure(head_of(sim))
    shutil.rmtree(workspace.tree)
    workspace.tree.symlink_to("/etc")
    assert workspace.stray_entries() == ["tree (not a directory)"]
    with pytest.raises(WorkspaceError, match="no longer a directory"):
        workspace.compute_change()
    workspace.tree.unlink()
    assert workspace.stray_entries() == ["tree (missing)"]
    with pytest.raises(WorkspaceError, match="no longer a directory"):
        workspace.compute_change()
    # ensure() sees the workspace is not intact and materialises again.
    assert await workspace.ensure(head_of(sim)) is True
    assert workspace.stray_entries() == []


# -- compute_change on a local base ------------------------------------------------------------


class LocalSource:
    """A CommitSource serving one archive from disk."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.downloads = 0

    async def download(self, sha: str, dest: Path, max_bytes: int) -> None:
        self.downloads += 1
        await asyncio.to_thread(dest.write_bytes, self.data)


BASE_SHA = "a" * 40
BASE = [
    top(),
    reg(f"{TOP}/text.txt", b"one\ntwo\nthree\n"),
    reg(f"{TOP}/tool.sh", b"#!/bin/sh\n", 0o755),
    reg(f"{TOP}/data.bin", b"\x00\x01\x02"),
    reg(f"{TOP}/dir/nested.txt", b"a\nb\n"),
    (info(f"{TOP}/alias", tarfile.SYMTYPE, mode=0o777, link="text.txt"), None),
]


@pytest.fixture
async def local(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws", LocalSource(tar_bytes(BASE)))
    await ws.ensure(BASE_SHA)
    return ws


def only(change: Change) -> FileChange:
    assert len(change.files) == 1, change.files
    return change.files[0]


def test_empty_change(local: Workspace) -> None:
    change = local.compute_change()
    assert change.empty
    assert change.base_commit == BASE_SHA


def test_added_text_file(local: Workspace) -> None:
    (local.tree / "new/deep").mkdir(parents=True)
    (local.tree / "new/deep/file.py").write_text("a\nb\nc\n")
    (local.tree / "empty-dir").mkdir()
    assert only(local.compute_change()) == FileChange(
        "new/deep/file.py", ChangeKind.ADDED, EntryType.FILE, b"a\nb\nc\n", 3, 0, False
    )


def test_modified_text_counts_lines(local: Workspace) -> None:
    (local.tree / "text.txt").write_text("one\nTWO\nthree\nfour\n")
    assert only(local.compute_change()) == FileChange(
        "text.txt", ChangeKind.MODIFIED, EntryType.FILE, b"one\nTWO\nthree\nfour\n", 2, 1, False
    )


def test_deleted_file_counts_removed_lines(local: Workspace) -> None:
    (local.tree / "dir/nested.txt").unlink()
    assert only(local.compute_change()) == FileChange(
        "dir/nested.txt", ChangeKind.DELETED, EntryType.FILE, None, 0, 2, False
    )


def test_old_content_of_modified_and_deleted_text_files(local: Workspace) -> None:
    (local.tree / "text.txt").write_text("one\n")
    (local.tree / "dir/nested.txt").unlink()
    (local.tree / "data.bin").write_bytes(b"\x00\x09")
    (local.tree / "new.txt").write_text("new\n")
    old = {f.path: f.old_content for f in local.compute_change().files}
    assert old == {
        "data.bin": None,  # binary: no lines to compare
        "dir/nested.txt": b"a\nb\n",
        "new.txt": None,
        "text.txt": b"one\ntwo\nthree\n",
    }


def test_deleted_binary_and_symlink(local: Workspace) -> None:
    (local.tree / "data.bin").unlink()
    (local.tree / "alias").unlink()
    assert local.compute_change().files == (
        FileChange("alias", ChangeKind.DELETED, EntryType.SYMLINK, None, 0, 0, False),
        FileChange("data.bin", ChangeKind.DELETED, EntryType.FILE, None, 0, 0, True),
    )


@pytest.mark.parametrize(
    ("path", "mode", "entry_type"),
    [("text.txt", 0o755, EntryType.EXECUTABLE), ("tool.sh", 0o644, EntryType.FILE)],
)
def test_mode_change_alone(local: Workspace, path: str, mode: int, entry_type: EntryType) -> None:
    content = (local.tree / path).read_bytes()
    os.chmod(local.tree / path, mode)
    assert only(local.compute_change()) == FileChange(
        path, ChangeKind.MODIFIED, entry_type, content, 0, 0, False
    )


def test_symlinks_report_their_target(local: Workspace) -> None:
    (local.tree / "alias").unlink()
    (local.tree / "alias").symlink_to("tool.sh")
    (local.tree / "passwd").symlink_to("/etc/passwd")
    assert local.compute_change().files == (
        FileChange("alias", ChangeKind.MODIFIED, EntryType.SYMLINK, b"tool.sh"),
        FileChange("passwd", ChangeKind.ADDED, EntryType.SYMLINK, b"/etc/passwd"),
    )


def test_file_replaced_by_symlink_and_back(local: Workspace) -> None:
    (local.tree / "text.txt").unlink()
    (local.tree / "text.txt").symlink_to("tool.sh")
    (local.tree / "alias").unlink()
    (local.tree / "alias").write_text("now a file\n")
    assert local.compute_change().files == (
        FileChange("alias", ChangeKind.MODIFIED, EntryType.FILE, b"now a file\n", 1, 0, False),
        FileChange("text.txt", ChangeKind.MODIFIED, EntryType.SYMLINK, b"tool.sh"),
    )


def test_binary_detection(local: Workspace) -> None:
    (local.tree / "nul.dat").write_bytes(b"text then \x00 nul\n")
    (local.tree / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (local.tree / "utf8.txt").write_text("café\n", encoding="utf-8")
    (local.tree / "data.bin").write_bytes(b"\x00\x01\x02\x03")
    files = {f.path: f for f in local.compute_change().files}
    assert {p: f.binary for p, f in files.items()} == {
        "data.bin": True,
        "latin1.txt": True,
        "nul.dat": True,
        "utf8.txt": False,
    }
    assert (files["nul.dat"].lines_added, files["nul.dat"].lines_removed) == (0, 0)
    assert files["utf8.txt"].lines_added == 1


def test_text_replacing_binary_counts_only_new_lines(local: Workspace) -> None:
    (local.tree / "data.bin").write_text("x\ny\n")
    change = only(local.compute_change())
    assert (change.kind, change.lines_added, change.lines_removed) == (ChangeKind.MODIFIED, 2, 0)


def test_nested_repository_is_a_submodule(local: Workspace) -> None:
    (local.tree / "vendor/lib/.git").mkdir(parents=True)
    (local.tree / "vendor/lib/.git/HEAD").write_text("ref: refs/heads/main\n")
    (local.tree / "vendor/lib/code.py").write_text("never read\n")
    (local.tree / "dir/.git").write_text("gitdir: ../elsewhere\n")
    assert local.compute_change().files == (
        FileChange("dir", ChangeKind.ADDED, EntryType.SUBMODULE),
        # The base file under the new nested repository is no longer part of the tree.
        FileChange("dir/nested.txt", ChangeKind.DELETED, EntryType.FILE, None, 0, 2, False),
        FileChange("vendor/lib", ChangeKind.ADDED, EntryType.SUBMODULE),
    )


def test_root_git_directory_is_ignored_but_visible(local: Workspace) -> None:
    assert not local.has_git_dir()
    (local.tree / ".git/objects").mkdir(parents=True)
    (local.tree / ".git/config").write_text("[core]\n")
    assert local.compute_change().empty
    assert local.has_git_dir()
    local.reset()
    assert not local.has_git_dir()


def test_fifo_is_refused_unread(local: Workspace) -> None:
    os.mkfifo(local.tree / "dir/pipe")
    # Reading a fifo with no writer would block forever: reaching the assertion proves it was not.
    with pytest.raises(WorkspaceError, match="dir/pipe: fifo"):
        local.compute_change()
    local.reset()
    assert local.compute_change().empty


def test_socket_is_refused(local: Workspace) -> None:
    import socket

    # AF_UNIX paths are short: bind from inside the tree with a relative name.
    cwd = os.getcwd()
    os.chdir(local.tree)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("sock")
            with pytest.raises(WorkspaceError, match="sock: socket"):
                local.compute_change()
    finally:
        os.chdir(cwd)


_COMPUTE_CHANGE = """
import sys
from pathlib import Path
from app.agents.workspace import Workspace, WorkspaceError
try:
    Workspace(Path(sys.argv[1]), source=None).compute_change()
except WorkspaceError as exc:
    print(exc)
"""


def test_unreadable_folder_is_an_error(local: Workspace) -> None:
    (local.tree / "closed").mkdir()
    os.chmod(local.tree / "closed", 0)
    try:
        if os.geteuid() != 0:
            with pytest.raises(WorkspaceError, match="closed: unreadable folder"):
                local.compute_change()
            return
        # Root reads anything: compute the change in a process without the capabilities that
        # bypass file permissions (as the worker is when it does not run as root).
        drop_capabilities = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--"]
        done = subprocess.run(
            [*drop_capabilities, sys.executable, "-c", _COMPUTE_CHANGE, str(local.root)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parents[2],
        )
        assert "closed: unreadable folder" in done.stdout
    finally:
        os.chmod(local.tree / "closed", 0o700)


def test_oversized_file_is_refused_without_reading(tmp_path: Path) -> None:
    from app.agents.tarball import WorkspaceLimits

    ws = Workspace(
        tmp_path / "ws", LocalSource(tar_bytes(BASE)), WorkspaceLimits(max_file_bytes=100)
    )
    asyncio.run(ws.ensure(BASE_SHA))
    with (ws.tree / "huge.bin").open("wb") as handle:
        handle.truncate(10_000)
    with pytest.raises(WorkspaceError, match=r"huge\.bin: 10000 bytes exceeds the per-file cap"):
        ws.compute_change()


def test_deleting_everything(local: Workspace) -> None:
    for entry in os.listdir(local.tree):
        path = local.tree / entry
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    change = local.compute_change()
    assert [(f.path, f.kind) for f in change.files] == [
        ("alias", ChangeKind.DELETED),
        ("data.bin", ChangeKind.DELETED),
        ("dir/nested.txt", ChangeKind.DELETED),
        ("text.txt", ChangeKind.DELETED),
        ("tool.sh", ChangeKind.DELETED),
    ]
    assert change.lines_changed == 3 + 1 + 2
    local.reset()
    assert local.compute_change().empty


def test_advance_without_download(local: Workspace) -> None:
    source = local.source
    assert isinstance(source, LocalSource)
    (local.tree / "text.txt").write_text("changed\n")
    (local.tree / "sub").mkdir()
    (local.tree / "sub/x").write_text("x\n")
    os.chmod(local.tree / "sub/x", 0o700)
    local.advance("b" * 40)
    assert local.head == "b" * 40
    assert local.manifest["sub/x"] == BaseEntry(EntryType.EXECUTABLE, blob_sha(b"x\n"))
    assert local.manifest["alias"] == BaseEntry(EntryType.SYMLINK, blob_sha(b"text.txt"))
    assert local.compute_change() == Change("b" * 40, ())
    (local.tree / "sub/x").unlink()
    (local.tree / "text.txt").write_text("again\n")
    assert {f.path for f in local.compute_change().files} == {"sub/x", "text.txt"}
    local.reset()
    assert (local.tree / "text.txt").read_text() == "changed\n"
    assert local.compute_change().empty
    assert source.downloads == 1


def test_operations_need_a_base(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", LocalSource(b""))
    with pytest.raises(WorkspaceError, match="no base materialised"):
        ws.reset()
    with pytest.raises(WorkspaceError, match="no base materialised"):
        ws.advance("c" * 40)
    with pytest.raises(WorkspaceError, match="no base materialised"):
        ws.compute_change()


def test_destroy(local: Workspace) -> None:
    local.destroy()
    assert not local.root.exists()
    assert local.head is None


# -- property: compute_change reports exactly what was edited ----------------------------------

NAMES = st.sampled_from(["f1", "f2", "f3", "f4.txt"])
DIRS = st.lists(st.sampled_from(["d1", "d2"]), max_size=2)
PATHS = st.builds(lambda d, n: "/".join([*d, n]), DIRS, NAMES)
CONTENT = st.one_of(st.text(alphabet="ab\n", max_size=30).map(str.encode), st.binary(max_size=30))
# A state of one path: (content, executable) for a file, or a symlink target.
STATE = st.one_of(
    st.tuples(CONTENT, st.booleans()), st.sampled_from(["f1", "../d1/f2", "/etc/passwd"])
)
FILE_MAPS = st.dictionaries(PATHS, STATE, max_size=8)


def _members(files: dict[str, tuple[bytes, bool] | str]) -> list[tuple[object, bytes | None]]:
    members: list[tuple[object, bytes | None]] = [top()]
    for path, state in files.items():
        if isinstance(state, str):
            members.append((info(f"{TOP}/{path}", tarfile.SYMTYPE, mode=0o777, link=state), None))
        else:
            members.append(reg(f"{TOP}/{path}", state[0], 0o755 if state[1] else 0o644))
    return members


def _write_state(tree: Path, path: str, state: tuple[bytes, bool] | str | None) -> None:
    full = tree / path
    if os.path.lexists(full):
        full.unlink()
    if state is None:
        return
    full.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(state, str):
        full.symlink_to(state)
    else:
        full.write_bytes(state[0])
        os.chmod(full, 0o755 if state[1] else 0o644)


def _safe(files: dict[str, tuple[bytes, bool] | str]) -> dict[str, tuple[bytes, bool] | str]:
    # A base archive may only hold links that stay inside: drop the ones that escape.
    return {p: s for p, s in files.items() if not (isinstance(s, str) and s == "/etc/passwd")}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=FILE_MAPS, edits=st.dictionaries(PATHS, st.one_of(st.none(), STATE), max_size=6))
def test_property_reports_exactly_the_edited_paths(
    base: dict[str, tuple[bytes, bool] | str],
    edits: dict[str, tuple[bytes, bool] | str | None],
) -> None:
    base = _safe(base)
    with tempfile.TemporaryDirectory() as scratch:
        ws = Workspace(Path(scratch) / "ws", LocalSource(tar_bytes(_members(base))))  # type: ignore[arg-type]
        if any(s == "../d1/f2" and "/" not in p for p, s in base.items()):
            # "../d1/f2" from a top-level path leaves the tree: the base itself is refused.
            with pytest.raises(WorkspaceError, match="leaves the workspace"):
                asyncio.run(ws.ensure(BASE_SHA))
            return
        asyncio.run(ws.ensure(BASE_SHA))
        final = dict(base)
        for path, state in edits.items():
            _write_state(ws.tree, path, state)
            if state is None:
                final.pop(path, None)
            else:
                final[path] = state
        change = ws.compute_change()
        expected = {p for p in base.keys() | final.keys() if base.get(p) != final.get(p)}
        assert {f.path for f in change.files} == expected
        assert [f.path for f in change.files] == sorted(expected)
        for f in change.files:
            if f.path not in final:
                assert f.kind == ChangeKind.DELETED
                continue
            state = final[f.path]
            assert f.kind == (ChangeKind.MODIFIED if f.path in base else ChangeKind.ADDED)
            if isinstance(state, str):
                assert (f.entry_type, f.content) == (EntryType.SYMLINK, state.encode())
            else:
                kind = EntryType.EXECUTABLE if state[1] else EntryType.FILE
                assert (f.entry_type, f.content) == (kind, state[0])
        ws.reset()
        assert ws.compute_change().empty
