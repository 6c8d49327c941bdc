"""A run's workspace: the integration branch head on disk, its exact base, and the builder's change.

Layout under `AUTOPACK_DATA_DIR/workspaces/<run_id>/` (the root is passed in):

    tree/            the work tree the builder sees (its cwd)
    manifest.json    the base: head sha and path -> [entry type, git blob sha]
    base.tar.gz      the archive `reset()` restores from (GitHub's, or our re-pack after `advance`)

Anything else in the root was put there by someone else: `stray_entries()` lists it.

Disk work here is blocking: from the event loop call `reset`, `advance` and `compute_change`
through `asyncio.to_thread` (`ensure` already extracts in a thread).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import stat
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiohttp

from app.agents.tarball import (
    TEMP_PREFIX,
    BaseEntry,
    Manifest,
    TarballUnavailable,
    WorkspaceError,
    WorkspaceLimits,
    blob_sha,
    download_tarball,
    extract_archive,
    force_rmtree,
    pack_tree,
    read_contents,
)
from app.domain.change import Change, ChangeKind, EntryType, FileChange

if TYPE_CHECKING:
    from app.github.client import GitHubApp

__all__ = [
    "BaseEntry",
    "CommitSource",
    "TarballSource",
    "TarballUnavailable",
    "Workspace",
    "WorkspaceError",
    "WorkspaceLimits",
    "compute_change",
]

TREE = "tree"
MANIFEST = "manifest.json"
ARCHIVE = "base.tar.gz"
_OWN_ENTRIES = frozenset({TREE, MANIFEST, ARCHIVE})
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]+")
_BINARY_SNIFF = 8192

TokenProvider = Callable[[], Awaitable[str]]


class CommitSource(Protocol):
    """Anything that can write a commit's tarball (gzip or plain tar) to a path."""

    async def download(self, sha: str, dest: Path, max_bytes: int) -> None:
        """Write the archive of `sha` to `dest` (which must not exist), at most `max_bytes`."""


@dataclass(frozen=True)
class TarballSource:
    """Where a repository's commits come from: `GET {api}/repos/{repository}/tarball/{sha}`."""

    session: aiohttp.ClientSession
    api_url: str
    repository: str  # "owner/name"
    token: TokenProvider
    user_agent: str = "autopack"
    backoff_seconds: float = 1.0  # the first wait before a failed download is tried again

    def __post_init__(self) -> None:
        if not _REPOSITORY.fullmatch(self.repository) or ".." in self.repository:
            raise ValueError(f"not a repository name: {self.repository!r}")

    @classmethod
    def from_app(
        cls,
        app: GitHubApp,
        session: aiohttp.ClientSession,
        installation_id: int,
        repository: str,
        backoff_seconds: float = 1.0,
    ) -> TarballSource:
        """A source authenticated as the installation, on the App's API base URL."""
        client = app.installation(installation_id)

        async def token() -> str:
            return await app.tokens.get(installation_id)

        return cls(session, client.base_url, repository, token, client.requester, backoff_seconds)

    async def download(self, sha: str, dest: Path, max_bytes: int) -> None:
        """Stream the commit's tarball into `dest` (at most `max_bytes` compressed)."""
        url = f"{self.api_url.rstrip('/')}/repos/{self.repository}/tarball/{sha}"
        token = await self.token()
        await download_tarball(
            self.session,
            url,
            token,
            dest,
            max_bytes,
            self.user_agent,
            backoff_seconds=self.backoff_seconds,
        )


