"""Snapshot files for rendered text: compared byte for byte, rewritten with UPDATE_SNAPSHOTS=1
(then read the diff as the person who will read the text would)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def assert_snapshot(folder: Path, name: str, rendered: str) -> None:
    """Compare `rendered` with <folder>/<name>.md.

    With UPDATE_SNAPSHOTS=1 the file is rewritten and the test FAILS (naming it), so a rewrite
    can never pass by comparing the text with itself; CI refuses the variable outright. Every
    behaviour change a new snapshot shows needs a direct assertion of its own beside it.
    """
    path = folder / f"{name}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        if os.environ.get("CI") == "true":
            pytest.fail("UPDATE_SNAPSHOTS=1 under CI=true: snapshots are never rewritten in CI")
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if rendered != old:
            folder.mkdir(exist_ok=True)
            path.write_text(rendered, encoding="utf-8")
            pytest.fail(f"{path.name} rewritten: read the diff, then run again without it")
    assert path.exists(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1 and read it"
    assert rendered == path.read_text(encoding="utf-8"), f"{path.name} changed"
