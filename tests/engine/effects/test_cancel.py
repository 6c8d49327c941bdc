"""cancel: CancelInFlight; the driver stops a long effect itself, so nothing is left to do."""

from __future__ import annotations

from app.domain.effects import CancelInFlight
from app.domain.events import Cancelled
from tests.engine.effects.conftest import EffectWorld


async def test_a_cancel_while_building_asks_github_nothing(world: EffectWorld) -> None:
    building = await world.branched(world.strategy())
    cancelled = building.then(Cancelled(by="alice", reason="not needed any more"))
    assert cancelled.env.state.status.value == "DONE_FAILED_CANCELLED"
    done = await world.carry_out(cancelled, CancelInFlight)
    assert (done.event, done.calls, done.env) == (None, [], cancelled.env)
