"""The per-attempt pids cgroup on this host: limit, clean-up, and what a dead worker left."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.agents.pids import AttemptCgroup, ProcessLimit, discover_process_limit


@pytest.fixture
def parent() -> Path:
    """Where this host's attempt cgroups go (skipped where there is none, i.e. not as root)."""
    found = discover_process_limit().cgroup_parent
    if found is None:
        if os.getuid() == 0 and os.environ.get("CI"):
            pytest.fail("no writable pids cgroup for a root worker under CI")
        pytest.skip("no writable pids cgroup here")
    return found


async def test_an_attempt_cgroup_caps_processes_and_kills_what_is_left(parent: Path) -> None:
    cgroup = AttemptCgroup.create(parent, max_processes=8)
    code = (
        "import os, time\n"
        "n = 0\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        os.setsid(); time.sleep(300); os._exit(0)\n"
        "    n += 1\n"
        "print(n, flush=True)\n"
        "time.sleep(300)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=subprocess.PIPE, preexec_fn=cgroup.joiner()
    )
    assert proc.stdout is not None
    started = int(await proc.stdout.readline())
    members = cgroup.members()

    problem = await cgroup.destroy()
    await proc.wait()

    assert started == 7  # the parent is the eighth
    assert len(members) == 8
    assert problem is None
    assert not cgroup.path.exists()
    assert not [pid for pid in members if _running(pid)]


async def test_a_dead_workers_empty_cgroup_is_removed_and_a_live_ones_kept(parent: Path) -> None:
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    abandoned = parent / f"autopack-{gone.pid}-0123456789ab"
    live = parent / f"autopack-{os.getpid()}-0123456789ab"
    abandoned.mkdir()
    live.mkdir()
    try:
        found = discover_process_limit()
        assert found == ProcessLimit(cgroup_parent=parent, use_rlimit=False)
        assert not abandoned.exists()
        assert live.exists()
    finally:
        for path in (abandoned, live):
            if path.exists():
                path.rmdir()


def _running(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
