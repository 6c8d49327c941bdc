"""Safe, streaming handling of repository tarballs: extract and read back (downloading is in
`download.py`, re-packing a work tree in `repack.py`).

GitHub's tarball is `git archive` output under one top folder (`<owner>-<repo>-<sha7>/`). We
never call `TarFile.extract*`: every member is checked by our own rules (then by the standard
library's `data_filter` as a second opinion) and written with `O_EXCL|O_NOFOLLOW`, hashing its
content on the way, so the base manifest comes out of the same single pass.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import secrets
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from app.domain.change import EntryType

MiB = 1024 * 1024
_CHUNK = 256 * 1024
# Prefix of every temporary path Autopack creates beside a work tree.
TEMP_PREFIX = ".autopack-"


class Readable(Protocol):
    """Anything with a binary `read`."""

    def read(self, size: int = -1, /) -> bytes:
        """Up to `size` bytes (all when negative)."""


class WorkspaceError(Exception):
    """A workspace could not be materialised or read; the message names the path and the rule."""


class TarballUnavailable(WorkspaceError):
    """The download failed in a way worth retrying later (network error, 429, 5xx)."""


@dataclass(frozen=True)
class WorkspaceLimits:
    """Caps on what a tarball (and a builder's change) may hold."""

    max_files: int = 20_000
    max_bytes: int = 500 * MiB  # uncompressed total
    max_file_bytes: int = 100 * MiB
    max_download_bytes: int = 500 * MiB  # compressed archive

    @property
    def max_stream_bytes(self) -> int:
        """Cap on the decompressed tar stream: contents plus generous room for headers."""
        return self.max_bytes + 2048 * self.max_files + MiB


@dataclass(frozen=True)
class BaseEntry:
    """One path of the base tree: its type and git blob sha (of the link target for symlinks)."""

    entry_type: EntryType
    sha: str


Manifest = dict[str, BaseEntry]


def blob_sha(data: bytes) -> str:
    """The git blob id of `data` (sha1 of b"blob <len>\\0" + data)."""
    return blob_hasher(len(data), data).hexdigest()


def blob_hasher(size: int, data: bytes = b"") -> hashlib._Hash:
    h = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    h.update(data)
    return h


# -- reading archives ------------------------------------------------------------------------


class _CappedReader:
    """A read-only stream that refuses to yield more than `cap` bytes (bounds gzip bombs)."""

    def __init__(self, raw: Readable, cap: int) -> None:
        self._raw = raw
        self._left = cap
        self._cap = cap

    def read(self, size: int = -1) -> bytes:
        # Never ask for more than one byte past the cap: a bomb is stopped before it inflates.
        if size < 0 or size > self._left + 1:
            size = self._left + 1
        data = self._raw.read(size)
        self._left -= len(data)
        if self._left < 0:
            raise WorkspaceError(
                f"archive: decompressed stream exceeds {self._cap} bytes (size cap)"
            )
        return data


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)


