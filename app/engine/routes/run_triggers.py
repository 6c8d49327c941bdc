"""Labels, commands and edits on an issue: start, cancel or preview a run, guard its plan."""

from __future__ import annotations

from gidgethub import sansio

from app.domain.payload import Payload
from app.engine.routes.table import Deps, Routes
from app.store.inbox import InboxDelivery

routes = Routes()


@routes.register("issues", action="labeled")
@routes.register("issues", action="unlabeled")
@routes.register("issues", action="closed")
@routes.register("issues", action="edited")
@routes.register("issue_comment", action="created")
async def issue_trigger(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """`autopack:run` starts, `autopack:cancel`, unlabelling or closing cancels, `/autopack
    plan|cancel` previews or cancels, and an outsider's edit of a run's plan stops the run."""
    if deps.intake is not None:
        await deps.intake.trigger(delivery, payload)
