"""Snapshot files for rendered text: compared byte for byte, rewritten with UPDATE_SNAPSHOTS=1
(then read the diff as the person who will read the text would)."""

from __future__ import annotations

import os
from pathlib import Path


def assert_snapshot(folder: Path, name: str, rendered: str) -> None:
    """Compare `rendered` with <folder>/<name>.md."""
    path = folder / f"{name}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        folder.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1 and read it"
    assert rendered == path.read_text(encoding="utf-8"), f"{path.name} changed"
