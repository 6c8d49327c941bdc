"""The simulator's git object store, checked object for object against the real git CLI."""

from __future__ import annotations

import gzip
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakegithub.gitobjects import git_date, iso_date
from tests.fakegithub.gitstore import (
    GitStore,
    InvalidObject,
    ObjectNotFound,
    Signature,
    TreeEntry,
)

ALICE = Signature("Alice Ünicode", "alice@example.com", "2026-11-25T14:36:08+01:00")
BOB = Signature("Bob", "bob@example.com", "2026-11-26T09:00:00-05:30")
UTC_SIG = Signature("Carol", "carol@example.com", "2026-11-25T14:36:08Z")
SUBMODULE_SHA = "0123456789abcdef0123456789abcdef01234567"

Files = Mapping[str, tuple[bytes, str]]
FileSpec = Mapping[str, bytes | str | tuple[bytes | str, str]]


@dataclass
class Git:
    """The git CLI on one scratch repository, isolated from any user or system config."""

    root: Path

    def env(self, extra: Mapping[str, str]) -> dict[str, str]:
        return {
            "PATH": os.environ["PATH"],
            "HOME": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "LC_ALL": "C",
            **extra,
        }

    def run(self, *args: str, stdin: bytes = b"", env: Mapping[str, str] | None = None) -> bytes:
        done = subprocess.run(
            ["git", *args],
            cwd=self.root,
            input=stdin,
            capture_output=True,
            env=self.env(env or {}),
            check=True,
        )
        return done.stdout

    def out(self, *args: str, stdin: bytes = b"", env: Mapping[str, str] | None = None) -> str:
        return self.run(*args, stdin=stdin, env=env).decode().strip()

    def blob(self, data: bytes) -> str:
        return self.out("hash-object", "-w", "--stdin", stdin=data)

    def mktree(self, lines: list[str]) -> str:
        return self.out("mktree", "--missing", stdin="".join(f"{x}\n" for x in lines).encode())

    def tree_of(self, files: Files) -> str:
        """The tree `git update-index` + `git write-tree` make of path -> (content, mode)."""
        index = self.root / "scratch.index"
        index.unlink(missing_ok=True)
        lines = []
        for path, (content, mode) in files.items():
            sha = content.decode() if mode == "160000" else self.blob(content)
            lines.append(f"{mode} {sha}\t{path}\n")
        env = {"GIT_INDEX_FILE": str(index)}
        self.run("update-index", "--add", "--index-info", stdin="".join(lines).encode(), env=env)
        return self.out("write-tree", env=env)

    def commit(
        self, tree: str, parents: list[str], message: bytes, author: Signature, committer: Signature
    ) -> str:
        flags = [arg for parent in parents for arg in ("-p", parent)]
        return self.out(
            "commit-tree",
            tree,
            *flags,
            stdin=message,
            env={
                "GIT_AUTHOR_NAME": author.name,
                "GIT_AUTHOR_EMAIL": author.email,
                "GIT_AUTHOR_DATE": author.date,
                "GIT_COMMITTER_NAME": committer.name,
                "GIT_COMMITTER_EMAIL": committer.email,
                "GIT_COMMITTER_DATE": committer.date,
            },
        )


@pytest.fixture(scope="module")
def git(tmp_path_factory: pytest.TempPathFactory) -> Git:
    repo = Git(tmp_path_factory.mktemp("gitrepo"))
    repo.run("init", "-q")
    return repo


@pytest.fixture
def store() -> GitStore:
    return GitStore()


def normalise(files: FileSpec) -> Files:
    result = {}
    for path, value in files.items():
        content, mode = value if isinstance(value, tuple) else (value, "100644")
        result[path] = (content.encode() if isinstance(content, str) else content, mode)
    return result


# -- blobs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", bytes(range(256)) * 3, "héllo wörld ✓ 日本\n".encode(), b"no newline", b"\0\0\n"],
    ids=["empty", "binary", "unicode", "plain", "nul"],
)
def test_blob_ids_equal_git(git: Git, store: GitStore, data: bytes) -> None:
    sha = store.put_blob(data)
    assert sha == git.blob(data)
    assert store.get_blob(sha) == data
    assert store.object_type(sha) == "blob"


# -- trees -------------------------------------------------------------------------------------


