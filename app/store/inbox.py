"""The webhook inbox: deliveries stored on arrival, claimed by workers under a lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import conflict_insert, session_factory
from app.store.models import InboxRow

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class NewDelivery:
    """A verified delivery as the webhook endpoint hands it to the inbox."""

    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    body: bytes


@dataclass(frozen=True)
class InboxDelivery:
    """A stored delivery claimed by a worker."""

    id: int
    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    body: str  # the JSON text as received; the worker parses it (app.domain.payload)
    attempts: int

    @classmethod
    def from_row(cls, row: InboxRow) -> InboxDelivery:
        """The one place a row becomes a value."""
        return cls(
            id=row.id,
            delivery_id=row.delivery_id,
            event=row.event,
            action=row.action,
            installation_id=row.installation_id,
            body=row.payload,
            attempts=row.attempts,
        )


def utcnow() -> datetime:
    """Current time in UTC (stored naive-compatible: SQLite keeps no zone)."""
    return datetime.now(UTC)


class Inbox:
    """Repository interface over the `webhook_inbox` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    async def add(self, delivery: NewDelivery, now: datetime | None = None) -> bool:
        """Store a delivery once; False when its delivery id was already stored."""
        return (await self.add_many([delivery], now))[0]

    async def add_many(
        self, deliveries: Sequence[NewDelivery], now: datetime | None = None
    ) -> list[bool]:
        """Store deliveries in one transaction; for each, False if its id was already stored."""
        received_at = now or utcnow()
        fresh: dict[str, dict[str, Any]] = {}
        for delivery in deliveries:
            fresh.setdefault(
                delivery.delivery_id,
                {
                    "delivery_id": delivery.delivery_id,
                    "event": delivery.event,
                    "action": delivery.action,
                    "installation_id": delivery.installation_id,
                    "payload": delivery.body.decode("utf-8"),
                    "status": "pending",
                    "attempts": 0,
                    "received_at": received_at,
                },
            )
        table = InboxRow.__table__
        assert isinstance(table, Table)
        async with self._engine.begin() as conn:
            # A Core statement with executemany parameters is compiled once and cached; an ORM
            # multi-row VALUES clause is compiled anew for every batch size.
            statement = (
                conflict_insert(self._engine.dialect.name, table)
                .on_conflict_do_nothing(index_elements=["delivery_id"])
                .returning(table.c.delivery_id)
            )
            result = await conn.execute(statement, list(fresh.values()))
            inserted = set(result.scalars())
        # Only the first of several equal ids in one batch counts as new.
        results = []
        for delivery in deliveries:
            results.append(delivery.delivery_id in inserted)
            inserted.discard(delivery.delivery_id)
        return results

    async def claim(
        self, lease: timedelta = timedelta(seconds=60), now: datetime | None = None
    ) -> InboxDelivery | None:
        """Lease the oldest pending (or lease-expired) delivery, in one statement."""
        now = now or utcnow()
        async with self._sessions.begin() as session:
            oldest = (
                select(InboxRow.id)
                .where(
                    or_(
                        InboxRow.status == "pending",
                        (InboxRow.status == "processing") & (InboxRow.lease_until < now),
                    )
                )
                .order_by(InboxRow.id)
                .limit(1)
            )
            if session.get_bind().dialect.name == "postgresql":
                oldest = oldest.with_for_update(skip_locked=True)
            statement = (
                update(InboxRow)
                .where(InboxRow.id == oldest.scalar_subquery())
                .values(
                    status="processing", lease_until=now + lease, attempts=InboxRow.attempts + 1
                )
                .returning(InboxRow)
            )
            row = (await session.execute(statement)).scalar_one_or_none()
            return InboxDelivery.from_row(row) if row is not None else None

    async def finish(
        self, delivery: InboxDelivery, status: str = "done", now: datetime | None = None
    ) -> None:
        """Mark a claimed delivery processed (`done`) or deliberately `ignored`."""
        await self._set(delivery.id, status=status, error=None, processed_at=now or utcnow())

    async def fail(self, delivery: InboxDelivery, error: str, now: datetime | None = None) -> bool:
        """Record a processing error; the delivery is retried until MAX_ATTEMPTS. True if final."""
        final = delivery.attempts >= MAX_ATTEMPTS
        await self._set(
            delivery.id,
            status="failed" if final else "pending",
            error=error[:2000],
            processed_at=(now or utcnow()) if final else None,
        )
        return final

    async def status_of(self, delivery_id: str) -> str | None:
        """The processing status of one delivery, or None if it was never stored."""
        async with self._sessions() as session:
            statement = select(InboxRow.status).where(InboxRow.delivery_id == delivery_id)
            return (await session.execute(statement)).scalar_one_or_none()

    async def counts(self) -> dict[str, int]:
        """Number of deliveries by status."""
        async with self._sessions() as session:
            statement = select(InboxRow.status, func.count()).group_by(InboxRow.status)
            return {status: count for status, count in (await session.execute(statement)).all()}

    async def _set(self, row_id: int, **values: Any) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(InboxRow).where(InboxRow.id == row_id).values(lease_until=None, **values)
            )
