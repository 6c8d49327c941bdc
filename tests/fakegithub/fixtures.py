"""Pytest fixtures: `fakegithub` (a running simulator) and `webhook_receiver` (a hook sink)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakegithub.ci import CIScript
from tests.fakegithub.receiver import Receiver, webhook_receiver
from tests.fakegithub.scenario import FakeGitHub

__all__ = ["CIScript", "FakeGitHub", "Receiver", "fakegithub", "webhook_receiver"]


@pytest.fixture
async def fakegithub() -> AsyncIterator[FakeGitHub]:
    """A simulator on 127.0.0.1:<random>; the test fails at teardown if an unknown route was hit."""
    sim = FakeGitHub()
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()
    if sim.unknown_routes:
        pytest.fail(f"the simulator was asked for unknown routes: {sim.unknown_routes}")
