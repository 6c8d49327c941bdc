"""Refusal comments: one per issue per window, whoever asks and however many workers race."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.notices import REFUSAL_WINDOW, RefusalNotices

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def test_one_claim_per_issue_per_window(engine: AsyncEngine) -> None:
    notices = RefusalNotices(engine)
    assert await notices.claim("acme/widgets", 7, now=T0)
    assert not await notices.claim("acme/widgets", 7, now=T0 + timedelta(minutes=9))
    # Another issue, or another repository, is another notice.
    assert await notices.claim("acme/widgets", 8, now=T0)
    assert await notices.claim("acme/gadgets", 7, now=T0)
    # Once the window has passed, the next refusal may be posted, and starts a new window.
    later = T0 + REFUSAL_WINDOW
    assert await notices.claim("acme/widgets", 7, now=later)
    assert not await notices.claim("acme/widgets", 7, now=later + timedelta(minutes=1))


async def test_racing_claims_from_several_workers_win_once(engine: AsyncEngine) -> None:
    # Separate store objects over one database: what several worker processes share.
    claims = [RefusalNotices(engine).claim("acme/widgets", 7, now=T0) for _ in range(8)]
    assert sorted(await asyncio.gather(*claims)) == [False] * 7 + [True]
