"""Re-packing a work tree as the workspace's base archive, hashing each file on the way."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import IO

from app.agents.tarball import (
    BaseEntry,
    Manifest,
    WorkspaceError,
    WorkspaceLimits,
    blob_hasher,
    blob_sha,
)
from app.domain.change import EntryType


class _HashingReader:
    def __init__(self, raw: IO[bytes], size: int) -> None:
        self._raw = raw
        self.hasher = blob_hasher(size)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hasher.update(data)
        return data


def pack_tree(
    tree: Path, entries: list[tuple[str, EntryType]], dest: Path, limits: WorkspaceLimits
) -> Manifest:
    """Write `entries` of `tree` as a gzip tar under one top folder; return their manifest."""
    manifest: Manifest = {}
    total = 0
    with tarfile.open(dest, mode="x:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("base", tarfile.DIRTYPE, 0o755))
        for rel, entry_type in entries:
            path = tree / rel
            if entry_type == EntryType.SYMLINK:
                info = _info(f"base/{rel}", tarfile.SYMTYPE, 0o777)
                info.linkname = os.readlink(path)
                tar.addfile(info)
                manifest[rel] = BaseEntry(entry_type, blob_sha(os.fsencode(info.linkname)))
                continue
            mode = 0o755 if entry_type == EntryType.EXECUTABLE else 0o644
            with path.open("rb") as src:
                size = os.fstat(src.fileno()).st_size
                total += size
                if size > limits.max_file_bytes or total > limits.max_bytes:
                    raise WorkspaceError(f"{rel}: work tree exceeds the size caps")
                info = _info(f"base/{rel}", tarfile.REGTYPE, mode)
                info.size = size
                reader = _HashingReader(src, size)
                tar.addfile(info, reader)
            manifest[rel] = BaseEntry(entry_type, reader.hasher.hexdigest())
    return manifest


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    return info
