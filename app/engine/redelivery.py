"""Catch up on deliveries GitHub could not make while Autopack was down.

GitHub does not redeliver failed webhook deliveries by itself. On start and periodically the
reconciler lists the App's recent deliveries and asks GitHub to redeliver each failed one that
never reached the inbox; the redelivery keeps its `X-GitHub-Delivery` GUID, so the inbox's
de-duplication makes doing this twice harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from app.engine.routes import EVENTS
from app.logs import fields

log = logging.getLogger("autopack.redelivery")
# The endpoint refused the body itself (malformed, too large, compressed): the same body again
# would be refused again, every catch-up pass, for as long as GitHub keeps the delivery.
REFUSED_FOR_GOOD = frozenset({400, 413, 415})


class AppAPI(Protocol):
    """The App-authenticated client calls this needs (gidgethub's GitHubAPI has them)."""

    def getiter(self, url: str, url_vars: dict[str, str] | None = ...) -> Any: ...

    async def post(self, url: str, url_vars: dict[str, str] | None = ..., *, data: Any) -> Any: ...


class SeenDeliveries(Protocol):
    """The inbox, asked whether a GUID was stored."""

    async def status_of(self, delivery_id: str) -> str | None: ...


@dataclass(frozen=True)
class RedeliveryReport:
    """What one catch-up pass looked at and asked for."""

    examined: int
    redelivered: tuple[str, ...]
    skipped_unhandled: int
    skipped_refused: int = 0


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def redeliver_failed(
    app: AppAPI,
    inbox: SeenDeliveries,
    since: datetime,
    *,
    max_examined: int = 1000,
    max_redeliveries: int = 100,
    settle: timedelta = timedelta(seconds=30),
) -> RedeliveryReport:
    """Ask GitHub to redeliver failed deliveries since `since` that the inbox never stored.

    Deliveries younger than `settle` are left alone: one may still be on its way to us.
    """
    attempts: dict[str, list[dict[str, Any]]] = {}
    examined = 0
    newest_allowed = datetime.now(UTC) - settle
    async for delivery in app.getiter("/app/hook/deliveries?per_page=100"):
        when = _when(delivery["delivered_at"])
        # Newest first: stop at the first one older than the window.
        if when < since or examined >= max_examined:
            break
        if when > newest_allowed:
            continue
        examined += 1
        attempts.setdefault(delivery["guid"], []).append(delivery)
    redelivered: list[str] = []
    unhandled = refused = 0
    for guid, tries in attempts.items():
        if any(200 <= (t.get("status_code") or 0) < 300 for t in tries):
            continue
        if tries[0].get("event") not in EVENTS:
            unhandled += 1
            continue
        newest = max(tries, key=lambda t: _when(t["delivered_at"]))
        if newest.get("status_code") in REFUSED_FOR_GOOD:
            refused += 1
            continue
        if await inbox.status_of(guid) is not None or len(redelivered) >= max_redeliveries:
            continue
        await app.post(f"/app/hook/deliveries/{newest['id']}/attempts", data={})
        redelivered.append(guid)
        log.info("asked GitHub to redeliver", extra=fields(delivery=guid, event=newest["event"]))
    return RedeliveryReport(examined, tuple(redelivered), unhandled, refused)