def test_nested_tree_with_exec_symlink_and_submodule_equals_git(git: Git, store: GitStore) -> None:
    readme, script, target = b"# hi\n", b"#!/bin/sh\necho hi\n", b"docs/readme.md"
    inner = store.put_tree(
        [
            TreeEntry("readme.md", "100644", "blob", store.put_blob(readme)),
            TreeEntry("run.sh", "100755", "blob", store.put_blob(script)),
        ]
    )
    root = store.put_tree(
        [
            TreeEntry("link", "120000", "blob", store.put_blob(target)),
            TreeEntry("vendor", "160000", "commit", SUBMODULE_SHA),
            TreeEntry("docs", "040000", "tree", inner),
        ]
    )
    git_inner = git.mktree(
        [
            f"100644 blob {git.blob(readme)}\treadme.md",
            f"100755 blob {git.blob(script)}\trun.sh",
        ]
    )
    git_root = git.mktree(
        [
            f"120000 blob {git.blob(target)}\tlink",
            f"160000 commit {SUBMODULE_SHA}\tvendor",
            f"040000 tree {git_inner}\tdocs",
        ]
    )
    assert (inner, root) == (git_inner, git_root)
    listing = git.out("ls-tree", "-r", "-t", root).splitlines()
    ours = [f"{e.mode} {e.type} {e.sha}\t{path}" for path, e in store.read_tree_recursive(root)]
    assert ours == listing
    assert store.get_tree(root)[0] == TreeEntry("docs", "040000", "tree", inner)


@pytest.mark.parametrize(
    ("blobs", "trees"),
    [
        (["a.b", "a-b", "a0", "b"], ["a"]),
        (["a", "a.b", "a-b"], ["a0", "a-"]),
        (["foo.txt", "foo-bar", "foo0"], ["foo"]),
        (["a.b.c", "a.b-c", "a.b0"], ["a.b", "a.b.d"]),
        (["Z", "z", "_", "é"], ["A", "~"]),
    ],
)
def test_tree_sort_order_equals_git(
    git: Git, store: GitStore, blobs: list[str], trees: list[str]
) -> None:
    blob = store.put_blob(b"x")
    sub = store.put_tree([TreeEntry("f", "100644", "blob", blob)])
    entries = [TreeEntry(n, "100644", "blob", blob) for n in blobs]
    entries += [TreeEntry(n, "040000", "tree", sub) for n in trees]
    git_sub = git.mktree([f"100644 blob {git.blob(b'x')}\tf"])
    sha = store.put_tree(reversed(entries))
    assert sha == git.mktree([f"{e.mode} {e.type} {e.sha}\t{e.path}" for e in entries])
    assert sub == git_sub
    listing = git.run("ls-tree", "-z", sha).decode().split("\0")[:-1]
    git_names = [line.split("\t")[1] for line in listing]
    assert [e.path for e in store.get_tree(sha)] == git_names


def test_empty_tree_has_gits_well_known_id(store: GitStore) -> None:
    assert store.put_tree([]) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    assert store.create_tree([]) == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


# -- commits and tags --------------------------------------------------------------------------


def test_commits_with_zero_one_two_parents_equal_git(git: Git, store: GitStore) -> None:
    files = {"a.txt": (b"a\n", "100644")}
    tree = store.get_commit(store.commit_files(files, [], "x", ALICE)).tree
    assert tree == git.tree_of(files)
    root = store.put_commit(tree, [], "root commit", ALICE)
    second = store.put_commit(tree, [root], "second\n\nbody ü\n", ALICE, BOB)
    merge = store.put_commit(tree, [root, second], "merge", UTC_SIG, UTC_SIG)
    assert root == git.commit(tree, [], b"root commit", ALICE, ALICE)
    assert second == git.commit(tree, [root], "second\n\nbody ü\n".encode(), ALICE, BOB)
    assert merge == git.commit(tree, [root, second], b"merge", UTC_SIG, UTC_SIG)
    got = store.get_commit(second)
    assert (got.tree, got.parents, got.message) == (tree, (root,), "second\n\nbody ü\n")
    assert (got.author, got.committer) == (ALICE, BOB)
    assert store.get_commit(merge).parents == (root, second)
    assert store.get_commit(merge).author == UTC_SIG
    assert store.get_commit(root).committer == ALICE


