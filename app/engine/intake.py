"""Turns stored deliveries into state changes; installation events keep their tables current."""

from __future__ import annotations

from collections.abc import Sequence

from gidgethub import routing, sansio

from app.domain.payload import InstalledRepository, Payload
from app.store.installations import InstallationInfo, Installations, RepositoryInfo

router = routing.Router()


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


def _repositories(items: Sequence[InstalledRepository]) -> list[RepositoryInfo]:
    return [
        RepositoryInfo(id=item.id, full_name=item.full_name, private=item.private) for item in items
    ]


@router.register("installation", action="created")
@router.register("installation", action="new_permissions_accepted")
@router.register("installation", action="unsuspend")
async def installation_present(
    event: sansio.Event, payload: Payload, installations: Installations
) -> None:
    """The App was installed (or regained permissions): record it with its repositories."""
    info = _installation(payload)
    await installations.upsert(info, _repositories(payload.repositories))
    if payload.action == "unsuspend":
        await installations.suspend(info.id, suspended=False)


@router.register("installation", action="deleted")
async def installation_deleted(
    event: sansio.Event, payload: Payload, installations: Installations
) -> None:
    """The App was uninstalled."""
    await installations.delete(_installation(payload).id)


@router.register("installation", action="suspend")
async def installation_suspended(
    event: sansio.Event, payload: Payload, installations: Installations
) -> None:
    """An owner suspended the installation: no API calls will work until unsuspended."""
    info = _installation(payload)
    await installations.upsert(info)
    await installations.suspend(info.id, suspended=True)


@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def repositories_changed(
    event: sansio.Event, payload: Payload, installations: Installations
) -> None:
    """Repositories were added to or removed from the installation."""
    info = _installation(payload)
    await installations.upsert(info, _repositories(payload.repositories_added))
    removed = _repositories(payload.repositories_removed)
    await installations.remove_repositories(info.id, [repo.id for repo in removed])
