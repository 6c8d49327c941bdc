"""Buttons on Autopack's check run: "Retry run" starts the issue's next run."""

from __future__ import annotations

from gidgethub import sansio

from app.domain.payload import Payload
from app.engine.routes.table import Deps, Routes
from app.store.inbox import InboxDelivery

routes = Routes()


@routes.register("check_run", action="requested_action")
async def check_run_action(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """A button was pressed on a check run (Autopack's own: GitHub sends it to no other app)."""
    if deps.intake is not None:
        await deps.intake.trigger(delivery, payload)
