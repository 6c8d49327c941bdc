"""A push or a fork's pull request that changes `.github/autopack.yml` gets the "Autopack config"
check run on its commit (a pull request inside the repository is covered by its branch's push)."""

from __future__ import annotations

from gidgethub import sansio

from app.domain.payload import Payload
from app.engine.routes.table import Deps, Routes
from app.store.inbox import InboxDelivery

routes = Routes()


@routes.register("push")
@routes.register("pull_request", action="opened")
@routes.register("pull_request", action="reopened")
@routes.register("pull_request", action="synchronize")
async def ruleset_changed(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """Check the ruleset on the commit, if the delivery changed it."""
    if deps.config_check is not None:
        await deps.config_check.handle(delivery, payload)
