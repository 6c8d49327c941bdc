"""Installation events keep the installations and their repositories current."""

from __future__ import annotations

from gidgethub import sansio

from app.domain.payload import InstalledRepository, Payload
from app.engine.routes.table import Deps, Routes
from app.store.inbox import InboxDelivery
from app.store.installations import InstallationInfo, RepositoryInfo

routes = Routes()


def _installation(payload: Payload) -> InstallationInfo:
    installation = payload.installation
    assert installation is not None, "parse_payload requires it of installation events"
    account = installation.account
    return InstallationInfo(
        id=installation.id,
        account_login=account.login if account is not None else "",
        account_type=account.type if account is not None else "",
        repository_selection=installation.repository_selection,
    )


def _repositories(items: tuple[InstalledRepository, ...]) -> list[RepositoryInfo]:
    return [RepositoryInfo(id=r.id, full_name=r.full_name, private=r.private) for r in items]


@routes.register("installation", action="created")
@routes.register("installation", action="new_permissions_accepted")
@routes.register("installation", action="unsuspend")
async def installation_present(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """The App was installed (or regained permissions): record it with its repositories."""
    info = _installation(payload)
    await deps.installations.upsert(info, _repositories(payload.repositories))
    if payload.action == "unsuspend":
        await deps.installations.suspend(info.id, suspended=False)


@routes.register("installation", action="deleted")
async def installation_deleted(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """The App was uninstalled."""
    await deps.installations.delete(_installation(payload).id)


@routes.register("installation", action="suspend")
async def installation_suspended(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """An owner suspended the installation: no API calls will work until unsuspended."""
    info = _installation(payload)
    await deps.installations.upsert(info)
    await deps.installations.suspend(info.id, suspended=True)


@routes.register("installation_repositories", action="added")
@routes.register("installation_repositories", action="removed")
async def repositories_changed(
    event: sansio.Event, payload: Payload, delivery: InboxDelivery, deps: Deps
) -> None:
    """Repositories were added to or removed from the installation."""
    info = _installation(payload)
    await deps.installations.upsert(info, _repositories(payload.repositories_added))
    removed = _repositories(payload.repositories_removed)
    await deps.installations.remove_repositories(info.id, [repo.id for repo in removed])
