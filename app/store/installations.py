"""Installations and the repositories they grant, kept current from installation webhooks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.store.inbox import utcnow
from app.store.models import InstallationRow, RepositoryRow


@dataclass(frozen=True)
class InstallationInfo:
    """What we keep of an installation."""

    id: int
    account_login: str
    account_type: str
    repository_selection: str


@dataclass(frozen=True)
class RepositoryInfo:
    """A repository granted to an installation."""

    id: int
    full_name: str
    private: bool


@dataclass(frozen=True)
class InstallationState:
    """An installation as stored, with its active repositories."""

    id: int
    account_login: str
    suspended: bool
    deleted: bool
    repositories: tuple[str, ...]


class Installations:
    """Repository interface over `installations` and `repositories`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def upsert(
        self, info: InstallationInfo, repositories: Iterable[RepositoryInfo] = ()
    ) -> None:
        """Create or refresh an installation (un-deleting it) and add repositories."""
        now = utcnow()
        async with self._sessions.begin() as session:
            row = await session.get(InstallationRow, info.id)
            if row is None:
                row = InstallationRow(id=info.id, created_at=now)
                session.add(row)
            row.account_login = info.account_login
            row.account_type = info.account_type
            row.repository_selection = info.repository_selection
            row.deleted_at = None
            row.updated_at = now
            await session.flush()
            await _add_repositories(session, info.id, repositories, now)

    async def delete(self, installation_id: int) -> None:
        """The App was uninstalled: keep the row for history, mark it and its repos gone."""
        now = utcnow()
        await self._mark(installation_id, deleted_at=now)
        async with self._sessions.begin() as session:
            await session.execute(
                update(RepositoryRow)
                .where(
                    RepositoryRow.installation_id == installation_id,
                    RepositoryRow.removed_at.is_(None),
                )
                .values(removed_at=now, updated_at=now)
            )

    async def suspend(self, installation_id: int, suspended: bool) -> None:
        """Record a suspension or its end."""
        await self._mark(installation_id, suspended_at=utcnow() if suspended else None)

    async def add_repositories(
        self, installation_id: int, repositories: Iterable[RepositoryInfo]
    ) -> None:
        """Repositories were added to an existing installation."""
        async with self._sessions.begin() as session:
            await _add_repositories(session, installation_id, repositories, utcnow())

    async def remove_repositories(
        self, installation_id: int, repository_ids: Iterable[int]
    ) -> None:
        """Repositories were removed from an installation."""
        now = utcnow()
        async with self._sessions.begin() as session:
            await session.execute(
                update(RepositoryRow)
                .where(
                    RepositoryRow.installation_id == installation_id,
                    RepositoryRow.id.in_(list(repository_ids)),
                )
                .values(removed_at=now, updated_at=now)
            )

    async def get(self, installation_id: int) -> InstallationState | None:
        """An installation with its active repositories' full names, sorted."""
        async with self._sessions() as session:
            row = await session.get(InstallationRow, installation_id)
            if row is None:
                return None
            names = await session.execute(
                select(RepositoryRow.full_name)
                .where(
                    RepositoryRow.installation_id == installation_id,
                    RepositoryRow.removed_at.is_(None),
                )
                .order_by(RepositoryRow.full_name)
            )
            return InstallationState(
                id=row.id,
                account_login=row.account_login,
                suspended=row.suspended_at is not None,
                deleted=row.deleted_at is not None,
                repositories=tuple(names.scalars()),
            )

    async def _mark(self, installation_id: int, **values: datetime | None) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(InstallationRow)
                .where(InstallationRow.id == installation_id)
                .values(updated_at=utcnow(), **values)
            )


async def _add_repositories(
    session: AsyncSession,
    installation_id: int,
    repositories: Iterable[RepositoryInfo],
    now: datetime,
) -> None:
    for repo in repositories:
        row = await session.get(RepositoryRow, repo.id)
        if row is None:
            row = RepositoryRow(id=repo.id)
            session.add(row)
        row.installation_id = installation_id
        row.full_name = repo.full_name
        row.private = repo.private
        row.removed_at = None
        row.updated_at = now
