"""Turns deliveries into run work: start, cancel, preview and retry runs; wake runs waiting on CI.

Only senders with write, maintain or admin permission are obeyed, and Autopack's own events never
trigger anything (see `app.domain.triggers`). Everything here queues jobs; the driver does the work.
"""

from __future__ import annotations

import logging
import re
from fnmatch import fnmatchcase
from typing import Any

from app.config import Settings
from app.domain.compiler import RunIdentity
from app.domain.effects import CompileStrategy
from app.domain.events import Cancelled
from app.domain.run_state import AwaitKind, RunState
from app.domain.triggers import Identity, Trigger, TriggerKind, classify, permission_allows
from app.engine.driver import KICK, POLL, job_payload
from app.engine.envelope import Envelope, Memo
from app.engine.planning import plan_run, render_plan_preview
from app.github.client import GitHubApp
from app.github.comments import post_comment
from app.github.repo import sender_permission
from app.logs import fields
from app.store.inbox import InboxDelivery
from app.store.queue import RunQueue
from app.store.runs import ActiveRunExists, NewRun, RunStore

log = logging.getLogger("autopack.intake")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def run_id_for(repository: str, issue_number: int, run_number: int) -> str:
    """A run id safe in refs, trailers and paths: `owner-repo-<issue>-<run>`."""
    base = _UNSAFE.sub("-", repository.replace("/", "-")).strip("-.")[:80] or "repo"
    return f"{base}-{issue_number}-{run_number}"


class RunIntake:
    """Handles the deliveries that drive runs."""

    def __init__(
        self,
        settings: Settings,
        app: GitHubApp,
        store: RunStore,
        queue: RunQueue,
        identity: Identity | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.store = store
        self.queue = queue
        self._identity = identity

    async def identity(self) -> Identity:
        """Who Autopack is (`GET /app` once, then cached), to recognise its own events."""
        if self._identity is None:
            client = await self.app.app_client()
            me = await client.getitem("/app")
            self._identity = Identity(app_id=int(me["id"]), bot_login=f"{me['slug']}[bot]")
        return self._identity

    async def handle(self, delivery: InboxDelivery) -> None:
        """Act on one delivery (installation events are handled elsewhere)."""
        payload = delivery.payload
        if delivery.event in ("check_run", "check_suite") and delivery.action != "requested_action":
            # Only a finished check can change a CI verdict; created/requested ones cannot.
            if delivery.action == "completed":
                await self._wake_ci(delivery, (payload.get(delivery.event) or {}).get("head_sha"))
            return
        if delivery.event == "status":
            if payload.get("state") != "pending":
                await self._wake_ci(delivery, payload.get("sha"))
            return
        trigger = classify(delivery.event, payload, await self.identity())
        if trigger.kind is TriggerKind.IGNORE or delivery.installation_id is None:
            return
        gh = self.app.installation(delivery.installation_id)
        permission = await sender_permission(gh, trigger.repository, trigger.sender)
        if not permission_allows(permission):
            log.info("sender may not drive Autopack", extra=fields(sender=trigger.sender))
            await post_comment(
                gh,
                trigger.repository,
                trigger.issue_number,
                f"@{trigger.sender} only people with write access to this repository can "
                f"drive Autopack (your permission: {permission}).",
            )
            return
        if trigger.kind is TriggerKind.CANCEL:
            await self._cancel(trigger, delivery)
        elif trigger.kind is TriggerKind.PLAN:
            await self._preview(gh, trigger)
        else:
            await self._start(gh, trigger, delivery)

    def _allowed(self, repository: str) -> bool:
        patterns = self.settings.operator.repositories.allowed
        return not patterns or any(fnmatchcase(repository, pattern) for pattern in patterns)

    async def _next_run(self, repo: str, number: int) -> tuple[int, RunIdentity]:
        """The number, id and integration branch the issue's next run gets."""
        run_number = await self.store.next_run_number(repo, number)
        prefix = self.settings.operator.integration_branch_prefix
        branch = f"{prefix}issue-{number}-run-{run_number}"
        return run_number, RunIdentity(run_id_for(repo, number, run_number), repo, number, branch)

    async def _start(self, gh: Any, trigger: Trigger, delivery: InboxDelivery) -> None:
        repo, number = trigger.repository, trigger.issue_number
        if not self._allowed(repo):
            await post_comment(
                gh,
                repo,
                number,
                "This Autopack deployment is not configured to work on this "
                "repository (AUTOPACK_CONFIG [repositories] allowed).",
            )
            return
        active = await self.store.active_run(repo, number)
        if active is not None:
            log.info("a run is already active", extra=fields(run=active.id))
            return
        run_number, identity = await self._next_run(repo, number)
        run_id = identity.run_id
        assert delivery.installation_id is not None
        envelope = Envelope(
            state=RunState(run_id),
            memo=Memo(
                installation_id=delivery.installation_id, repository=repo, issue_number=number
            ),
            pending=(CompileStrategy(),),
        )
        try:
            await self.store.create_run(
                NewRun(
                    id=run_id,
                    installation_id=delivery.installation_id,
                    repository=repo,
                    issue_number=number,
                    run_number=run_number,
                    branch=identity.branch,
                    status=envelope.state.status.value,
                    state=envelope.dumps(),
                )
            )
        except ActiveRunExists:
            return
        await self.queue.enqueue(run_id, KICK, dedupe_key=f"start:{delivery.delivery_id}")
        log.info("run created", extra=fields(run=run_id, sender=trigger.sender))

    async def _cancel(self, trigger: Trigger, delivery: InboxDelivery) -> None:
        active = await self.store.active_run(trigger.repository, trigger.issue_number)
        if active is None:
            return
        event = Cancelled(by=trigger.sender, reason=trigger.reason or "cancelled")
        await self.queue.enqueue(
            active.id, job_payload(event), dedupe_key=f"cancel:{delivery.delivery_id}"
        )

    async def _preview(self, gh: Any, trigger: Trigger) -> None:
        repo, number = trigger.repository, trigger.issue_number
        _, identity = await self._next_run(repo, number)
        planned = await plan_run(gh, self.settings, identity)
        await post_comment(gh, repo, number, render_plan_preview(planned))

    async def _wake_ci(self, delivery: InboxDelivery, sha: object) -> None:
        """Poll CI now for every run waiting on `sha` (named by a check run or a status)."""
        repo = (delivery.payload.get("repository") or {}).get("full_name")
        if not isinstance(sha, str) or not isinstance(repo, str):
            return
        for run in await self.store.list_runs(repository=repo, limit=200):
            if run.terminal:
                continue
            waiting = Envelope.loads(run.state).state.awaiting
            if waiting is not None and waiting.kind is AwaitKind.CI and waiting.sha == sha:
                await self.queue.enqueue(run.id, POLL, dedupe_key=f"ci:{delivery.delivery_id}")
