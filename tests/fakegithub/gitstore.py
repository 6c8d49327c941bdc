"""In-memory git object database of the GitHub simulator: blobs, trees, commits, tags, tarballs."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence

from tests.fakegithub.gitobjects import (
    MODE_TYPES,
    SUBMODULE_MODE,
    SYMLINK_MODE,
    TREE_MODE,
    Commit,
    GitError,
    InvalidObject,
    ObjectNotFound,
    Signature,
    Tag,
    TreeEntry,
    decode_commit,
    decode_tag,
    decode_tree,
    encode_commit,
    encode_tag,
    encode_tree,
    git_date,
    hash_object,
    is_sha,
    valid_name,
)

__all__ = [
    "Commit",
    "GitError",
    "GitStore",
    "InvalidObject",
    "ObjectNotFound",
    "Signature",
    "Tag",
    "TreeEntry",
]

MALFORMED_PATH = "tree.path contains a malformed path component"
SHA_OR_CONTENT = (
    "Must supply either tree.sha or tree.content. Request will be rejected if both are present."
)
# GitHub's answer when an item deletes a path that is not there.
BAD_OBJECT_STATE = "GitRPC::BadObjectState"

# A directory being edited by create_tree: names map to untouched entries or to edited subtrees.
_Dir = dict[str, "TreeEntry | _Dir"]


class GitStore:
    """A content-addressed object database, one per simulated repository."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[str, bytes]] = {}

    # -- raw objects ---------------------------------------------------------------------------

    def _put(self, obj_type: str, body: bytes) -> str:
        sha = hash_object(obj_type, body)
        self._objects.setdefault(sha, (obj_type, body))
        return sha

    def _body(self, sha: str, obj_type: str) -> bytes:
        found = self._objects.get(sha) if isinstance(sha, str) else None
        if found is None or found[0] != obj_type:
            raise ObjectNotFound("Not Found")
        return found[1]

    def __contains__(self, sha: object) -> bool:
        return isinstance(sha, str) and sha in self._objects

    def object_type(self, sha: str) -> str:
        """The type of object ``sha`` (blob, tree, commit or tag); ObjectNotFound when absent."""
        found = self._objects.get(sha) if isinstance(sha, str) else None
        if found is None:
            raise ObjectNotFound("Not Found")
        return found[0]

    def _require(self, sha: object, obj_type: str, message: str) -> str:
        if not is_sha(sha) or self._objects.get(str(sha), ("", b""))[0] != obj_type:
            raise InvalidObject(message)
        return str(sha)

    # -- blobs and trees -----------------------------------------------------------------------

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` as a blob and return its id."""
        return self._put("blob", bytes(data))

    def get_blob(self, sha: str) -> bytes:
        """The content of blob ``sha``."""
        return self._body(sha, "blob")

    def put_tree(self, entries: Iterable[TreeEntry]) -> str:
        """Store a tree of single-level entries (sorted as git sorts them) and return its id."""
        checked: dict[str, TreeEntry] = {}
        for entry in entries:
            mode = TREE_MODE if entry.mode == "40000" else entry.mode
            if MODE_TYPES.get(mode) is None or MODE_TYPES[mode] != entry.type:
                raise InvalidObject(f"tree.mode {entry.mode} does not fit tree.type {entry.type}")
            if not valid_name(entry.path):
                raise InvalidObject(MALFORMED_PATH)
            if entry.path in checked:
                raise InvalidObject(f"tree.path {entry.path} appears twice in one tree")
            if entry.type == "commit":
                if not is_sha(entry.sha):  # a submodule commit lives in another repository
                    raise InvalidObject(f"tree.sha {entry.sha} is not a valid commit")
            else:
                self._require(
                    entry.sha, entry.type, f"tree.sha {entry.sha} is not a valid {entry.type}"
                )
            checked[entry.path] = TreeEntry(entry.path, mode, entry.type, entry.sha)
        return self._put("tree", encode_tree(checked.values()))

    def get_tree(self, sha: str) -> list[TreeEntry]:
        """The entries of tree ``sha`` in git's order."""
        return decode_tree(self._body(sha, "tree"))

    def read_tree_recursive(self, sha: str) -> list[tuple[str, TreeEntry]]:
        """Every (full path, entry) below tree ``sha`` in git's order, subtrees first."""
        result: list[tuple[str, TreeEntry]] = []

        def walk(tree_sha: str, prefix: str) -> None:
            for entry in self.get_tree(tree_sha):
                path = prefix + entry.path
                result.append((path, entry))
                if entry.type == "tree":
                    walk(entry.sha, path + "/")

        walk(sha, "")
        return result

    def create_tree(self, items: list[dict[str, object]], base_tree: str | None = None) -> str:
        """POST /git/trees: apply ``items`` in order on ``base_tree`` (or on nothing)."""
        root: _Dir = {}
        if base_tree is not None:
            self._require(base_tree, "tree", f"base_tree {base_tree} is not a valid tree")
            root = {e.path: e for e in self.get_tree(base_tree)}
        if not isinstance(items, list):
            raise InvalidObject("tree must be an array")
        for item in items:
            parts, entry = self._parse_item(item)
            self._apply(root, parts, entry)
        return self._write_dir(root) or self.put_tree([])

    def _parse_item(self, item: object) -> tuple[list[str], TreeEntry | None]:
        """Validate one create_tree item; the entry is None when the item deletes its path."""
        if not isinstance(item, Mapping):
            raise InvalidObject("Invalid tree info")
        path = item.get("path")
        if not isinstance(path, str) or not all(valid_name(p) for p in path.split("/")):
            raise InvalidObject(MALFORMED_PATH)
        mode = item.get("mode")
        if not isinstance(mode, str) or mode not in MODE_TYPES:
            raise InvalidObject(
                f"tree.mode {mode!r} is not one of 100644, 100755, 040000, 160000, 120000"
            )
        obj_type = item.get("type", MODE_TYPES[mode])
        if obj_type not in ("blob", "tree", "commit"):
            raise InvalidObject(f"tree.type {obj_type!r} is not one of blob, tree, commit")
        if obj_type != MODE_TYPES[mode]:
            raise InvalidObject(f"tree.mode {mode} does not fit tree.type {obj_type}")
        if ("sha" in item) == ("content" in item):
            raise InvalidObject(SHA_OR_CONTENT)
        parts = path.split("/")
        if "content" in item:
            content = item["content"]
            if not isinstance(content, str):
                raise InvalidObject("tree.content must be a string")
            if obj_type != "blob":
                raise InvalidObject("tree.content can only be used for a blob")
            return parts, TreeEntry(parts[-1], mode, "blob", self.put_blob(content.encode()))
        sha = item["sha"]
        if sha is None:
            return parts, None
        if obj_type == "commit":
            if not is_sha(sha):
                raise InvalidObject(f"tree.sha {sha} is not a valid commit")
        else:
            self._require(sha, obj_type, f"tree.sha {sha} is not a valid {obj_type}")
        return parts, TreeEntry(parts[-1], mode, obj_type, str(sha))

    def _apply(self, root: _Dir, parts: list[str], entry: TreeEntry | None) -> None:
        current = root
        for depth, name in enumerate(parts[:-1]):
            node = current.get(name)
            if node is None:
                if entry is None:
                    raise InvalidObject(BAD_OBJECT_STATE)
                node = {}
            elif isinstance(node, TreeEntry):
                if node.type != "tree":
                    where = "/".join(parts[: depth + 1])
                    raise InvalidObject(f"tree.path {'/'.join(parts)} is below non-tree {where}")
                node = {e.path: e for e in self.get_tree(node.sha)}
            current[name] = node
            current = node
        if entry is None:
            if parts[-1] not in current:
                raise InvalidObject(BAD_OBJECT_STATE)
            del current[parts[-1]]
        else:
            current[parts[-1]] = entry

    def _write_dir(self, directory: _Dir) -> str | None:
        """Store an edited directory; None when it ended up empty (so its parent drops it)."""
        entries: list[TreeEntry] = []
        for name, node in directory.items():
            if isinstance(node, TreeEntry):
                entries.append(node)
                continue
            sha = self._write_dir(node)
            if sha is not None:
                entries.append(TreeEntry(name, TREE_MODE, "tree", sha))
        return self.put_tree(entries) if entries else None

    # -- commits and tags ----------------------------------------------------------------------

    def put_commit(
        self,
        tree: str,
        parents: Sequence[str],
        message: str,
        author: Signature,
        committer: Signature | None = None,
    ) -> str:
        """Store a commit (committer defaults to the author) and return its id."""
        self._require(tree, "tree", "Tree SHA does not exist")
        for parent in parents:
            self._require(parent, "commit", "Parent SHA does not exist or is not a commit object")
        if not isinstance(message, str):
            raise InvalidObject("message must be a string")
        body = encode_commit(tree, parents, author, committer or author, message)
        return self._put("commit", body)

    def get_commit(self, sha: str) -> Commit:
        """Commit ``sha``, dates in ISO 8601 ("Z" for UTC, else the stored offset)."""
        return decode_commit(sha, self._body(sha, "commit"))

    def put_tag(
        self, tag: str, message: str, object_sha: str, object_type: str, tagger: Signature
    ) -> str:
        """Store an annotated tag object and return its id."""
        if not isinstance(tag, str) or not tag or any(c in tag for c in "\n\0"):
            raise InvalidObject(f"tag {tag!r} is not a valid tag name")
        if not isinstance(message, str):
            raise InvalidObject("message must be a string")
        if object_type not in ("blob", "tree", "commit", "tag"):
            raise InvalidObject(f"type {object_type!r} is not one of commit, tree, blob")
        self._require(object_sha, object_type, "Object does not exist")
        return self._put("tag", encode_tag(tag, message, object_sha, object_type, tagger))

    def get_tag(self, sha: str) -> Tag:
        """Annotated tag ``sha``."""
        return decode_tag(sha, self._body(sha, "tag"))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """True when ``descendant`` reaches ``ancestor`` through parents (or is it)."""
        self.get_commit(ancestor)
        seen: set[str] = set()
        pending = [descendant]
        self.get_commit(descendant)
        while pending:
            sha = pending.pop()
            if sha == ancestor:
                return True
            if sha not in seen:
                seen.add(sha)
                pending.extend(self.get_commit(sha).parents)
        return False

    # -- whole-snapshot helpers ----------------------------------------------------------------

    def files_at(self, commit_sha: str) -> dict[str, tuple[str, bytes]]:
        """path -> (mode, content) for every blob (symlinks included, submodules skipped)."""
        tree = self.get_commit(commit_sha).tree
        return {
            path: (entry.mode, self.get_blob(entry.sha))
            for path, entry in self.read_tree_recursive(tree)
            if entry.type == "blob"
        }

    def commit_files(
        self,
        files: Mapping[str, bytes | str | tuple[bytes | str, str]],
        parents: Sequence[str],
        message: str,
        author: Signature,
    ) -> str:
        """Commit a whole snapshot: path -> content or (content, mode); 160000 content is a sha."""
        items: list[dict[str, object]] = []
        for path, value in files.items():
            content, mode = value if isinstance(value, tuple) else (value, "100644")
            if mode == SUBMODULE_MODE:
                sha = content.decode() if isinstance(content, bytes) else content
                items.append({"path": path, "mode": mode, "type": "commit", "sha": sha})
                continue
            data = content.encode() if isinstance(content, str) else content
            items.append({"path": path, "mode": mode, "type": "blob", "sha": self.put_blob(data)})
        folders = {path.rsplit("/", 1)[0] for path in files if "/" in path}
        nested = {"/".join(f.split("/")[: i + 1]) for f in folders for i in range(f.count("/") + 1)}
        clash = sorted(nested & set(files))
        if clash:
            raise InvalidObject(f"{clash[0]} is both a file and a directory")
        return self.put_commit(self.create_tree(items), parents, message, author)

    def tarball(self, commit_sha: str, top_folder: str) -> bytes:
        """gzip tar of the commit's tree under ``top_folder/``, laid out as ``git archive``."""
        commit = self.get_commit(commit_sha)
        mtime, _ = git_date(commit.committer.date)
        raw = io.BytesIO()
        # The pax global "comment" header is where `git get-tar-commit-id` finds the sha.
        with tarfile.open(
            fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": commit_sha}
        ) as tar:
            tar.addfile(_member(top_folder, tarfile.DIRTYPE, 0o755, mtime))
            for path, entry in self.read_tree_recursive(commit.tree):
                name = f"{top_folder}/{path}"
                if entry.type != "blob":  # subtrees, and submodules as empty folders
                    tar.addfile(_member(name, tarfile.DIRTYPE, 0o755, mtime))
                    continue
                data = self.get_blob(entry.sha)
                if entry.mode == SYMLINK_MODE:
                    link = _member(name, tarfile.SYMTYPE, 0o777, mtime)
                    link.linkname = data.decode(errors="surrogateescape")
                    tar.addfile(link)
                    continue
                mode = 0o755 if entry.mode == "100755" else 0o644
                member = _member(name, tarfile.REGTYPE, mode, mtime)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
        return gzip.compress(raw.getvalue(), mtime=0)


def _member(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uname = info.gname = "root"
    return info