def test_annotated_tag_equals_git_mktag(git: Git, store: GitStore) -> None:
    tree = store.put_tree([])
    commit = store.put_commit(tree, [], "init", UTC_SIG)
    assert commit == git.commit(git.mktree([]), [], b"init", UTC_SIG, UTC_SIG)
    sha = store.put_tag("v1.0.0", "Release 1.0 ✓\n", commit, "commit", BOB)
    seconds, tz = git_date(BOB.date)
    body = (
        f"object {commit}\ntype commit\ntag v1.0.0\n"
        f"tagger {BOB.name} <{BOB.email}> {seconds} {tz}\n\nRelease 1.0 ✓\n"
    )
    assert sha == git.out("mktag", stdin=body.encode())
    assert git.out("cat-file", "-t", sha) == store.object_type(sha) == "tag"
    tag = store.get_tag(sha)
    assert (tag.tag, tag.object_sha, tag.object_type) == ("v1.0.0", commit, "commit")
    assert tag.tagger == BOB
    assert tag.message == "Release 1.0 ✓\n"
    with pytest.raises(InvalidObject, match="Object does not exist"):
        store.put_tag("v2", "m", tree, "commit", BOB)


@pytest.mark.parametrize(
    ("iso", "seconds", "tz", "canonical"),
    [
        ("2026-11-25T14:36:08Z", 1795617368, "+0000", "2026-11-25T14:36:08Z"),
        ("2026-11-25T14:36:08+00:00", 1795617368, "+0000", "2026-11-25T14:36:08Z"),
        ("2026-11-25T14:36:08+01:00", 1795613768, "+0100", "2026-11-25T14:36:08+01:00"),
        ("2026-11-25T14:36:08-05:30", 1795637168, "-0530", "2026-11-25T14:36:08-05:30"),
        ("2026-11-25T14:36:08.75+02:00", 1795610168, "+0200", "2026-11-25T14:36:08+02:00"),
        ("1969-12-31T23:59:59Z", -1, "+0000", "1969-12-31T23:59:59Z"),
    ],
)
def test_dates_convert_like_git(iso: str, seconds: int, tz: str, canonical: str) -> None:
    assert git_date(iso) == (seconds, tz)
    assert iso_date(seconds, tz) == canonical


def test_is_ancestor_walks_parents(store: GitStore) -> None:
    tree = store.put_tree([])
    root = store.put_commit(tree, [], "root", ALICE)
    left = store.put_commit(tree, [root], "left", ALICE)
    right = store.put_commit(tree, [root], "right", ALICE)
    merge = store.put_commit(tree, [left, right], "merge", ALICE)
    assert store.is_ancestor(root, merge)
    assert store.is_ancestor(right, merge)
    assert store.is_ancestor(merge, merge)
    assert not store.is_ancestor(left, right)
    assert not store.is_ancestor(merge, root)
    with pytest.raises(ObjectNotFound):
        store.is_ancestor("f" * 40, merge)


def test_missing_or_mistyped_objects(store: GitStore) -> None:
    blob = store.put_blob(b"x")
    for call in (store.get_tree, store.get_commit, store.get_tag, store.object_type):
        with pytest.raises(ObjectNotFound, match="Not Found"):
            call("e" * 40)
    with pytest.raises(ObjectNotFound):
        store.get_commit(blob)
    with pytest.raises(InvalidObject, match="Tree SHA does not exist"):
        store.put_commit(blob, [], "m", ALICE)
    tree = store.put_tree([])
    with pytest.raises(InvalidObject, match="Parent SHA does not exist"):
        store.put_commit(tree, [tree], "m", ALICE)
    with pytest.raises(InvalidObject, match="must not contain"):
        store.put_commit(tree, [], "m", Signature("a<b>", "e", ALICE.date))
    with pytest.raises(InvalidObject, match="not a valid date"):
        store.put_commit(tree, [], "m", Signature("a", "e", "yesterday"))


# -- create_tree -------------------------------------------------------------------------------

BASE: dict[str, tuple[bytes, str]] = {
    "README.md": (b"hello\n", "100644"),
    "src/app.py": (b"print(1)\n", "100644"),
    "src/tool.sh": (b"#!/bin/sh\n", "100755"),
    "src/pkg/mod.py": (b"x = 1\n", "100644"),
    "docs/only.md": (b"doc\n", "100644"),
    "lib": (SUBMODULE_SHA.encode(), "160000"),
}


