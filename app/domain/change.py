"""A change a builder made to a workspace, as plain data the gate and the write path share."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ChangeKind(StrEnum):
    """What happened to one path."""

    ADDED = "added"
    MODIFIED = "modified"
    DELETED = "deleted"


class EntryType(StrEnum):
    """What the path is in the new tree (for deletions: what it was)."""

    FILE = "file"
    EXECUTABLE = "executable"
    SYMLINK = "symlink"
    SUBMODULE = "submodule"

    @property
    def git_mode(self) -> str:
        """The git tree mode GitHub's trees API expects for this entry type."""
        return _GIT_MODES[self]


_GIT_MODES = {
    EntryType.FILE: "100644",
    EntryType.EXECUTABLE: "100755",
    EntryType.SYMLINK: "120000",
    EntryType.SUBMODULE: "160000",
}


@dataclass(frozen=True)
class FileChange:
    """One changed path (POSIX, relative to the repository root, never starting with '/')."""

    path: str
    kind: ChangeKind
    entry_type: EntryType
    # New content: file bytes, or a symlink's target as bytes; None for deletions and submodules.
    content: bytes | None = None
    # Lines added/removed for text files (0 for binary), used by the gate's size rules.
    lines_added: int = 0
    lines_removed: int = 0
    binary: bool = False
    # The base tree's content of a modified or deleted text file, when known (the gate's
    # test-integrity rules compare it with the new content); None otherwise. Evidence about the
    # change, not part of it: two changes that write the same thing are equal.
    old_content: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        """Bytes of new content (0 when deleted)."""
        return len(self.content) if self.content is not None else 0


@dataclass(frozen=True)
class Change:
    """Everything that differs between the base tree and the workspace after a builder ran."""

    base_commit: str
    files: tuple[FileChange, ...]

    @property
    def empty(self) -> bool:
        """True when the builder changed nothing."""
        return not self.files

    @property
    def lines_changed(self) -> int:
        """Added plus removed lines over all text files."""
        return sum(f.lines_added + f.lines_removed for f in self.files)
