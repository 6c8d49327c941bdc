"""A routing table over gidgethub's router that also knows what it routes.

Each route module registers small handlers with `@routes.register(event, action=...)`, as
bedevere does; `Routes(a, b, ...)` composes them once. What the webhook endpoint stores, what the
worker handles and the events app.yml subscribes to are all read from the composed table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gidgethub import routing, sansio

from app.domain.payload import Payload
from app.store.inbox import InboxDelivery
from app.store.installations import Installations

if TYPE_CHECKING:
    from app.engine.config_check import ConfigCheck
    from app.engine.run_intake import RunIntake


@dataclass(frozen=True)
class Deps:
    """What route handlers work with (without GitHub credentials only installations are kept)."""

    installations: Installations
    intake: RunIntake | None = None
    config_check: ConfigCheck | None = None


Handler = Callable[[sansio.Event, Payload, InboxDelivery, Deps], Awaitable[None]]


class Routes:
    """Handlers by event and action, composable like gidgethub's `Router(*others)`."""

    def __init__(self, *others: Routes) -> None:
        self._router: routing.Router = routing.Router(*(other._router for other in others))
        self.keys: frozenset[tuple[str, str | None]] = frozenset(
            key for other in others for key in other.keys
        )

    @property
    def events(self) -> frozenset[str]:
        """Every event some handler acts on."""
        return frozenset(event for event, _ in self.keys)

    def register(self, event: str, action: str | None = None) -> Callable[[Handler], Handler]:
        """Register a handler for `event` (and one `action` of it, or all)."""
        self.keys = self.keys | {(event, action)}
        details: dict[str, Any] = {} if action is None else {"action": action}
        return self._router.register(event, **details)

    def handles(self, event: str, payload: Payload) -> bool:
        """True when some handler is registered for this event and action."""
        return bool(self._router.fetch(_event(event, payload, "")))

    async def dispatch(self, delivery: InboxDelivery, payload: Payload, deps: Deps) -> None:
        """Call every handler registered for the delivery's event and action."""
        event = _event(delivery.event, payload, delivery.delivery_id)
        await self._router.dispatch(event, payload, delivery, deps)


def _event(event: str, payload: Payload, delivery_id: str) -> sansio.Event:
    # The router picks handlers by event and action; handlers read the typed payload.
    return sansio.Event({"action": payload.action}, event=event, delivery_id=delivery_id)
