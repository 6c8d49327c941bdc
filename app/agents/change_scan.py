"""What a builder changed in a work tree against its base: scanning the tree, reading it safely
(no special files, no links followed, size caps) and comparing with the base's manifest."""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

from app.agents.tarball import (
    Manifest,
    WorkspaceError,
    WorkspaceLimits,
    blob_sha,
    read_contents,
)
from app.domain.change import Change, ChangeKind, EntryType, FileChange

_BINARY_SNIFF = 8192
TREE = "tree"


def scan_tree(tree: Path) -> tuple[dict[str, EntryType], set[str]]:
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


def compute_change(
    tree: Path, head: str, base: Manifest, archive: Path, limits: WorkspaceLimits
) -> Change:
    """Everything a builder changed in `tree` against the base commit `head`, paths sorted.

    `base` is the base's manifest and `archive` its kept tarball (old contents are read from it).
    Symlinks carry their target as content; a folder holding `.git` is a SUBMODULE (content
    None, never descended into); the root `.git` is ignored (see `Workspace.has_git_dir`);
    fifos, sockets and devices raise WorkspaceError, unread. Line counts are a line-multiset
    difference (moved lines count as unchanged), 0 for binary files and symlinks.
    """
    entries, submodules = scan_tree(tree)
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
    old_contents = read_contents(archive, wanted, limits)
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
    return Change(base_commit=head, files=tuple(files))