def apply_edits(base: Files, edits: Mapping[str, tuple[bytes, str] | None]) -> Files:
    result = dict(base)
    for path, value in edits.items():
        if value is None:
            result.pop(path)
        else:
            result[path] = value
    return result


@pytest.mark.parametrize(
    "edits",
    [
        {"README.md": (b"changed\n", "100644")},
        {"src/tool.sh": (b"#!/bin/sh\n", "100644")},
        {"src/pkg/deep/er/new.py": (b"new\n", "100644"), "top.txt": (b"t", "100755")},
        {"docs/only.md": None},
        {"src/pkg/mod.py": None, "src/app.py": None, "src/tool.sh": None},
        {"docs/only.md": None, "docs/again.md": (b"back\n", "100644")},
        {"lib": None, "link": (b"README.md", "120000")},
        {"README.md": None, "src/app.py": (b"print(2)\n", "100644"), "src/x/y": (b"", "100644")},
    ],
    ids=[
        "modify",
        "chmod",
        "add-nested",
        "delete-emptying",
        "delete-subtree-files",
        "delete-then-add",
        "submodule-symlink",
        "mixed",
    ],
)
def test_create_tree_on_base_equals_git(
    git: Git, store: GitStore, edits: dict[str, tuple[bytes, str] | None]
) -> None:
    base = store.get_commit(store.commit_files(BASE, [], "base", ALICE)).tree
    assert base == git.tree_of(BASE)
    items: list[dict[str, object]] = []
    for path, value in edits.items():
        if value is None:
            items.append({"path": path, "mode": "100644", "type": "blob", "sha": None})
        elif value[1] == "160000":
            items.append({"path": path, "mode": value[1], "sha": value[0].decode()})
        elif value[0].isascii() and value[1] == "100644":
            items.append({"path": path, "mode": value[1], "content": value[0].decode()})
        else:
            items.append({"path": path, "mode": value[1], "sha": store.put_blob(value[0])})
    final = apply_edits(BASE, edits)
    assert store.create_tree(items, base_tree=base) == git.tree_of(final)


def test_create_tree_deleting_everything_leaves_the_empty_tree(store: GitStore) -> None:
    base = store.create_tree([{"path": "a/b/c", "mode": "100644", "type": "blob", "content": "x"}])
    assert [p for p, _ in store.read_tree_recursive(base)] == ["a", "a/b", "a/b/c"]
    gone = store.create_tree([{"path": "a/b/c", "mode": "100644", "sha": None}], base_tree=base)
    assert store.get_tree(gone) == []


def test_create_tree_can_delete_and_replace_whole_subtrees(store: GitStore) -> None:
    base = store.create_tree(
        [
            {"path": "a/x", "mode": "100644", "type": "blob", "content": "1"},
            {"path": "a/y", "mode": "100644", "type": "blob", "content": "2"},
            {"path": "b", "mode": "100644", "type": "blob", "content": "3"},
        ]
    )
    sub = store.get_tree(base)[0].sha
    dropped = store.create_tree([{"path": "a", "mode": "040000", "sha": None}], base_tree=base)
    assert [e.path for e in store.get_tree(dropped)] == ["b"]
    moved = store.create_tree(
        [{"path": "c/a", "mode": "040000", "type": "tree", "sha": sub}], base_tree=dropped
    )
    assert [p for p, _ in store.read_tree_recursive(moved)] == ["b", "c", "c/a", "c/a/x", "c/a/y"]


def test_create_tree_without_base_holds_only_the_items(store: GitStore) -> None:
    base = store.create_tree([{"path": "old", "mode": "100644", "type": "blob", "content": "o"}])
    assert base in store
    fresh = store.create_tree([{"path": "new/f", "mode": "100755", "type": "blob", "content": "n"}])
    assert [(p, e.mode) for p, e in store.read_tree_recursive(fresh)] == [
        ("new", "040000"),
        ("new/f", "100755"),
    ]


