"""What a webhook asks Autopack to do: start, cancel, preview or retry a run, or nothing.

Pure: a parsed delivery and who Autopack is in, a `Trigger` out. Permission checks need the API
and happen at the edge (`needs_permission` says when); `permission_allows` decides on the answer.
Events caused by Autopack itself never trigger anything: a bot that re-triggers itself on its own
labels, comments or check runs is a known failure of peer tools.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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


def may_matter(event: str, payload: Mapping[str, Any], app_id: int | None) -> bool:
    """False for deliveries that can never drive a run, judged from the payload alone.

    The web endpoint uses it to leave out, before storing, the echoes of Autopack's own work
    (its labels, comments, pull request and check runs) and other apps' check runs being
    created: most of a run's webhooks. It is a superset of what `classify`, the CI wake and the
    config check act on (installation events always matter), so it changes no decision, only
    where it is made.
    """
    action = payload.get("action")
    if event in ("push", "pull_request"):
        return config_change(event, payload) is not None
    if event == "check_run":
        if action == "requested_action":
            return True
        app = (payload.get(event) or {}).get("app") or {}
        return action == "completed" and (app_id is None or app.get("id") != app_id)
    if event == "check_suite":
        return False  # every check run in it sends its own `completed`: that is the wake-up
    if event == "status":
        return payload.get("state") != "pending"  # only a result can change a CI verdict
    if event == "issues":
        label = str((payload.get("label") or {}).get("name", ""))
        if action in ("labeled", "unlabeled"):
            return label in (RUN_LABEL, CANCEL_LABEL)
        return action == "closed"
    if event == "issue_comment":
        comment = payload.get("comment") or {}
        if action != "created" or (comment.get("user") or {}).get("type") == "Bot":
            return False
        return _COMMAND.search(str(comment.get("body", ""))) is not None
    return event in ("installation", "installation_repositories")


@dataclass(frozen=True)
class ConfigChange:
    """A commit whose `.github/autopack.yml` may have changed; `base_sha` set when unsure."""

    repository: str
    sha: str
    base_sha: str | None = None


def config_change(event: str, payload: Mapping[str, Any]) -> ConfigChange | None:
    """The commit to check the repository's ruleset on, if a push or pull request touched it.

    A push lists the files of its commits, so it is decided here. A pull request from a fork
    lists none (and sends no push to this repository), so its head is compared with its base at
    the edge; a pull request inside the repository is left to the push of its branch.
    """
    repository = str((payload.get("repository") or {}).get("full_name", ""))
    if event == "push":
        after = payload.get("after")
        ref = str(payload.get("ref", ""))
        if payload.get("deleted") or not ref.startswith("refs/heads/"):
            return None
        commits = payload.get("commits")
        touched = any(
            RULESET_PATH in (commit.get(kind) or ())
            for commit in (commits if isinstance(commits, list) else ())
            if isinstance(commit, dict)
            for kind in ("added", "modified", "removed")
        )
        return ConfigChange(repository, after) if touched and isinstance(after, str) else None
    if event == "pull_request" and payload.get("action") in ("opened", "reopened", "synchronize"):
        pull = payload.get("pull_request") or {}
        head, base = pull.get("head") or {}, pull.get("base") or {}
        head_repo = str((head.get("repo") or {}).get("full_name", ""))
        if not head_repo or head_repo == repository:
            return None
        sha, base_sha = head.get("sha"), base.get("sha")
        if isinstance(sha, str) and isinstance(base_sha, str):
            return ConfigChange(repository, sha, base_sha)
    return None


def classify(event: str, payload: Mapping[str, Any], me: Identity) -> Trigger:
    """Decide what a delivery asks for, without any I/O."""
    sender = payload.get("sender") or {}
    login = str(sender.get("login", ""))
    if login.lower() == me.bot_login.lower():
        return ignore("caused by Autopack itself")
    repository = str((payload.get("repository") or {}).get("full_name", ""))
    action = payload.get("action")
    if event == "issues":
        return _issues(action, payload, repository, login)
    if event == "issue_comment" and action == "created":
        return _comment(payload, repository, login)
    if event == "check_run" and action == "requested_action":
        return _retry(payload, repository, login, me)
    return ignore(f"{event}.{action} does not drive runs")


def _issue_number(payload: Mapping[str, Any]) -> int:
    number = (payload.get("issue") or {}).get("number")
    return number if isinstance(number, int) else 0


def _issues(action: Any, payload: Mapping[str, Any], repository: str, login: str) -> Trigger:
    issue = payload.get("issue") or {}
    if issue.get("pull_request") is not None:
        return ignore("labels on pull requests do not drive runs")
    label = str((payload.get("label") or {}).get("name", ""))
    number = _issue_number(payload)
    if action == "labeled" and label == RUN_LABEL:
        if issue.get("state") == "closed":
            return ignore("the issue is closed")
        return Trigger(TriggerKind.START, repository, number, login)
    if (action == "labeled" and label == CANCEL_LABEL) or (
        action == "unlabeled" and label == RUN_LABEL
    ):
        return Trigger(TriggerKind.CANCEL, repository, number, login)
    if action == "closed":
        return Trigger(TriggerKind.CANCEL, repository, number, login, reason="issue closed")
    return ignore(f"issues.{action} with label {label!r} does not drive runs")


def _comment(payload: Mapping[str, Any], repository: str, login: str) -> Trigger:
    if (payload.get("comment") or {}).get("user", {}).get("type") == "Bot":
        return ignore("comments by bots never drive runs")
    body = str((payload.get("comment") or {}).get("body", ""))
    match = _COMMAND.search(body)
    if match is None:
        return ignore("no /autopack command in the comment")
    command = match.group("command").lower()
    kinds = {"cancel": TriggerKind.CANCEL, "plan": TriggerKind.PLAN}
    if command not in kinds:
        return ignore(f"unknown command /autopack {command}")
    return Trigger(kinds[command], repository, _issue_number(payload), login)


def _retry(payload: Mapping[str, Any], repository: str, login: str, me: Identity) -> Trigger:
    check_run = payload.get("check_run") or {}
    if (check_run.get("app") or {}).get("id") != me.app_id:
        return ignore("an action on another app's check run")
    if (payload.get("requested_action") or {}).get("identifier") != RETRY_ACTION:
        return ignore("an unknown check run action")
    external = str(check_run.get("external_id") or "")
    # Our check runs carry "<repository>#<issue>/<run id>" as external_id.
    issue_part = external.partition("#")[2].partition("/")[0]
    if not issue_part.isdigit():
        return ignore("the check run does not name an Autopack run")
    run_id = check_run.get("id")
    return Trigger(
        TriggerKind.RETRY,
        repository,
        int(issue_part),
        login,
        check_run_id=run_id if isinstance(run_id, int) else None,
    )
