"""Commit statuses: GitHub's validation, the combined status, JSON shapes, the `status` webhook."""

from __future__ import annotations

from typing import Any

from tests.fakegithub import render
from tests.fakegithub.core import Core
from tests.fakegithub.routes_repos import render_commit
from tests.fakegithub.state import CommitStatus, Repo, User, World, node_id

STATES = ("error", "failure", "pending", "success")
MAX_PER_CONTEXT = 1000  # GitHub's cap on statuses per commit and context


class StatusInvalid(Exception):
    """A request GitHub answers 422: message and the `errors` list."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


def _schema(message: str) -> StatusInvalid:
    return StatusInvalid(f"Invalid request.\n\n{message}")


def validate(body: Any) -> dict[str, Any]:
    """Check a create body as GitHub does; return (state, context, description, target_url)."""
    if not isinstance(body, dict):
        raise _schema("Body should be a JSON object")
    state = body.get("state")
    if state is None:
        raise _schema('"state" wasn\'t supplied.')
    if state not in STATES:
        raise _schema(f"For 'properties/state', {state!r} is not one of {list(STATES)}.")
    for key in ("target_url", "description", "context"):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise _schema(f"For 'properties/{key}', {value!r} is not a string or null.")
    return {
        "state": state,
        "context": body.get("context") or "default",
        "description": body.get("description"),
        "target_url": body.get("target_url"),
    }


def create(core: Core, repo: Repo, sha: str, body: Any, creator: User) -> CommitStatus:
    """Validate and store a status on `sha`, then deliver the `status` webhook."""
    fields = validate(body)
    same = [s for s in repo.statuses if s.sha == sha and s.context == fields["context"]]
    if len(same) >= MAX_PER_CONTEXT:
        raise StatusInvalid(
            "Validation Failed",
            [
                {
                    "resource": "Status",
                    "code": "custom",
                    "message": "This SHA and context has reached the maximum number of statuses.",
                }
            ],
        )
    status = CommitStatus(core.world.next_id("status"), sha, creator=creator, **fields)
    repo.statuses.append(status)
    announce(core, repo, status)
    return status


def latest(repo: Repo, sha: str) -> list[CommitStatus]:
    """The newest status of each context on `sha`, newest first."""
    newest: dict[str, CommitStatus] = {}
    for status in repo.statuses:
        if status.sha == sha:
            newest[status.context] = status
    return sorted(newest.values(), key=lambda s: s.id, reverse=True)


def combined_state(statuses: list[CommitStatus]) -> str:
    """GitHub's rule: failure if any failed or errored, else pending if none or any pending."""
    states = {s.state for s in statuses}
    if states & {"error", "failure"}:
        return "failure"
    if not statuses or "pending" in states:
        return "pending"
    return "success"


def render_status(
    world: World, repo: Repo, status: CommitStatus, *, simple: bool
) -> dict[str, Any]:
    """status (REST list/create, with `creator`) or simple-commit-status (combined)."""
    body: dict[str, Any] = {
        "url": f"{world.api_url}/repos/{repo.full_name}/statuses/{status.sha}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{status.creator.id}?v=4",
        "id": status.id,
        "node_id": node_id("StatusContext", status.id),
        "state": status.state,
        "description": status.description,
        "target_url": status.target_url,
        "context": status.context,
        "created_at": status.created_at,
        "updated_at": status.created_at,
    }
    if simple:
        body["required"] = False
    else:
        body["creator"] = render.user(world, status.creator)
    return body


def render_combined(world: World, repo: Repo, sha: str) -> dict[str, Any]:
    """combined-commit-status without its `statuses` (the route pages those)."""
    api = f"{world.api_url}/repos/{repo.full_name}"
    return {
        "state": combined_state(latest(repo, sha)),
        "sha": sha,
        "repository": render.repo(world, repo, full=False),
        "commit_url": f"{api}/commits/{sha}",
        "url": f"{api}/commits/{sha}/status",
    }


def announce(core: Core, repo: Repo, status: CommitStatus) -> None:
    """Deliver `status` (no action), shaped like @octokit/webhooks-examples."""
    world = core.world
    branches = [
        {
            "name": ref.removeprefix("refs/heads/"),
            "commit": {"sha": sha, "url": f"{world.api_url}/repos/{repo.full_name}/commits/{sha}"},
            "protected": ref.removeprefix("refs/heads/") in repo.protected,
        }
        for ref, sha in sorted(repo.refs.items())
        if ref.startswith("refs/heads/") and sha == status.sha
    ]
    stamp = status.created_at.replace("Z", "+00:00")  # the webhook writes an offset, not Z
    body = {
        "id": status.id,
        "sha": status.sha,
        "name": repo.full_name,
        "target_url": status.target_url,
        "avatar_url": f"https://avatars.githubusercontent.com/u/{status.creator.id}?v=4",
        "context": status.context,
        "description": status.description,
        "state": status.state,
        "commit": render_commit(world, repo, status.sha),
        "branches": branches,
        "created_at": stamp,
        "updated_at": stamp,
    }
    core.emit("status", None, repo, body, status.creator)
