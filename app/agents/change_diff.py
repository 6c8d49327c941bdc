"""A workspace change as a unified diff against its base, for the auditor and the incident pack."""

from __future__ import annotations

from app.agents.tarball import read_contents
from app.agents.workspace import Workspace
from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.evidence import FileDiff, unified_diff

_TEXT_TYPES = (EntryType.FILE, EntryType.EXECUTABLE)


def change_diff(workspace: Workspace, change: Change) -> str:
    """`change` (computed from `workspace`) as a unified diff; blocking, so call it in a thread."""
    base = workspace.manifest
    wanted = {
        f.path
        for f in change.files
        if f.kind is not ChangeKind.ADDED and base[f.path].entry_type in _TEXT_TYPES
    }
    old = read_contents(workspace.archive, wanted, workspace.limits)
    return unified_diff(_file_diff(file, old.get(file.path)) for file in change.files)


def _file_diff(file: FileChange, old: bytes | None) -> FileDiff:
    if file.entry_type is EntryType.SUBMODULE:
        return FileDiff(file.path, None, None, note=f"submodule {file.kind.value}")
    if file.entry_type is EntryType.SYMLINK:
        target = (file.content or b"").decode("utf-8", "replace")
        return FileDiff(file.path, None, None, note=f"symlink {file.kind.value} -> {target}")
    if file.kind is ChangeKind.ADDED:
        old = None
    elif old is None:
        old = b""  # the base held a symlink or submodule at this path
    return FileDiff(file.path, old, file.content)