class Workspace:
    """One run's work tree, reused between phases, with the base it was materialised from."""

    def __init__(
        self, root: Path, source: CommitSource, limits: WorkspaceLimits | None = None
    ) -> None:
        self.root = root
        self.tree = root / TREE
        self.source = source
        self.limits = limits or WorkspaceLimits()
        self._head: str | None = None
        self._manifest: Manifest = {}
        self._stamps: dict[str, tuple[int, ...]] = {}
        self._load()

    @classmethod
    def for_run(
        cls,
        data_dir: Path,
        run_id: str | int,
        source: CommitSource,
        limits: WorkspaceLimits | None = None,
    ) -> Workspace:
        """The workspace of a run: `<data_dir>/workspaces/<run_id>/`."""
        name = str(run_id)
        if not _RUN_ID.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"not a run id: {name!r}")
        return cls(data_dir / "workspaces" / name, source, limits)

    @property
    def head(self) -> str | None:
        """The commit the base is (and the tree, until a builder runs); None before the first."""
        return self._head

    @property
    def manifest(self) -> Manifest:
        """The base tree: path -> (entry type, blob sha); a copy."""
        return dict(self._manifest)

    @property
    def archive(self) -> Path:
        """The kept archive of the base."""
        return self.root / ARCHIVE

    # -- keeping the base ----------------------------------------------------------------------

    async def ensure(self, head: str) -> bool:
        """Make the base `head`, downloading only if it is something else (True if it did).

        A builder's edits are not undone here: call `reset()` after a failed attempt.
        """
        if head == self._head and self._intact():
            return False
        await self.materialise(head)
        return True

    async def materialise(self, head: str) -> None:
        """Download `head` and replace the work tree and base with it (nothing half-done)."""
        if not _SHA.fullmatch(head):
            raise WorkspaceError(f"{head!r}: not a commit sha")
        self.root.mkdir(parents=True, exist_ok=True)
        self._clean_temps()
        download = self._temp("download")
        staged = self._temp("tree")
        try:
            await self.source.download(head, download, self.limits.max_download_bytes)
            manifest = await asyncio.to_thread(extract_archive, download, staged, self.limits)
            self._install(head, manifest, staged, download)
        finally:
            force_rmtree(staged)
            force_rmtree(download)

    def holds(self, head: str) -> bool:
        """True when the base is `head` and intact: the tree is that commit plus any change."""
        return self._head == head and self._intact()

    async def clean_at(self, head: str) -> None:
        """Make the work tree exactly `head` and nothing else (where every attempt starts)."""
        if not await self.ensure(head):
            await asyncio.to_thread(self.reset)

    def advance(self, new_head: str) -> None:
        """The work tree was just pushed as `new_head`: make it the base, without a download.

        Only files, executables and symlinks enter the new base (as in what was pushed): the
        root `.git` and nested repositories are left out, so `reset()` removes them.
        """
        if not _SHA.fullmatch(new_head):
            raise WorkspaceError(f"{new_head!r}: not a commit sha")
        self._require_base()
        entries, _submodules = _scan(self.tree)
        packed = self._temp("archive")
        try:
            listing = sorted((path, kind) for path, kind in entries.items())
            manifest = pack_tree(self.tree, listing, packed, self.limits)
            self._install(new_head, manifest, None, packed)
        finally:
            force_rmtree(packed)

    def reset(self) -> None:
        """Put the work tree back to the base exactly (from the kept archive)."""
        self._require_base()
        self._clean_temps()
        staged = self._temp("tree")
        try:
            manifest = extract_archive(self.archive, staged, self.limits)
            if manifest != self._manifest:
                raise WorkspaceError(f"{ARCHIVE}: does not match the recorded base (tampered?)")
            self._swap_tree(staged)
        finally:
            force_rmtree(staged)

    def destroy(self) -> None:
        """Remove the whole workspace (the run is over)."""
        force_rmtree(self.root)
        self._head = None
        self._manifest = {}
        self._stamps = {}

    # -- what the builder did ------------------------------------------------------------------

    def compute_change(self) -> Change:
        """The builder's change against the base; see `compute_change`."""
        return compute_change(self)

    def stray_entries(self) -> list[str]:
        """Entries of the root Autopack did not put there, or touched behind its back; sorted."""
        if not self.root.is_dir():
            return []
        found = [] if os.path.lexists(self.tree) else [f"{TREE} (missing)"]
        for entry in sorted(os.listdir(self.root)):
            if entry not in _OWN_ENTRIES:
                found.append(entry)
            elif entry == TREE and not stat.S_ISDIR(self.tree.lstat().st_mode):
                found.append(f"{TREE} (not a directory)")
            elif entry in self._stamps and self._stamps[entry] != _stamp(self.root / entry):
                found.append(f"{entry} (modified)")
        return found

    def has_git_dir(self) -> bool:
        """True when the work tree has a `.git` at its root (ignored by compute_change)."""
        return os.path.lexists(self.tree / ".git")

    # -- internals -----------------------------------------------------------------------------

    def _temp(self, what: str) -> Path:
        return self.root / f"{TEMP_PREFIX}{what}-{secrets.token_hex(6)}"

    def _clean_temps(self) -> None:
        # Leftovers of an interrupted operation of ours; only our own prefix is touched.
        for entry in os.listdir(self.root):
            if entry.startswith(TEMP_PREFIX):
                force_rmtree(self.root / entry)

    def _intact(self) -> bool:
        try:
            return stat.S_ISDIR(self.tree.lstat().st_mode) and self.archive.is_file()
        except FileNotFoundError:
            return False

    def _require_base(self) -> None:
        if self._head is None or not self._intact():
            raise WorkspaceError(f"{self.root}: no base materialised")

    def _install(self, head: str, manifest: Manifest, tree: Path | None, archive: Path) -> None:
        # Drop the manifest first: a crash part-way leaves "no base", so the next ensure()
        # re-downloads instead of trusting a manifest that no longer matches tree or archive.
        (self.root / MANIFEST).unlink(missing_ok=True)
        self._head = None
        if tree is not None:
            self._swap_tree(tree)
        os.replace(archive, self.archive)
        payload = {
            "head": head,
            "entries": {p: [e.entry_type.value, e.sha] for p, e in sorted(manifest.items())},
        }
        staged = self._temp("manifest")
        staged.write_text(json.dumps(payload, indent=1))
        os.replace(staged, self.root / MANIFEST)
        self._head, self._manifest = head, manifest
        self._stamps = {name: _stamp(self.root / name) for name in (MANIFEST, ARCHIVE)}

    def _swap_tree(self, staged: Path) -> None:
        trash = self._temp("trash")
        if os.path.lexists(self.tree):
            os.rename(self.tree, trash)
        os.rename(staged, self.tree)
        force_rmtree(trash)

    def _load(self) -> None:
        try:
            payload = json.loads((self.root / MANIFEST).read_text())
            manifest = {
                str(path): BaseEntry(EntryType(kind), str(sha))
                for path, (kind, sha) in payload["entries"].items()
            }
            head = str(payload["head"])
        except (OSError, ValueError, KeyError, TypeError):
            return  # no usable base: the next ensure() downloads
        if _SHA.fullmatch(head) and self._intact():
            self._head, self._manifest = head, manifest
            self._stamps = {name: _stamp(self.root / name) for name in (MANIFEST, ARCHIVE)}


