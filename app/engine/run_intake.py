"""Turns deliveries into run work: start, cancel, preview and retry runs; wake runs waiting on CI.

Only senders with write, maintain or admin permission are obeyed, and Autopack's own events never
trigger anything (see `app.domain.triggers`). A run follows the plan the maintainer labelled: the
issue as the `issues.labeled` delivery carried it, kept in the run's memo; it starts only if the
issue is still open and labelled when the delivery is picked up, and an edit of the issue's
description by someone without write access cancels it (made before the pickup, it keeps the run
from starting). Refusals are posted only to someone who asked Autopack for something, or where a
run is going on, and at most once per issue per window (`app.store.notices`). Everything here
queues jobs; the driver does the work.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from http import HTTPStatus
from typing import Any

import gidgethub

from app.config import Settings
from app.domain.compiler import RunIdentity
from app.domain.events import Cancelled
from app.domain.machine import start_run
from app.domain.payload import Payload
from app.domain.run_state import AwaitKind
from app.domain.triggers import (
    RUN_LABEL,
    Identity,
    Trigger,
    TriggerKind,
    classify,
    permission_allows,
)
from app.engine.driver import event_job, kick_job, poll_job
from app.engine.envelope import Envelope
from app.engine.memo import Memo, RunFacts
from app.engine.planning import plan_run, render_plan_preview
from app.github.auth import GitHubAuthError
from app.github.client import GitHubApp
from app.github.comments import post_comment
from app.github.issue_editor import last_body_editor
from app.github.repo import IssueView, get_issue, sender_permission
from app.logs import fields
from app.store.inbox import InboxDelivery
from app.store.notices import RefusalNotices
from app.store.queue import RunQueue
from app.store.runs import ActiveRunExists, NewRun, RunRecord, RunStore

log = logging.getLogger("autopack.intake")
GONE = (HTTPStatus.NOT_FOUND, HTTPStatus.GONE)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
NOT_CONFIGURED = (
    "This Autopack deployment is not configured to work on this repository "
    "(AUTOPACK_CONFIG [repositories] allowed)."
)


def run_id_for(repository: str, issue_number: int, run_number: int) -> str:
    """A run id safe in refs, trailers and paths: `owner-repo-<issue>-<run>`."""
    base = _UNSAFE.sub("-", repository.replace("/", "-")).strip("-.")[:80] or "repo"
    return f"{base}-{issue_number}-{run_number}"


@dataclass(frozen=True)
class LabelledPlan:
    """The issue text a run compiles, who vouched for it, and the delivery it came with."""

    title: str
    body: str
    labelled_by: str
    digest: str = ""


class RunIntake:
    """Handles the deliveries that drive runs."""

    def __init__(
        self,
        settings: Settings,
        app: GitHubApp,
        store: RunStore,
        queue: RunQueue,
        notices: RefusalNotices,
        identity: Identity | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.store = store
        self.queue = queue
        self.notices = notices
        self._identity = identity

    async def identity(self) -> Identity:
        """Who Autopack is (`GET /app` once, then cached), to recognise its own events."""
        if self._identity is None:
            client = await self.app.app_client()
            me = await client.getitem("/app")
            self._identity = Identity(app_id=int(me["id"]), bot_login=f"{me['slug']}[bot]")
        return self._identity

    async def trigger(self, delivery: InboxDelivery, payload: Payload) -> None:
        """Act on what a label, a command, an edit or a button asks for (see `classify`)."""
        try:
            await self._trigger(delivery, payload)
        except (gidgethub.BadRequest, GitHubAuthError) as exc:
            status = exc.status_code if isinstance(exc, gidgethub.BadRequest) else exc.status
            if status not in GONE:
                raise
            # The repository, issue, user or installation it names does not exist (any more):
            # asking again will not change that.
            log.info("GitHub does not know what the delivery names: %s", exc)

    async def _trigger(self, delivery: InboxDelivery, payload: Payload) -> None:
        trigger = classify(delivery.event, payload, await self.identity())
        if trigger.kind is TriggerKind.IGNORE or payload.installation_id is None:
            return
        gh = self.app.installation(payload.installation_id)
        active = None
        if trigger.kind in (TriggerKind.CANCEL, TriggerKind.BODY_EDITED):
            active = await self.store.active_run(trigger.repository, trigger.issue_number)
            if active is None:
                return  # nothing to cancel or protect: no API call, no comment
        elif not self._allowed(trigger.repository):
            await self._refuse(gh, trigger, NOT_CONFIGURED)
            return
        permission = await sender_permission(gh, trigger.repository, trigger.sender)
        allowed = permission_allows(permission)
        if trigger.kind is TriggerKind.BODY_EDITED:
            assert active is not None
            if not allowed:
                await self._edited_by_outsider(gh, trigger, active, delivery)
            return
        if not allowed:
            log.info("sender may not drive Autopack", extra=fields(sender=trigger.sender))
            await self._refuse(
                gh,
                trigger,
                f"@{trigger.sender} only people with write access to this repository can "
                f"drive Autopack (your permission: {permission}).",
            )
            return
        if trigger.kind is TriggerKind.CANCEL:
            assert active is not None
            await self._cancel(active, trigger, delivery)
        elif trigger.kind is TriggerKind.PLAN:
            await self._preview(gh, trigger)
        else:
            await self._start(gh, trigger, delivery, payload)

    def _allowed(self, repository: str) -> bool:
        patterns = self.settings.operator.repositories.allowed
        return not patterns or any(fnmatchcase(repository, pattern) for pattern in patterns)

    async def _refuse(self, gh: Any, trigger: Trigger, text: str) -> None:
        """Post a refusal on the issue, unless one was posted there within the window."""
        if await self.notices.claim(trigger.repository, trigger.issue_number):
            await post_comment(gh, trigger.repository, trigger.issue_number, text)
        else:
            log.info("refusal not posted again so soon", extra=fields(sender=trigger.sender))

    async def _next_run(self, repo: str, number: int) -> tuple[int, RunIdentity]:
        """The number, id and integration branch the issue's next run gets."""
        run_number = await self.store.next_run_number(repo, number)
        prefix = self.settings.operator.integration_branch_prefix
        branch = f"{prefix}issue-{number}-run-{run_number}"
        return run_number, RunIdentity(run_id_for(repo, number, run_number), repo, number, branch)

    async def _start(
        self, gh: Any, trigger: Trigger, delivery: InboxDelivery, payload: Payload
    ) -> None:
        repo, number = trigger.repository, trigger.issue_number
        active = await self.store.active_run(repo, number)
        if active is not None:
            log.info("a run is already active", extra=fields(run=active.id))
            return
        issue = await get_issue(gh, repo, number)
        if not _still_wanted(issue, trigger):
            # A stale or replayed delivery: the issue was closed or unlabelled since.
            log.info("the issue is closed or no longer labelled", extra=fields(issue=number))
            return
        earlier = await self.store.issue_runs(repo, number)
        plan = _labelled_plan(trigger, delivery, payload, issue, earlier)
        if plan is None:
            log.info("this labelling already started a run", extra=fields(issue=number))
            return
        if trigger.kind is TriggerKind.START and await self._edited_by_outsider_before(
            gh, trigger, issue, plan
        ):
            return
        run_number, identity = await self._next_run(repo, number)
        run_id = identity.run_id
        assert payload.installation_id is not None
        state, first = start_run(run_id)
        envelope = Envelope(
            state=state,
            memo=Memo(
                RunFacts(
                    installation_id=payload.installation_id,
                    repository=repo,
                    issue_number=number,
                    plan_title=plan.title,
                    plan_body=plan.body,
                    labelled_by=plan.labelled_by,
                    label_digest=plan.digest,
                )
            ),
            pending=first,
        )
        try:
            await self.store.create_run(
                NewRun(
                    id=run_id,
                    installation_id=payload.installation_id,
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
        await self.queue.enqueue(run_id, kick_job(f"start:{delivery.delivery_id}"))
        log.info("run created", extra=fields(run=run_id, sender=trigger.sender))

    async def _cancel(self, active: RunRecord, trigger: Trigger, delivery: InboxDelivery) -> None:
        event = Cancelled(by=trigger.sender, reason=trigger.reason or "cancelled")
        await self.queue.enqueue(active.id, event_job(event, f"cancel:{delivery.delivery_id}"))

    async def _edited_by_outsider(
        self, gh: Any, trigger: Trigger, active: RunRecord, delivery: InboxDelivery
    ) -> None:
        """The plan under a run was changed by someone who may not: the run stops."""
        editor = f"@{trigger.sender}"
        reason = (
            f"the issue description was edited by {editor}, who has no write access, after it "
            "was labelled; a maintainer must review it and label the issue `autopack:run` again"
        )
        event = Cancelled(by="Autopack", reason=reason)
        await self.queue.enqueue(active.id, event_job(event, f"cancel:{delivery.delivery_id}"))
        log.info("plan edited without write access", extra=fields(run=active.id))
        await self._refuse(
            gh, trigger, _outsider_edit(f"cancelled run `{active.id}`", trigger.sender)
        )

    async def _edited_by_outsider_before(
        self, gh: Any, trigger: Trigger, issue: IssueView, plan: LabelledPlan
    ) -> bool:
        """True (and the refusal posted) when the description changed between the label and the
        pickup and its last editor has no write access. The run would follow the labelled text,
        but nobody would be told of the edit: it is refused as one during the run would be."""
        if issue.body.replace("\0", "") == plan.body:
            return False
        repo, number = trigger.repository, trigger.issue_number
        # REST records no description edit; GraphQL names the last editor.
        editor = await last_body_editor(gh, repo, number)
        if editor is None or permission_allows(await sender_permission(gh, repo, editor)):
            return False
        log.info("plan edited without write access before pickup", extra=fields(issue=number))
        await self._refuse(gh, trigger, _outsider_edit("did not start a run", editor))
        return True

    async def _preview(self, gh: Any, trigger: Trigger) -> None:
        repo, number = trigger.repository, trigger.issue_number
        _, identity = await self._next_run(repo, number)
        planned = await plan_run(gh, self.settings, identity)
        await post_comment(gh, repo, number, render_plan_preview(planned))

    async def wake_ci(self, delivery: InboxDelivery, payload: Payload, sha: str) -> None:
        """Poll CI now for every run waiting on `sha` (named by a check run or a status)."""
        repo = payload.repository_name
        if not sha or not repo:
            return
        for run in await self.store.list_runs(repository=repo, limit=200):
            if run.terminal:
                continue
            waiting = Envelope.loads(run.state).state.awaiting
            if waiting is not None and waiting.kind is AwaitKind.CI and waiting.sha == sha:
                await self.queue.enqueue(run.id, poll_job(f"ci:{delivery.delivery_id}"))


def _outsider_edit(outcome: str, editor: str) -> str:
    """The comment on a plan edited after its label by someone without write access."""
    return (
        f"Autopack {outcome}: @{editor} edited this issue's description after it was labelled, "
        "and only people with write access may change the plan of a run. A maintainer must "
        f"review the description and label the issue `{RUN_LABEL}` again."
    )


def _still_wanted(issue: IssueView, trigger: Trigger) -> bool:
    """Open, and (for a label) still labelled: what the delivery asked for still holds."""
    if issue.state != "open" or issue.is_pull_request:
        return False
    return trigger.kind is not TriggerKind.START or RUN_LABEL in issue.labels


def _labelled_plan(
    trigger: Trigger,
    delivery: InboxDelivery,
    payload: Payload,
    issue: IssueView,
    earlier: list[RunRecord],
) -> LabelledPlan | None:
    """The plan the new run follows; None when this labelled delivery already started a run.

    A label starts the issue as the delivery carried it (what the maintainer saw when labelling).
    Retry runs the previous run's plan again, so an edit since then cannot slip in with it.
    """
    facts = [Envelope.loads(run.state).memo.facts for run in earlier]
    if trigger.kind is TriggerKind.START:
        digest = hashlib.sha256(delivery.body.encode()).hexdigest()
        if any(fact.label_digest == digest for fact in facts):
            return None
        labelled = payload.issue
        assert labelled is not None, "parse_payload requires it of issues deliveries"
        # NUL cannot be stored in PostgreSQL text; GitHub itself never sends one.
        title, body = (text.replace("\0", "") for text in (labelled.title, labelled.body or ""))
        return LabelledPlan(title, body, trigger.sender, digest)
    previous = next((fact for fact in facts if fact.plan_body is not None), None)
    if previous is not None and previous.plan_body is not None:
        return LabelledPlan(previous.plan_title, previous.plan_body, previous.labelled_by)
    return LabelledPlan(issue.title, issue.body, trigger.sender)