class _GuardedStream:
    """A member's content stream whose decoding errors surface as WorkspaceError."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self._raw = raw
        self._name = name

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read(size)
        except _READ_ERRORS as exc:
            raise WorkspaceError(f"{self._name}: unreadable member ({exc})") from exc


@contextmanager
def _open_stream(archive: Path, limits: WorkspaceLimits) -> Iterator[tarfile.TarFile]:
    with archive.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        unzipped = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else None
        try:
            reader = _CappedReader(raw if unzipped is None else unzipped, limits.max_stream_bytes)
            try:
                # "r|": strictly sequential, never seeks, holds one member at a time.
                tar = tarfile.open(fileobj=reader, mode="r|")  # type: ignore[call-overload]  # noqa: SIM115
            except _READ_ERRORS as exc:
                raise WorkspaceError(f"archive: unreadable ({exc})") from exc
            with tar:
                yield tar
        finally:
            if unzipped is not None:
                unzipped.close()


def _next_member(members: Iterator[tarfile.TarInfo]) -> tarfile.TarInfo | None:
    try:
        return next(members)
    except StopIteration:
        return None
    except _READ_ERRORS as exc:
        raise WorkspaceError(f"archive: unreadable ({type(exc).__name__}: {exc})") from exc


def _relative(name: str, top: str | None) -> tuple[str, str]:
    """(top folder, path below it) of a member name, refusing unsafe names."""
    if name.startswith("/"):
        raise WorkspaceError(f"{name}: absolute path (refused)")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise WorkspaceError(f"{name}: '..' path component (refused)")
    if any(p in ("", ".") for p in parts):
        raise WorkspaceError(f"{name}: empty or '.' path component (refused)")
    if top is not None and parts[0] != top:
        raise WorkspaceError(f"{name}: member outside the top folder {top!r} (refused)")
    rel = "/".join(parts[1:])
    if any(p.lower() == ".git" for p in parts[1:]):
        raise WorkspaceError(f"{name}: '.git' path component (refused)")
    return parts[0], rel


def iter_members(
    archive: Path, limits: WorkspaceLimits
) -> Iterator[tuple[str, tarfile.TarInfo, Readable | None]]:
    """Yield (path below the top folder, member, content stream) after every safety rule."""
    with _open_stream(archive, limits) as tar:
        top: str | None = None
        count = 0
        total = 0
        members = iter(tar)
        while (member := _next_member(members)) is not None:
            count += 1
            if count > limits.max_files:
                raise WorkspaceError(
                    f"{member.name}: more than {limits.max_files} members (file-count cap)"
                )
            top, rel = _relative(member.name, top)
            if not rel:
                if not member.isdir():
                    raise WorkspaceError(f"{member.name}: top folder is not a directory (refused)")
                continue
            _check_type(member, rel, top)
            if member.isreg():
                if member.size > limits.max_file_bytes:
                    raise WorkspaceError(
                        f"{rel}: {member.size} bytes exceeds the per-file cap of "
                        f"{limits.max_file_bytes} bytes"
                    )
                total += member.size
                if total > limits.max_bytes:
                    raise WorkspaceError(
                        f"{rel}: uncompressed total exceeds the size cap of "
                        f"{limits.max_bytes} bytes"
                    )
            try:  # the standard library's own rules, as a second opinion
                tarfile.data_filter(member, "/nonexistent-autopack-root")
            except tarfile.FilterError as exc:
                raise WorkspaceError(f"{rel}: refused by tarfile's data filter ({exc})") from exc
            stream = tar.extractfile(member) if member.isreg() else None
            yield rel, member, None if stream is None else _GuardedStream(stream, rel)


def _check_type(member: tarfile.TarInfo, rel: str, top: str) -> None:
    if member.isreg() or member.isdir():
        return
    if member.issym():
        target = member.linkname
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if not target or target.startswith("/") or resolved.split("/")[0] == "..":
            raise WorkspaceError(f"{rel}: symlink to {target!r} leaves the workspace (refused)")
        return
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or not target.startswith(top + "/"):
            raise WorkspaceError(f"{rel}: hard link to {target!r} leaves the workspace (refused)")
        _relative(target, top)
        return
    kind = {
        tarfile.CHRTYPE: "character device",
        tarfile.BLKTYPE: "block device",
        tarfile.FIFOTYPE: "fifo",
    }.get(member.type, f"special member type {member.type!r}")
    raise WorkspaceError(f"{rel}: {kind} (special files refused)")


# -- extraction ------------------------------------------------------------------------------


def extract_archive(archive: Path, target: Path, limits: WorkspaceLimits) -> Manifest:
    """Extract into a temp dir beside `target`, renamed to `target` only if every rule held."""
    if target.exists() or target.is_symlink():
        raise WorkspaceError(f"{target}: extraction target already exists")
    staging = target.parent / f"{TEMP_PREFIX}extract-{secrets.token_hex(6)}"
    staging.mkdir(mode=0o755)
    try:
        manifest = _extract_into(archive, staging, limits)
        _check_links_resolve_inside(staging, manifest)
        staging.rename(target)
    except BaseException:
        force_rmtree(staging)
        raise
    return manifest


def _extract_into(archive: Path, root: Path, limits: WorkspaceLimits) -> Manifest:
    manifest: Manifest = {}
    seen: set[str] = set()
    for rel, member, stream in iter_members(archive, limits):
        if rel in seen:
            raise WorkspaceError(f"{rel}: duplicate member (refused)")
        seen.add(rel)
        _make_parents(root, rel)
        dest = root / rel
        if member.isdir():
            _mkdir(dest, rel)
        elif member.issym():
            try:
                os.symlink(member.linkname, dest)
            except FileExistsError:
                raise WorkspaceError(f"{rel}: path already exists (refused)") from None
            manifest[rel] = BaseEntry(EntryType.SYMLINK, blob_sha(os.fsencode(member.linkname)))
        elif member.islnk():
            # A tree holds no hard links: materialise an earlier regular file as a copy.
            source = member.linkname.split("/", 1)[1]
            entry = manifest.get(source)
            if entry is None or entry.entry_type == EntryType.SYMLINK:
                raise WorkspaceError(f"{rel}: hard link to a non-file {source!r} (refused)")
            kind = _file_type(member.mode)
            with (root / source).open("rb") as src:
                size = os.fstat(src.fileno()).st_size
                manifest[rel] = BaseEntry(kind, _write_file(dest, src, size, kind))
        else:
            assert stream is not None
            kind = _file_type(member.mode)
            manifest[rel] = BaseEntry(kind, _write_file(dest, stream, member.size, kind))
    return manifest


def _file_type(mode: int) -> EntryType:
    return EntryType.EXECUTABLE if mode & 0o100 else EntryType.FILE


def _mkdir(path: Path, rel: str) -> None:
    try:
        path.mkdir(mode=0o755)
    except FileExistsError:
        if not stat.S_ISDIR(path.lstat().st_mode):
            raise WorkspaceError(f"{rel}: both a directory and a non-directory (refused)") from None


def _make_parents(root: Path, rel: str) -> None:
    """Create the parent folders of `rel`, refusing to walk through anything but directories."""
    current = root
    parts = rel.split("/")[:-1]
    for i, part in enumerate(parts):
        current = current / part
        _mkdir(current, "/".join(parts[: i + 1]))


def _write_file(dest: Path, src: Readable, size: int, kind: EntryType) -> str:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    mode = 0o755 if kind == EntryType.EXECUTABLE else 0o644
    try:
        fd = os.open(dest, flags, mode)
    except FileExistsError:
        raise WorkspaceError(f"{dest.name}: path already exists (refused)") from None
    hasher = blob_hasher(size)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while written < size:
            chunk = src.read(min(_CHUNK, size - written))
            if not chunk:
                break
            hasher.update(chunk)
            out.write(chunk)
            written += len(chunk)
        os.fchmod(out.fileno(), mode)  # the umask must not drop the bits we record
    if written != size:
        raise WorkspaceError(f"{dest.name}: truncated member ({written} of {size} bytes)")
    return hasher.hexdigest()


def _check_links_resolve_inside(root: Path, manifest: Manifest) -> None:
    """Links checked one by one can still chain outside (`d -> .`, `x -> d/..`): resolve all."""
    real_root = os.path.realpath(root)
    for rel, entry in manifest.items():
        if entry.entry_type != EntryType.SYMLINK:
            continue
        resolved = os.path.realpath(root / rel)
        if resolved != real_root and not resolved.startswith(real_root + os.sep):
            target = os.readlink(root / rel)
            raise WorkspaceError(f"{rel}: symlink to {target!r} leaves the workspace (refused)")


def read_contents(archive: Path, paths: set[str], limits: WorkspaceLimits) -> dict[str, bytes]:
    """The base content of regular files among `paths` (one sequential pass over the archive)."""
    found: dict[str, bytes] = {}
    if not paths:
        return found
    for rel, _member, stream in iter_members(archive, limits):
        if rel in paths and stream is not None:
            found[rel] = stream.read()
    return found


def force_rmtree(path: Path) -> None:
    """Remove a tree even where a builder left read-only folders; never follows symlinks."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    os.chmod(path, 0o700)
    for dirpath, dirnames, _files in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)
    shutil.rmtree(path)
