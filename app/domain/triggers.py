"""What a webhook asks Autopack to do: start, cancel, preview or retry a run, guard its plan, or
nothing.

Pure: a parsed delivery and who Autopack is in, a `Trigger` out. Permission checks need the API
and happen at the edge (`needs_permission` says when); `permission_allows` decides on the answer.
Events caused by Autopack itself never trigger anything: a bot that re-triggers itself on its own
labels, comments or check runs is a known failure of peer tools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from app.domain.payload import Payload, User
from app.domain.ruleset import RULESET_PATH

RUN_LABEL = "autopack:run"
CANCEL_LABEL = "autopack:cancel"
RETRY_ACTION = "autopack-retry"
_COMMAND = re.compile(r"^\s*/autopack\s+(?P<command>[a-z-]+)\s*$", re.IGNORECASE | re.MULTILINE)


class TriggerKind(StrEnum):
    """The actions a delivery can ask for."""

    START = "start"
    CANCEL = "cancel"
    PLAN = "plan"
    RETRY = "retry"
    BODY_EDITED = "body_edited"  # the plan under a run changed: who changed it decides
    IGNORE = "ignore"


@dataclass(frozen=True)
class Identity:
    """Who Autopack is on GitHub, to recognise its own events."""

    app_id: int
    bot_login: str  # "<slug>[bot]"


@dataclass(frozen=True)
class Trigger:
    """One thing a delivery asks for; `reason` explains an IGNORE for the log."""

    kind: TriggerKind
    repository: str = ""
    issue_number: int = 0
    sender: str = ""
    reason: str = ""
    check_run_id: int | None = None

    @property
    def needs_permission(self) -> bool:
        """True when the sender's write permission must be checked before acting."""
        return self.kind is not TriggerKind.IGNORE


def ignore(reason: str) -> Trigger:
    """A trigger that does nothing."""
    return Trigger(TriggerKind.IGNORE, reason=reason)


def permission_allows(permission: str | None) -> bool:
    """Write, maintain (reported as write) or admin may drive Autopack; triage and read may not."""
    return permission in ("admin", "maintain", "write")


def may_matter(event: str, payload: Payload, app_id: int | None) -> bool:
    """False for deliveries that can never drive a run, judged from the payload alone.

    The web endpoint uses it to leave out, before storing, the echoes of Autopack's own work
    (its labels, comments, pull request and check runs), other apps' check runs being created,
    pending commit statuses and edits of issues no run is working on: most of a run's webhooks.
    It is a superset of what `classify`, the CI wake and the config check act on (installation
    events always matter), so it changes no decision, only where it is made.
    """
    action = payload.action
    if event in ("push", "pull_request"):
        return config_change(event, payload) is not None
    if event == "check_run":
        if action == "requested_action":
            return True
        app = payload.check_run.app if payload.check_run is not None else None
        return action == "completed" and (app_id is None or app is None or app.id != app_id)
    if event == "check_suite":
        return False  # every check run in it sends its own `completed`: that is the wake-up
    if event == "status":
        return payload.state != "pending"  # only a result can change a CI verdict
    if event == "issues":
        label = payload.label.name if payload.label is not None else ""
        if action in ("labeled", "unlabeled"):
            return label in (RUN_LABEL, CANCEL_LABEL)
        if action == "edited":
            return _run_labelled(payload) and _body_changed(payload)
        return action == "closed"
    if event == "issue_comment":
        comment = payload.comment
        if action != "created" or comment is None or _by_bot(comment.user):
            return False
        return _COMMAND.search(comment.body or "") is not None
    return event in ("installation", "installation_repositories")


@dataclass(frozen=True)
class ConfigChange:
    """A commit whose `.github/autopack.yml` may have changed; `base_sha` set when unsure."""

    repository: str
    sha: str
    base_sha: str | None = None


