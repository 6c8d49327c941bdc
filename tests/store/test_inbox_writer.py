"""Group commit: concurrent deliveries share transactions, each still told if it was new."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.inbox import Inbox, NewDelivery
from app.store.inbox_writer import InboxWriter


def delivery(guid: str) -> NewDelivery:
    return NewDelivery(guid, "issues", "opened", 1, b'{"action": "opened"}')


async def test_concurrent_adds_with_duplicates(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    await inbox.add(delivery("old"))
    writer = InboxWriter(inbox)
    writer.start()
    try:
        guids = ["a", "b", "a", "old", "c", "b"]
        results = await asyncio.gather(*(writer.add(delivery(guid)) for guid in guids))
    finally:
        await writer.stop()
    assert results == [True, True, False, False, True, False]
    assert await inbox.counts() == {"pending": 4}


async def test_add_many_reports_duplicates_within_a_batch(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    assert await inbox.add_many([delivery("x"), delivery("x"), delivery("y")]) == [
        True,
        False,
        True,
    ]


async def test_a_failed_commit_fails_every_waiter(engine: AsyncEngine) -> None:
    inbox = Inbox(engine)
    writer = InboxWriter(inbox)
    writer.start()
    await engine.dispose()
    async with engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE webhook_inbox")
    try:
        results = await asyncio.gather(
            writer.add(delivery("p")), writer.add(delivery("q")), return_exceptions=True
        )
    finally:
        await writer.stop()
    assert all(isinstance(result, Exception) for result in results)


async def test_without_start_it_writes_directly(engine: AsyncEngine) -> None:
    writer = InboxWriter(Inbox(engine))
    assert await writer.add(delivery("solo")) is True
    assert await writer.add(delivery("solo")) is False
