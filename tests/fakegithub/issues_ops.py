"""Issue, comment and label changes with the webhooks GitHub sends for each.

Used by the REST routes (sender: the app's bot) and by the test-side helpers (sender: a person),
so both paths produce the same state and the same deliveries.
"""

from __future__ import annotations

from typing import Any

from tests.fakegithub import payloads, render
from tests.fakegithub.core import Core
from tests.fakegithub.state import Comment, Issue, Label, Repo, User, now_iso


def _announce(
    core: Core, repo: Repo, issue: Issue, action: str, sender: User, **extra: Any
) -> None:
    """issues.<action>, or pull_request.<action> when the issue is a pull request."""
    if issue.pull is not None:
        body = payloads.pull_request(core.world, repo, issue, **extra)
        core.emit("pull_request", action, repo, body, sender)
    else:
        core.emit("issues", action, repo, payloads.issues(core.world, repo, issue, **extra), sender)


def label_named(core: Core, repo: Repo, name: str) -> Label:
    """The repository label with this name, created on first use (as GitHub does)."""
    key = name.lower()
    if key not in repo.labels:
        repo.labels[key] = Label(core.world.next_id("label"), name)
    return repo.labels[key]


def create_issue(
    core: Core,
    repo: Repo,
    title: str,
    body: str | None,
    user: User,
    app_id: int | None,
    labels: list[str] | None = None,
) -> Issue:
    """Open an issue: issues.opened, then issues.labeled per label."""
    issue = Issue(core.world.next_id("issue"), repo.next_number(), title, body, user, app_id)
    repo.issues[issue.number] = issue
    _announce(core, repo, issue, "opened", user)
    add_labels(core, repo, issue, labels or [], user)
    return issue


def add_labels(core: Core, repo: Repo, issue: Issue, names: list[str], sender: User) -> None:
    """Add labels (existing ones are kept once); one labeled event per new label."""
    for name in names:
        lab = label_named(core, repo, name)
        if any(existing.id == lab.id for existing in issue.labels):
            continue
        issue.labels.append(lab)
        issue.updated_at = now_iso()
        _announce(core, repo, issue, "labeled", sender, label=render.label(core.world, repo, lab))


def remove_label(core: Core, repo: Repo, issue: Issue, name: str, sender: User) -> bool:
    """Remove a label; False when the issue does not carry it."""
    lab = next((x for x in issue.labels if x.name.lower() == name.lower()), None)
    if lab is None:
        return False
    issue.labels.remove(lab)
    issue.updated_at = now_iso()
    _announce(core, repo, issue, "unlabeled", sender, label=render.label(core.world, repo, lab))
    return True


def set_labels(core: Core, repo: Repo, issue: Issue, names: list[str], sender: User) -> None:
    """Replace the label set (unlabeled for dropped ones, labeled for new ones)."""
    wanted = {n.lower() for n in names}
    for lab in list(issue.labels):
        if lab.name.lower() not in wanted:
            remove_label(core, repo, issue, lab.name, sender)
    add_labels(core, repo, issue, names, sender)


def update_issue(
    core: Core, repo: Repo, issue: Issue, changes: dict[str, Any], sender: User
) -> None:
    """Apply title/body/state/state_reason/labels changes with their events."""
    edited: dict[str, Any] = {}
    for key in ("title", "body"):
        if key in changes and changes[key] != getattr(issue, key):
            edited[key] = {"from": getattr(issue, key)}
            setattr(issue, key, changes[key])
    if edited:
        issue.updated_at = now_iso()
        if "body" in edited:
            issue.editor, issue.last_edited_at = sender, issue.updated_at
        _announce(core, repo, issue, "edited", sender, changes=edited)
    state = changes.get("state")
    if state is not None and state != issue.state:
        issue.state = state
        issue.updated_at = now_iso()
        if state == "closed":
            issue.closed_at, issue.closed_by = now_iso(), sender
            issue.state_reason = changes.get("state_reason") or "completed"
            _announce(core, repo, issue, "closed", sender)
        else:
            issue.closed_at, issue.closed_by = None, None
            issue.state_reason = "reopened"
            _announce(core, repo, issue, "reopened", sender)
    if "labels" in changes and changes["labels"] is not None:
        set_labels(core, repo, issue, changes["labels"], sender)


def add_comment(
    core: Core, repo: Repo, issue: Issue, body: str, user: User, app_id: int | None
) -> Comment:
    """Comment on an issue or pull request: issue_comment.created."""
    comment = Comment(core.world.next_id("comment"), issue.number, body, user, app_id)
    repo.all_comments[comment.id] = comment
    issue.comments += 1
    payload = payloads.issue_comment(core.world, repo, issue, comment.id)
    core.emit("issue_comment", "created", repo, payload, user)
    return comment


def edit_comment(core: Core, repo: Repo, comment: Comment, body: str, sender: User) -> None:
    """Edit a comment in place: issue_comment.edited with the old body in `changes`."""
    old = comment.body
    comment.body = body
    comment.updated_at = now_iso()
    if old == body:
        return
    payload = payloads.issue_comment(
        core.world, repo, repo.issues[comment.issue_number], comment.id
    )
    payload["changes"] = {"body": {"from": old}}
    core.emit("issue_comment", "edited", repo, payload, sender)


def delete_comment(core: Core, repo: Repo, comment: Comment, sender: User) -> None:
    """Delete a comment: issue_comment.deleted."""
    issue = repo.issues[comment.issue_number]
    payload = payloads.issue_comment(core.world, repo, issue, comment.id)
    del repo.all_comments[comment.id]
    issue.comments -= 1
    core.emit("issue_comment", "deleted", repo, payload, sender)
