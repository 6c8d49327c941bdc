"""Installations and their repositories as the webhook handlers record them."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import session_factory
from app.store.installations import InstallationInfo, Installations, RepositoryInfo

INFO = InstallationInfo(
    id=42, account_login="octo-org", account_type="Organization", repository_selection="selected"
)
REPO_A = RepositoryInfo(id=1, full_name="octo-org/a", private=False)
REPO_B = RepositoryInfo(id=2, full_name="octo-org/b", private=True)


async def test_lifecycle(engine: AsyncEngine) -> None:
    store = Installations(session_factory(engine))
    assert await store.get(42) is None
    await store.upsert(INFO, [REPO_B, REPO_A])
    state = await store.get(42)
    assert state is not None
    assert state.repositories == ("octo-org/a", "octo-org/b")
    assert not state.suspended
    assert not state.deleted

    await store.remove_repositories(42, [2])
    await store.suspend(42, suspended=True)
    state = await store.get(42)
    assert state is not None
    assert state.repositories == ("octo-org/a",)
    assert state.suspended

    await store.add_repositories(42, [REPO_B])
    await store.suspend(42, suspended=False)
    state = await store.get(42)
    assert state is not None
    assert state.repositories == ("octo-org/a", "octo-org/b")
    assert not state.suspended

    await store.delete(42)
    state = await store.get(42)
    assert state is not None
    assert state.deleted
    assert state.repositories == ()

    # Reinstalling brings it back.
    await store.upsert(INFO, [REPO_A])
    state = await store.get(42)
    assert state is not None
    assert not state.deleted
    assert state.repositories == ("octo-org/a",)