def _stamp(path: Path) -> tuple[int, ...]:
    # ctime cannot be set back by a user process, so a rewrite always shows.
    try:
        st = path.lstat()
    except FileNotFoundError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# -- computing the change ----------------------------------------------------------------------


def _scan(tree: Path) -> tuple[dict[str, EntryType], set[str]]:
    """Files, executables and symlinks of `tree` (links not followed), and nested repositories."""
    try:
        is_dir = stat.S_ISDIR(tree.lstat().st_mode)
    except FileNotFoundError:
        is_dir = False
    if not is_dir:
        raise WorkspaceError(f"{TREE}: the work tree is no longer a directory")
    entries: dict[str, EntryType] = {}
    submodules: set[str] = set()
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            listing = list(os.scandir(tree / prefix if prefix else tree))
        except OSError as exc:
            folder = prefix.rstrip("/") or "."
            raise WorkspaceError(f"{folder}: unreadable folder ({exc.strerror})") from exc
        for item in listing:
            rel = f"{prefix}{item.name}"
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                raise WorkspaceError(f"{rel!r}: path is not valid UTF-8") from None
            if not prefix and item.name == ".git":
                continue  # the builder's own repository: not part of the change
            mode = item.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                entries[rel] = EntryType.SYMLINK
            elif stat.S_ISDIR(mode):
                if os.path.lexists(os.path.join(item.path, ".git")):
                    submodules.add(rel)
                else:
                    pending.append(rel + "/")
            elif stat.S_ISREG(mode):
                entries[rel] = EntryType.EXECUTABLE if mode & 0o100 else EntryType.FILE
            else:
                raise WorkspaceError(f"{rel}: {_special_kind(mode)} (special files refused)")
    return entries, submodules


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def _is_binary(data: bytes) -> bool:
    if b"\0" in data[:_BINARY_SNIFF]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _line_delta(old: bytes, new: bytes) -> tuple[int, int]:
    """(added, removed) as a line-multiset difference: a lower bound of a real diff's counts."""
    before, after = Counter(old.splitlines()), Counter(new.splitlines())
    return sum((after - before).values()), sum((before - after).values())


