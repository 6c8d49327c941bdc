"""File operations confined to one work tree, for model tool calls and auditor patches."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

MAX_READ_BYTES = 256 * 1024
MAX_WRITE_BYTES = 1024 * 1024
MAX_LISTED = 500


class ToolError(Exception):
    """A tool call the model got wrong; the message goes back to the model."""


class WorkspaceFiles:
    """File operations confined to one work tree."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def locate(self, raw: object, *, follow: bool = True) -> Path:
        """Turn a model-supplied path into a path inside the workspace, or raise ToolError."""
        if not isinstance(raw, str) or not raw.strip() or "\x00" in raw:
            raise ToolError("path must be a non-empty string")
        rel = PurePosixPath(raw)
        if rel.is_absolute():
            raise ToolError(f"{raw}: absolute paths are not allowed")
        if ".." in rel.parts:
            raise ToolError(f"{raw}: '..' is not allowed")
        lexical = self.root.joinpath(*rel.parts)
        # Resolve symlinks in every component (the last one too unless deleting a link).
        real = lexical.resolve() if follow else lexical.parent.resolve() / lexical.name
        if real != self.root and not real.is_relative_to(self.root):
            raise ToolError(f"{raw}: escapes the workspace through a symlink")
        return real

    def list_files(self, args: dict[str, Any]) -> str:
        """Recursive listing, directories marked with '/'."""
        base = self.locate(args.get("path", "."))
        if not base.is_dir():
            raise ToolError(f"{args.get('path')}: not a directory")
        found: list[str] = []
        for parent, dirs, files in os.walk(base):
            dirs.sort()
            for name, mark in [*((d, "/") for d in dirs), *((f, "") for f in sorted(files))]:
                found.append(Path(parent, name).relative_to(self.root).as_posix() + mark)
                if len(found) >= MAX_LISTED:
                    return "\n".join([*found, f"... (listing stopped at {MAX_LISTED} entries)"])
        return "\n".join(sorted(found)) or "(empty)"

    def read_file(self, args: dict[str, Any]) -> str:
        """A text file's content."""
        path = self.locate(args.get("path"))
        if not path.is_file():
            raise ToolError(f"{args.get('path')}: no such file")
        if path.stat().st_size > MAX_READ_BYTES:
            raise ToolError(f"{args.get('path')}: larger than {MAX_READ_BYTES} bytes")
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{args.get('path')}: not a UTF-8 text file") from None

    def write_file(self, args: dict[str, Any]) -> str:
        """Create or replace a file."""
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        data = content.encode("utf-8")
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"content larger than {MAX_WRITE_BYTES} bytes")
        path = self.locate(args.get("path"))
        if path == self.root or path.is_dir():
            raise ToolError(f"{args.get('path')}: is a directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"wrote {len(data)} bytes to {path.relative_to(self.root).as_posix()}"

    def delete_file(self, args: dict[str, Any]) -> str:
        """Delete a file or a symlink (never what the link points to)."""
        path = self.locate(args.get("path"), follow=False)
        if path.is_dir() and not path.is_symlink():
            raise ToolError(f"{args.get('path')}: is a directory; delete its files one by one")
        if not path.is_symlink() and not path.exists():
            raise ToolError(f"{args.get('path')}: no such file")
        path.unlink()
        return f"deleted {path.relative_to(self.root).as_posix()}"


def apply_patch(root: Path, patch: Mapping[str, str | None]) -> list[str]:
    """Write an auditor's patch (path -> new text, None deletes) into the tree.

    Every path is confined like a model's tool call; the first refused path stops the patch
    before anything is written, so a patch applies whole or not at all. Returns what was done.
    """
    files = WorkspaceFiles(root)
    for path in patch:
        files.locate(path, follow=False)
    done = []
    for path, content in sorted(patch.items()):
        if content is None:
            done.append(files.delete_file({"path": path}))
        else:
            done.append(files.write_file({"path": path, "content": content}))
    return done
