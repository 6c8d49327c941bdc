"""Turns stored deliveries into state changes; installation events keep their tables current."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from app.store.installations import InstallationInfo, Installations, RepositoryInfo

router = routing.Router()


def _installation(payload: dict[str, Any]) -> InstallationInfo:
    installation = payload["installation"]
    account = installation.get("account") or {}
    return InstallationInfo(
        id=int(installation["id"]),
        account_login=str(account.get("login", "")),
        account_type=str(account.get("type", "")),
        repository_selection=str(installation.get("repository_selection", "selected")),
    )


def _repositories(items: list[dict[str, Any]] | None) -> list[RepositoryInfo]:
    return [
        RepositoryInfo(
            id=int(item["id"]), full_name=str(item["full_name"]), private=bool(item["private"])
        )
        for item in items or []
    ]


@router.register("installation", action="created")
@router.register("installation", action="new_permissions_accepted")
@router.register("installation", action="unsuspend")
async def installation_present(event: sansio.Event, installations: Installations) -> None:
    """The App was installed (or regained permissions): record it with its repositories."""
    await installations.upsert(
        _installation(event.data), _repositories(event.data.get("repositories"))
    )
    if event.data["action"] == "unsuspend":
        await installations.suspend(int(event.data["installation"]["id"]), suspended=False)


@router.register("installation", action="deleted")
async def installation_deleted(event: sansio.Event, installations: Installations) -> None:
    """The App was uninstalled."""
    await installations.delete(int(event.data["installation"]["id"]))


@router.register("installation", action="suspend")
async def installation_suspended(event: sansio.Event, installations: Installations) -> None:
    """An owner suspended the installation: no API calls will work until unsuspended."""
    await installations.upsert(_installation(event.data))
    await installations.suspend(int(event.data["installation"]["id"]), suspended=True)


@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def repositories_changed(event: sansio.Event, installations: Installations) -> None:
    """Repositories were added to or removed from the installation."""
    info = _installation(event.data)
    await installations.upsert(info, _repositories(event.data.get("repositories_added")))
    removed = _repositories(event.data.get("repositories_removed"))
    await installations.remove_repositories(info.id, [repo.id for repo in removed])