BLOB_ITEM = {"path": "f", "mode": "100644", "type": "blob"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({**BLOB_ITEM, "path": "/abs", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": "a//b", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": "a/", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": "", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": "a/./b", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": "../b", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": ".git/config", "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "path": None, "content": "x"}, "malformed path"),
        ({**BLOB_ITEM, "mode": "100664", "content": "x"}, "tree.mode"),
        ({**BLOB_ITEM, "mode": "40000", "type": "tree", "sha": "TREE"}, "tree.mode"),
        ({**BLOB_ITEM, "type": "symlink", "content": "x"}, "tree.type"),
        ({**BLOB_ITEM, "type": "tree", "content": "x"}, "does not fit"),
        ({**BLOB_ITEM, "mode": "040000", "type": "blob", "sha": "BLOB"}, "does not fit"),
        ({**BLOB_ITEM, "sha": "BLOB", "content": "x"}, "Must supply either"),
        ({**BLOB_ITEM, "sha": None, "content": "x"}, "Must supply either"),
        (dict(BLOB_ITEM), "Must supply either"),
        ({**BLOB_ITEM, "sha": "TREE"}, "tree.sha .* is not a valid blob"),
        ({**BLOB_ITEM, "mode": "040000", "type": "tree", "sha": "BLOB"}, "is not a valid tree"),
        ({**BLOB_ITEM, "sha": "a" * 40}, "is not a valid blob"),
        ({**BLOB_ITEM, "sha": "not-a-sha"}, "is not a valid blob"),
        ({**BLOB_ITEM, "mode": "160000", "type": "commit", "sha": "xyz"}, "not a valid commit"),
        ({**BLOB_ITEM, "mode": "040000", "type": "tree", "content": "x"}, "only be used"),
        ({**BLOB_ITEM, "content": 42}, "must be a string"),
        ({**BLOB_ITEM, "path": "missing", "sha": None}, "BadObjectState"),
        ({**BLOB_ITEM, "path": "nodir/missing", "sha": None}, "BadObjectState"),
        ({**BLOB_ITEM, "path": "file/below", "content": "x"}, "below non-tree file"),
        ("not an object", "Invalid tree info"),
    ],
)
def test_create_tree_refuses_what_github_refuses(
    store: GitStore, item: object, message: str
) -> None:
    base = store.create_tree([{"path": "file", "mode": "100644", "type": "blob", "content": "f"}])
    real = {"BLOB": store.put_blob(b"f"), "TREE": base}
    if isinstance(item, dict) and item.get("sha") in real:
        item = {**item, "sha": real[item["sha"]]}
    with pytest.raises(InvalidObject, match=message):
        store.create_tree([item], base_tree=base)  # type: ignore[list-item]


def test_create_tree_refuses_unknown_base_tree(store: GitStore) -> None:
    blob = store.put_blob(b"x")
    with pytest.raises(InvalidObject, match="base_tree"):
        store.create_tree([], base_tree=blob)


def test_put_tree_refuses_bad_entries(store: GitStore) -> None:
    blob = store.put_blob(b"x")
    bad = [
        TreeEntry("a/b", "100644", "blob", blob),
        TreeEntry("..", "100644", "blob", blob),
        TreeEntry("x", "100644", "tree", blob),
        TreeEntry("x", "040000", "tree", blob),
    ]
    for entry in bad:
        with pytest.raises(InvalidObject):
            store.put_tree([entry])
    with pytest.raises(InvalidObject, match="twice"):
        store.put_tree([TreeEntry("x", "100644", "blob", blob)] * 2)


def test_commit_files_refuses_a_path_that_is_file_and_folder(store: GitStore) -> None:
    with pytest.raises(InvalidObject, match="both a file and a directory"):
        store.commit_files({"a": "1", "a/b/c": "2"}, [], "m", ALICE)


# -- property: random snapshots round-trip and hash like git ---------------------------------

_names = st.sampled_from(["a", "b", "a.b", "a-b", "a0", "é", "Z z"])
_paths = st.lists(_names, min_size=1, max_size=3).map("/".join)
_values = st.tuples(st.binary(max_size=12), st.sampled_from(["100644", "100755", "120000"]))


def _without_clashes(files: dict[str, tuple[bytes, str]]) -> dict[str, tuple[bytes, str]]:
    kept: dict[str, tuple[bytes, str]] = {}
    for path in sorted(files):
        if not any(path.startswith(k + "/") or k.startswith(path + "/") for k in kept):
            kept[path] = files[path]
    return kept


@settings(max_examples=25, deadline=None, database=None)
@given(st.dictionaries(_paths, _values, min_size=1, max_size=6).map(_without_clashes))
def test_commit_files_round_trips_and_hashes_like_git(
    git: Git, files: dict[str, tuple[bytes, str]]
) -> None:
    store = GitStore()
    commit = store.commit_files(files, [], "snapshot", UTC_SIG)
    assert store.files_at(commit) == {p: (mode, data) for p, (data, mode) in files.items()}
    assert store.get_commit(commit).tree == git.tree_of(files)


def test_files_at_skips_submodules_and_keeps_symlinks(store: GitStore) -> None:
    files: FileSpec = {"x.txt": "text", "ln": ("x.txt", "120000"), "sub": (SUBMODULE_SHA, "160000")}
    commit = store.commit_files(files, [], "m", ALICE)
    assert store.files_at(commit) == {"x.txt": ("100644", b"text"), "ln": ("120000", b"x.txt")}


# -- tarball -----------------------------------------------------------------------------------

TAR_FILES: FileSpec = {
    "README.md": "read me\n",
    "bin/run": ("#!/bin/sh\necho ok\n", "100755"),
    "bin/latest": ("run", "120000"),
    "src/a.b": "dots",
    "src/a/deep/x.py": "x = 'ü'\n",
    "vendor/lib": (SUBMODULE_SHA, "160000"),
    "long/" + "n" * 120 + ".txt": "long name",
}


@pytest.fixture(scope="module")
def archived(git: Git) -> tuple[GitStore, str, bytes]:
    store = GitStore()
    commit = store.commit_files(TAR_FILES, [], "tarball\n", BOB)
    tree = git.tree_of(normalise(TAR_FILES))
    assert commit == git.commit(tree, [], b"tarball\n", BOB, BOB)
    return store, commit, store.tarball(commit, "octo-repo-abc1234")


def test_tarball_members_match_git_archive(git: Git, archived: tuple[GitStore, str, bytes]) -> None:
    _, commit, data = archived
    theirs_raw = git.run("-c", "tar.umask=0022", "archive", "--prefix=octo-repo-abc1234/", commit)

    def describe(raw: bytes) -> list[tuple[str, bytes, int, str, float, bytes | None]]:
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            members = tar.getmembers()
            return [
                (
                    m.name,
                    m.type,
                    m.mode,
                    m.linkname,
                    m.mtime,
                    f.read() if (f := tar.extractfile(m)) and m.isfile() else None,
                )
                for m in members
            ]

    ours = describe(gzip.decompress(data))
    assert ours == describe(theirs_raw)
    assert all(name.split("/")[0] == "octo-repo-abc1234" for name, *_ in ours)
    run = ("octo-repo-abc1234/bin/run", tarfile.REGTYPE, 0o755, "", git_date(BOB.date)[0])
    assert (*run, b"#!/bin/sh\necho ok\n") in ours


def test_tarball_carries_commit_id_for_git(git: Git, archived: tuple[GitStore, str, bytes]) -> None:
    _, commit, data = archived
    assert git.out("get-tar-commit-id", stdin=gzip.decompress(data)) == commit
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert tar.pax_headers["comment"] == commit


def test_tarball_extracts_with_python_and_tar(
    archived: tuple[GitStore, str, bytes], tmp_path: Path
) -> None:
    _, _, data = archived
    archive = tmp_path / "repo.tar.gz"
    archive.write_bytes(data)
    by_python, by_tar = tmp_path / "python", tmp_path / "tar"
    by_python.mkdir()
    by_tar.mkdir()
    with tarfile.open(archive, mode="r:gz") as tar:
        tar.extractall(by_python, filter="data")
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(by_tar)], check=True)
    for dest in (by_python, by_tar):
        top = dest / "octo-repo-abc1234"
        assert [p.name for p in dest.iterdir()] == ["octo-repo-abc1234"]
        assert (top / "README.md").read_text() == "read me\n"
        assert (top / "src/a/deep/x.py").read_text(encoding="utf-8") == "x = 'ü'\n"
        assert (top / ("long/" + "n" * 120 + ".txt")).read_text() == "long name"
        assert (top / "bin/run").stat().st_mode & stat.S_IXUSR
        assert not (top / "README.md").stat().st_mode & stat.S_IXUSR
        assert os.readlink(top / "bin/latest") == "run"
        assert (top / "bin/latest").read_text() == "#!/bin/sh\necho ok\n"
        assert (top / "vendor/lib").is_dir()
        assert list((top / "vendor/lib").iterdir()) == []


def test_tarball_of_unknown_commit_is_not_found(store: GitStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.tarball("a" * 40, "top")
