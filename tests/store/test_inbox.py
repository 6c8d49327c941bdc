"""The inbox stores each delivery once and leases it to one worker at a time."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.inbox import MAX_ATTEMPTS, Inbox, NewDelivery

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def delivery(guid: str, event: str = "issues") -> NewDelivery:
    body = b'{"action": "opened", "installation": {"id": 7}}'
    return NewDelivery(guid, event, "opened", 7, body)


async def test_add_is_idempotent_per_delivery_id(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    assert await inbox.add(delivery("a")) is True
    assert await inbox.add(delivery("a")) is False
    assert await inbox.add(delivery("b")) is True
    assert await inbox.counts() == {"pending": 2}


async def test_claim_leases_oldest_first_and_only_once(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    for guid in ("first", "second"):
        await inbox.add(delivery(guid), now=T0)
    one = await inbox.claim(now=T0)
    two = await inbox.claim(now=T0)
    assert one is not None
    assert two is not None
    assert (one.delivery_id, two.delivery_id) == ("first", "second")
    assert json.loads(one.body) == {"action": "opened", "installation": {"id": 7}}
    assert one.attempts == 1
    assert await inbox.claim(now=T0) is None


async def test_expired_lease_is_reclaimed(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    await inbox.add(delivery("a"), now=T0)
    first = await inbox.claim(lease=timedelta(seconds=30), now=T0)
    assert first is not None
    assert await inbox.claim(now=T0 + timedelta(seconds=29)) is None
    again = await inbox.claim(now=T0 + timedelta(seconds=31))
    assert again is not None
    assert again.delivery_id == "a"
    assert again.attempts == 2


async def test_finish_and_fail(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    await inbox.add(delivery("ok"), now=T0)
    await inbox.add(delivery("bad"), now=T0)
    ok = await inbox.claim(now=T0)
    assert ok is not None
    await inbox.finish(ok)
    assert await inbox.status_of("ok") == "done"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        bad = await inbox.claim(now=T0)
        assert bad is not None
        assert bad.attempts == attempt
        final = await inbox.fail(bad, "boom")
        assert final is (attempt == MAX_ATTEMPTS)
    assert await inbox.status_of("bad") == "failed"
    assert await inbox.claim(now=T0) is None
    assert await inbox.status_of("never") is None


async def test_concurrent_claims_never_share_a_delivery(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    for index in range(20):
        await inbox.add(delivery(f"d{index}"), now=T0)

    async def claimer() -> list[str]:
        got = []
        while (item := await inbox.claim(now=T0)) is not None:
            got.append(item.delivery_id)
        return got

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    claimed = [guid for result in results for guid in result]
    assert sorted(claimed) == sorted(f"d{index}" for index in range(20))
