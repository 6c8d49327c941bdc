"""installations: installation events keep the installations and their repositories current.

No handler here calls GitHub: the payload says everything, and the simulator sees no request.
"""

from __future__ import annotations

from typing import Any

from app.store.installations import InstallationState
from tests.conftest import load_payload
from tests.engine.routes.conftest import RouteWorld

CODERTOCAT = 957387  # the installation most of GitHub's examples name
SUSPENDED = 16598467  # the one the suspend/unsuspend examples name


async def delivered(world: RouteWorld, event: str, data: dict[str, Any]) -> None:
    """Dispatch an installation event; no API request may come of it."""
    await world.dispatch(event, data)
    assert world.sim.request_log == []


async def state(world: RouteWorld, installation_id: int) -> InstallationState:
    found = await world.installations.get(installation_id)
    assert found is not None
    return found


async def test_created_records_the_installation_with_its_repositories(world: RouteWorld) -> None:
    await delivered(world, "installation", load_payload("installation.created"))
    installed = await state(world, CODERTOCAT)
    assert (installed.account_login, installed.suspended, installed.deleted) == (
        "Codertocat",
        False,
        False,
    )
    assert installed.repositories == ("Codertocat/Hello-World",)


async def test_new_permissions_accepted_records_it_again_unchanged(world: RouteWorld) -> None:
    await delivered(world, "installation", load_payload("installation.created"))
    before = await state(world, CODERTOCAT)
    await delivered(world, "installation", load_payload("installation.new_permissions_accepted"))
    assert await state(world, CODERTOCAT) == before


async def test_repositories_added_and_removed(world: RouteWorld) -> None:
    await delivered(world, "installation", load_payload("installation.created"))
    added = load_payload("installation_repositories.added")
    await delivered(world, "installation_repositories", added)
    assert (await state(world, CODERTOCAT)).repositories == (
        "Codertocat/Hello-World",
        "Codertocat/Space",
    )
    # GitHub's removal example is of another installation: the same, removing what was added.
    removed = load_payload("installation_repositories.removed")
    removed["installation"] = added["installation"]
    removed["repositories_removed"] = added["repositories_added"]
    await delivered(world, "installation_repositories", removed)
    assert (await state(world, CODERTOCAT)).repositories == ("Codertocat/Hello-World",)


async def test_suspend_and_unsuspend(world: RouteWorld) -> None:
    await delivered(world, "installation", load_payload("installation.suspend"))
    suspended = await state(world, SUSPENDED)
    assert (suspended.account_login, suspended.suspended) == ("Codertocat", True)
    await delivered(world, "installation", load_payload("installation.unsuspend"))
    assert not (await state(world, SUSPENDED)).suspended


async def test_deleted_marks_the_installation_and_its_repositories_gone(world: RouteWorld) -> None:
    created = load_payload("installation.created")
    await delivered(world, "installation", created)
    # GitHub's example uninstalls another installation (unknown here: nothing is recorded).
    deleted = load_payload("installation.deleted")
    await delivered(world, "installation", deleted)
    assert await world.installations.get(deleted["installation"]["id"]) is None
    deleted["installation"] = created["installation"]
    await delivered(world, "installation", deleted)
    gone = await state(world, CODERTOCAT)
    assert (gone.deleted, gone.repositories) == (True, ())