def _read(tree: Path, rel: str, kind: EntryType, limits: WorkspaceLimits) -> bytes:
    path = tree / rel
    if kind == EntryType.SYMLINK:
        return os.fsencode(os.readlink(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise WorkspaceError(f"{rel}: unreadable ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):  # swapped since the scan
            raise WorkspaceError(f"{rel}: {_special_kind(st.st_mode)} (special files refused)")
        if st.st_size > limits.max_file_bytes:
            raise WorkspaceError(
                f"{rel}: {st.st_size} bytes exceeds the per-file cap of {limits.max_file_bytes}"
            )
        return handle.read(limits.max_file_bytes + 1)


def compute_change(workspace: Workspace) -> Change:
    """Everything the builder changed in the work tree against the base, paths sorted.

    Symlinks carry their target as content; a folder holding `.git` is a SUBMODULE (content
    None, never descended into); the root `.git` is ignored (see `Workspace.has_git_dir`);
    fifos, sockets and devices raise WorkspaceError, unread. Line counts are a line-multiset
    difference (moved lines count as unchanged), 0 for binary files and symlinks.
    """
    base = workspace.manifest
    if workspace.head is None:
        raise WorkspaceError(f"{workspace.root}: no base materialised")
    tree, limits = workspace.tree, workspace.limits
    entries, submodules = _scan(tree)
    changed: dict[str, tuple[EntryType, bytes | None]] = {}
    total = 0
    for rel, kind in entries.items():
        data = _read(tree, rel, kind, limits)
        old = base.get(rel)
        if old is not None and old.entry_type == kind and old.sha == blob_sha(data):
            continue
        total += len(data)
        if total > limits.max_bytes:
            raise WorkspaceError(f"{rel}: changed content exceeds the size cap {limits.max_bytes}")
        changed[rel] = (kind, data)
    for rel in submodules:
        changed[rel] = (EntryType.SUBMODULE, None)
    deleted = {rel for rel in base if rel not in entries and rel not in submodules}

    text_files = (EntryType.FILE, EntryType.EXECUTABLE)
    wanted = {
        rel for rel in (*changed, *deleted) if rel in base and base[rel].entry_type in text_files
    }
    old_contents = read_contents(workspace.archive, wanted, limits)
    files = []
    for rel in sorted({*changed, *deleted}):
        old_data = old_contents.get(rel, b"")
        old_text = not _is_binary(old_data)
        old_content = old_data if rel in old_contents and old_text else None
        if rel in deleted:
            removed = len(old_data.splitlines()) if old_text else 0
            kind = base[rel].entry_type
            files.append(
                FileChange(
                    rel, ChangeKind.DELETED, kind, None, 0, removed, not old_text, old_content
                )
            )
            continue
        kind, new_data = changed[rel]
        change_kind = ChangeKind.MODIFIED if rel in base else ChangeKind.ADDED
        if new_data is None or kind == EntryType.SYMLINK:
            files.append(FileChange(rel, change_kind, kind, new_data))
            continue
        binary = _is_binary(new_data)
        added, removed = (0, 0) if binary else _line_delta(old_data if old_text else b"", new_data)
        files.append(
            FileChange(rel, change_kind, kind, new_data, added, removed, binary, old_content)
        )
    return Change(base_commit=workspace.head, files=tuple(files))