def config_change(event: str, payload: Payload) -> ConfigChange | None:
    """The commit to check the repository's ruleset on, if a push or pull request touched it.

    A push lists the files of its commits, so it is decided here. A pull request from a fork
    lists none (and sends no push to this repository), so its head is compared with its base at
    the edge; a pull request inside the repository is left to the push of its branch.
    """
    repository = payload.repository_name
    if event == "push":
        ref, after = payload.ref or "", payload.after
        if payload.deleted or not ref.startswith("refs/heads/") or not after:
            return None
        touched = any(
            RULESET_PATH in (*commit.added, *commit.modified, *commit.removed)
            for commit in payload.commits
        )
        return ConfigChange(repository, after) if touched else None
    pull = payload.pull_request
    if event == "pull_request" and pull is not None:
        if payload.action not in ("opened", "reopened", "synchronize"):
            return None
        head_repo = pull.head.repo.full_name if pull.head.repo is not None else ""
        if not head_repo or head_repo == repository or not pull.head.sha or not pull.base.sha:
            return None
        return ConfigChange(repository, pull.head.sha, pull.base.sha)
    return None


def classify(event: str, payload: Payload, me: Identity) -> Trigger:
    """Decide what a delivery asks for, without any I/O."""
    login = payload.sender.login if payload.sender is not None else ""
    if login.lower() == me.bot_login.lower():
        return ignore("caused by Autopack itself")
    repository = payload.repository_name
    action = payload.action
    if event == "issues":
        return _issues(action, payload, repository, login)
    if event == "issue_comment" and action == "created":
        return _comment(payload, repository, login)
    if event == "check_run" and action == "requested_action":
        return _retry(payload, repository, login, me)
    return ignore(f"{event}.{action} does not drive runs")


def _by_bot(user: User | None) -> bool:
    return user is not None and user.type == "Bot"


def _run_labelled(payload: Payload) -> bool:
    issue = payload.issue
    return issue is not None and any(label.name == RUN_LABEL for label in issue.labels)


def _body_changed(payload: Payload) -> bool:
    return payload.changes is not None and payload.changes.body is not None


def _issue_number(payload: Payload) -> int:
    return payload.issue.number if payload.issue is not None else 0


def _issues(action: str | None, payload: Payload, repository: str, login: str) -> Trigger:
    issue = payload.issue
    if issue is not None and issue.pull_request is not None:
        return ignore("labels on pull requests do not drive runs")
    label = payload.label.name if payload.label is not None else ""
    number = _issue_number(payload)
    if action == "labeled" and label == RUN_LABEL:
        if issue is not None and issue.state == "closed":
            return ignore("the issue is closed")
        return Trigger(TriggerKind.START, repository, number, login)
    if (action == "labeled" and label == CANCEL_LABEL) or (
        action == "unlabeled" and label == RUN_LABEL
    ):
        return Trigger(TriggerKind.CANCEL, repository, number, login)
    if action == "closed":
        return Trigger(TriggerKind.CANCEL, repository, number, login, reason="issue closed")
    if action == "edited" and _body_changed(payload) and _run_labelled(payload):
        # Only a run's issue carries the run label; a run without it was cancelled.
        return Trigger(TriggerKind.BODY_EDITED, repository, number, login)
    return ignore(f"issues.{action} with label {label!r} does not drive runs")


def _comment(payload: Payload, repository: str, login: str) -> Trigger:
    comment = payload.comment
    if comment is None or _by_bot(comment.user):
        return ignore("comments by bots never drive runs")
    match = _COMMAND.search(comment.body or "")
    if match is None:
        return ignore("no /autopack command in the comment")
    command = match.group("command").lower()
    kinds = {"cancel": TriggerKind.CANCEL, "plan": TriggerKind.PLAN}
    if command not in kinds:
        return ignore(f"unknown command /autopack {command}")
    return Trigger(kinds[command], repository, _issue_number(payload), login)


def _retry(payload: Payload, repository: str, login: str, me: Identity) -> Trigger:
    check_run = payload.check_run
    if check_run is None or check_run.app is None or check_run.app.id != me.app_id:
        return ignore("an action on another app's check run")
    if payload.requested_action is None or payload.requested_action.identifier != RETRY_ACTION:
        return ignore("an unknown check run action")
    # Our check runs carry "<repository>#<issue>/<run id>" as external_id.
    issue_part = (check_run.external_id or "").partition("#")[2].partition("/")[0]
    if not (issue_part.isascii() and issue_part.isdigit()) or not 0 < int(issue_part) < 2**31:
        return ignore("the check run does not name an Autopack run")
    return Trigger(TriggerKind.RETRY, repository, int(issue_part), login, check_run_id=check_run.id)
