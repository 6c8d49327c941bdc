"""Catch up on deliveries GitHub could not make while Autopack was down.

GitHub does not redeliver failed webhook deliveries by itself. On start and periodically the
reconciler lists the App's recent deliveries and asks GitHub to redeliver each failed one that
never reached the inbox; the redelivery keeps its `X-GitHub-Delivery` GUID, so the inbox's
de-duplication makes doing this twice harmless.

What the list says is read as typed values (`HookDelivery`); an entry of another shape is skipped
with a log line, and no single failed pass (an answer of a shape nobody expected included) stops
the catch-up: it logs, waits and looks again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

import aiohttp
import gidgethub
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

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


class HookDelivery(BaseModel):
    """One entry of `GET /app/hook/deliveries`: the parts the catch-up reads."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    # The inbox's delivery_id column holds 64 characters; GitHub's GUIDs are 36.
    guid: Annotated[str, Field(min_length=1, max_length=64)]
    delivered_at: Annotated[AwareDatetime, Field(strict=False)]  # ISO 8601 text in the JSON
    status_code: int | None = None  # None (or 0): GitHub never got an HTTP answer
    event: Annotated[str, Field(max_length=64)]
    action: Annotated[str, Field(max_length=64)] | None = None

    @property
    def reached_us(self) -> bool:
        """GitHub got a 2xx for this attempt."""
        return 200 <= (self.status_code or 0) < 300


def read_delivery(item: Any) -> HookDelivery | None:
    """The typed entry, or None (and a log line) for one of another shape."""
    try:
        return HookDelivery.model_validate(item)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'entry'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        log.warning("skipped a webhook delivery entry of unexpected shape: %s", problems)
        return None


@dataclass(frozen=True)
class RedeliveryReport:
    """What one catch-up pass looked at and asked for."""

    examined: int
    redelivered: tuple[str, ...]
    skipped_unhandled: int
    skipped_refused: int = 0
    skipped_malformed: int = 0


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
    attempts: dict[str, list[HookDelivery]] = {}
    examined = malformed = 0
    newest_allowed = datetime.now(UTC) - settle
    async for item in app.getiter("/app/hook/deliveries?per_page=100"):
        delivery = read_delivery(item)
        if delivery is None:
            malformed += 1
            continue
        # Newest first: stop at the first one older than the window.
        if delivery.delivered_at < since or examined >= max_examined:
            break
        if delivery.delivered_at > newest_allowed:
            continue
        examined += 1
        attempts.setdefault(delivery.guid, []).append(delivery)
    redelivered: list[str] = []
    unhandled = refused = 0
    for guid, tries in attempts.items():
        if any(attempt.reached_us for attempt in tries):
            continue
        if tries[0].event not in EVENTS:
            unhandled += 1
            continue
        newest = max(tries, key=lambda attempt: attempt.delivered_at)
        if newest.status_code in REFUSED_FOR_GOOD:
            refused += 1
            continue
        if await inbox.status_of(guid) is not None or len(redelivered) >= max_redeliveries:
            continue
        await app.post(f"/app/hook/deliveries/{newest.id}/attempts", data={})
        redelivered.append(guid)
        log.info("asked GitHub to redeliver", extra=fields(delivery=guid, event=newest.event))
    return RedeliveryReport(examined, tuple(redelivered), unhandled, refused, malformed)


@dataclass(frozen=True)
class CatchUpTimes:
    """When the catch-up looks (GitHub keeps three days of deliveries)."""

    # On start, look back this far for deliveries that failed.
    lookback: timedelta = timedelta(hours=6)
    # A delivery younger than this may still be on its way: judged at a later look.
    settle: timedelta = timedelta(seconds=30)
    # The second look comes once the deliveries lost just before the first have settled...
    first_repeat: timedelta = timedelta(seconds=35)
    # ...then one every interval, each from the previous look's start minus the overlap (the
    # settling time plus a margin), so what failed while the worker was down is asked for soon.
    interval: timedelta = timedelta(minutes=1)
    overlap: timedelta = timedelta(seconds=90)


async def catch_up(
    client: Callable[[], Awaitable[AppAPI]],
    inbox: SeenDeliveries,
    times: CatchUpTimes = CatchUpTimes(),
) -> None:
    """On start and then every interval, ask GitHub to redeliver what failed to reach us.

    Runs until cancelled: a pass that fails, for whatever reason, is logged and the next one
    comes at its time (starting from where the last good pass started).
    """
    since = datetime.now(UTC) - times.lookback
    wait = times.first_repeat
    while True:
        started = datetime.now(UTC)
        try:
            report = await redeliver_failed(await client(), inbox, since, settle=times.settle)
        except (gidgethub.GitHubException, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not list webhook deliveries: %s", exc)
        except Exception:
            # An answer of a shape nobody foresaw, a database hiccup: the catch-up outlives it,
            # or deliveries missed from now on would never be asked for again.
            log.exception("the webhook catch-up pass failed; looking again later")
        else:
            if report.redelivered:
                log.info("asked for %d redeliveries", len(report.redelivered))
            since = started - times.overlap
        await asyncio.sleep(wait.total_seconds())
        wait = times.interval
