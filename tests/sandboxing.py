"""What the tests' sandboxed commands need, as an operator would configure it.

The test interpreter lives wherever the machine put it (here a pyenv build under /root, which
the sandbox hides) and CI clones the repository to a path nobody knows (possibly under /tmp,
also hidden), so every sandboxed test profile shows the interpreter and the test scripts
read-only: exactly what an operator does for an agent CLI installed under a hidden directory.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from app.agents.pids import discover_process_limit
from app.agents.sandbox import SandboxHost
from app.config import Settings

TESTS = Path(__file__).resolve().parent


def read_only_paths() -> list[str]:
    """The interpreter's prefixes and the tests directory, resolved and without duplicates."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(TESTS)]
    resolved = dict.fromkeys(os.path.realpath(path) for path in paths)
    # A path inside another one listed adds nothing.
    return [p for p in resolved if not any(p != q and p.startswith(q + "/") for q in resolved)]


def require_bwrap() -> None:
    """Skip when bubblewrap is missing, except under CI, where the sandbox must really run."""
    if shutil.which("bwrap") is None:
        if os.environ.get("CI"):
            pytest.fail("bubblewrap (bwrap) is missing under CI=true: .ci/run installs it")
        pytest.skip("bubblewrap (bwrap) is not installed")


def sandbox_host(data_dir: Path, settings: Settings | None = None) -> SandboxHost:
    """The host side of the sandbox for a server whose data directory is `data_dir`."""
    require_bwrap()
    settings = settings or Settings(data_dir=data_dir)
    return SandboxHost.from_settings(settings, discover_process_limit())
