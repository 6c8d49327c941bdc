"""The simulator's core: world state, webhook emission, ref moves, CI hooks and task tracking."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.fakegithub import payloads
from tests.fakegithub.auth import RateLimits
from tests.fakegithub.faults import Faults
from tests.fakegithub.hooks import DeliveryRecord, Dispatcher
from tests.fakegithub.state import AppRegistration, Installation, Repo, User, World, now_iso

if TYPE_CHECKING:
    from tests.fakegithub.ci import CIRunner

# What the app under test subscribes to by default (its app.yml decides on real GitHub).
DEFAULT_EVENTS = frozenset(
    {
        "installation",
        "installation_repositories",
        "issues",
        "issue_comment",
        "pull_request",
        "check_run",
        "check_suite",
        "push",
        "status",
    }
)


@dataclass(frozen=True)
class RequestRecord:
    """One API request as the simulator saw it."""

    method: str
    path: str
    query: str
    status: int
    ms: float
    installation_id: int | None
    app: str | None  # "autopack" (the app under test) | "ci" | "jwt" | None
    body: Any = None  # the request's JSON body, parsed (None: no body, or not JSON)


@dataclass(frozen=True)
class Actor:
    """Who made an API request: the app's bot user acting for an installation."""

    user: User
    app: AppRegistration
    installation: Installation


class Core:
    """Shared by the HTTP routes and the test-side helpers."""

    def __init__(
        self,
        world: World,
        app: AppRegistration,
        ci_app: AppRegistration,
        actions_app: AppRegistration,
    ) -> None:
        self.world = world
        self.app = app
        self.ci_app = ci_app
        self.actions_app = actions_app
        self.faults = Faults()
        self.rate_limits = RateLimits()
        self.dispatcher = Dispatcher(app, self.faults)
        self.request_log: list[RequestRecord] = []
        self.unknown_routes: list[str] = []
        self.subscribed_events: set[str] = set(DEFAULT_EVENTS)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ci: CIRunner | None = None  # set by the simulator once ci.py is wired

    # -- tasks ---------------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run background work that idle() waits for."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self, timeout: float = 10) -> None:  # noqa: ASYNC109 - pinned signature
        """Wait until no background task or webhook delivery is pending."""
        async with asyncio.timeout(timeout):
            while True:
                if self._tasks:
                    await asyncio.gather(*list(self._tasks), return_exceptions=True)
                    continue
                await self.dispatcher.join()
                if not self._tasks and self.dispatcher.pending == 0:
                    return

    async def stop(self) -> None:
        """Cancel background tasks."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- webhooks ------------------------------------------------------------------------------

    def emit(
        self,
        event: str,
        action: str | None,
        repo: Repo | None,
        body: dict[str, Any],
        sender: User,
        installation: Installation | None = None,
    ) -> asyncio.Future[DeliveryRecord] | None:
        """Deliver an event to the app under test if it is installed there and subscribed."""
        if event not in self.subscribed_events:
            return None
        inst = installation
        if inst is None and repo is not None:
            inst = self.world.installation_for(self.app.id, repo)
        if inst is None:
            return None
        payload: dict[str, Any] = {"action": action} if action is not None else {}
        payload.update(body)
        payload.update(payloads.envelope(self.world, repo, sender, inst))
        if event == "push" and repo is not None:
            payloads.push_repository(payload["repository"], repo)
        return self.dispatcher.enqueue(event, payload)

    # -- refs ----------------------------------------------------------------------------------

    def set_ref(self, repo: Repo, ref: str, sha: str | None, sender: User) -> None:
        """Create, move or delete a ref (full name), then announce it: push webhook and CI."""
        before = repo.refs.get(ref)
        if sha is None:
            repo.refs.pop(ref, None)
        else:
            repo.refs[ref] = sha
        if before == sha:
            return
        repo.pushed_at = now_iso()
        body = payloads.push(self.world, repo, ref, before, sha, sender)
        self.emit("push", None, repo, body, sender)
        if sha is None or not ref.startswith("refs/heads/"):
            return
        branch = ref.removeprefix("refs/heads/")
        if before is not None:
            for issue in repo.pulls:
                assert issue.pull is not None
                if issue.state == "open" and issue.pull.head_ref == branch:
                    extra = {"before": before, "after": sha}
                    body = payloads.pull_request(self.world, repo, issue, **extra)
                    self.emit("pull_request", "synchronize", repo, body, sender)
        if self.ci is not None:
            self.ci.on_head(repo, branch, sha, before)
