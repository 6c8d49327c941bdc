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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import aiohttp

from app.agents.change_scan import compute_change, scan_tree
from app.agents.download import download_tarball
from app.agents.repack import pack_tree
from app.agents.tarball import (
    TEMP_PREFIX,
    BaseEntry,
    Manifest,
    TarballUnavailable,
    WorkspaceError,
    WorkspaceLimits,
    extract_archive,
    force_rmtree,
)
from app.domain.change import Change, EntryType

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
]

TREE = "tree"
MANIFEST = "manifest.json"
ARCHIVE = "base.tar.gz"
_OWN_ENTRIES = frozenset({TREE, MANIFEST, ARCHIVE})
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]+")

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
        entries, _submodules = scan_tree(self.tree)
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
        """The builder's change against the base (see `app.agents.change_scan`)."""
        if self._head is None:
            raise WorkspaceError(f"{self.root}: no base materialised")
        return compute_change(self.tree, self._head, self.manifest, self.archive, self.limits)

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
