"""A finished check run or commit status wakes the runs waiting for CI on its commit.

Check suites are not routed: every check run in a suite sends its own `completed`, which is the
wake-up; created, requested and rerequested check runs cannot change a verdict.
"""

from __future__ import annotations

from gidgethub import sansio

from app.domain.payload import Payload
from app.engine.routes.table import Deps, Routes
from app.store.inbox import InboxDelivery

routes = Routes()


@routes.register("check_run", action="completed")
async def check_run_completed(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """Poll CI now on the check run's commit."""
    check = payload.check_run
    if deps.intake is not None and check is not None:
        await deps.intake.wake_ci(delivery, payload, check.head_sha)


@routes.register("status")
async def status_reported(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """Poll CI now on the status's commit, once the status is a result (pending is not)."""
    if deps.intake is not None and payload.state != "pending":
        await deps.intake.wake_ci(delivery, payload, payload.sha or "")
