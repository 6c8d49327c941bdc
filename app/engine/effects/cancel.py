"""CancelInFlight: the run ended while a builder or auditor may still be at work."""

from __future__ import annotations

from app.domain.effects import CancelInFlight
from app.engine.context import Outcome, RunContext
from app.engine.envelope import Envelope


async def cancel_in_flight(ctx: RunContext, env: Envelope, effect: CancelInFlight) -> Outcome:
    """Nothing left to do here: the driver stops a long effect when the cancel arrives (it polls
    for it while the effect runs), and the sandbox's process tree dies with it."""
    return env, None
