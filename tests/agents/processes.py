"""Finding a test's processes on the host by a token in their command line."""

from __future__ import annotations

import asyncio
from pathlib import Path


def processes_with(token: str) -> list[int]:
    """Host pids whose command line contains `token` (zombies have none, so they do not count)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone while we looked
        if token.encode() in cmdline:
            found.append(int(entry.name))
    return found


async def nothing_left_with(token: str) -> bool:
    """Whether every process carrying `token` is gone within 10 s.

    The attempt already waited for its cgroup to empty; without a cgroup (`sandbox = "none"`
    on a host without one) a SIGKILLed process takes a moment to leave, so allow that moment.
    """
    for _ in range(400):
        if not processes_with(token):
            return True
        await asyncio.sleep(0.025)
    return not processes_with(token)
