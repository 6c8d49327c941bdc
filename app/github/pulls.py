"""The run's pull request: opened once as a draft, updated, marked ready. Never merged.

Merging is a human decision (or an automation the ruleset allows, outside Autopack): this module
deliberately has no merge function, and its tests check that no merge route is ever called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gidgethub

from app.github.comments import cap_body
from app.github.repo import PER_PAGE, GitHubClient, is_status, repo_vars

MAX_TITLE = 256  # GitHub refuses longer pull request titles
_READY = """
mutation($id: ID!) {
  markPullRequestReadyForReview(input: {pullRequestId: $id}) {
    pullRequest { id isDraft }
  }
}
"""


@dataclass(frozen=True)
class PullView:
    """What the engine stores and shows of a pull request."""

    number: int
    node_id: str
    draft: bool
    html_url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PullView:
        """From a REST pull request."""
        return cls(
            number=int(data["number"]),
            node_id=str(data["node_id"]),
            draft=bool(data.get("draft", False)),
            html_url=str(data["html_url"]),
        )


def graphql_endpoint(base_url: str) -> str:
    """GraphQL's URL for a REST base: api.github.com/graphql, or HOST/api/graphql on GHES."""
    parts = urlsplit(base_url.rstrip("/"))
    api = parts.path.removesuffix("/v3") if parts.path.endswith("/api/v3") else parts.path
    return urlunsplit((parts.scheme, parts.netloc, f"{api}/graphql", "", ""))


def _title(title: str) -> str:
    title = title.strip()
    if not title:
        raise ValueError("a pull request needs a title")
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


async def find_open_pull(gh: GitHubClient, repo: str, head_branch: str) -> PullView | None:
    """The open pull request from `owner:head_branch`, if any."""
    variables = repo_vars(repo)
    # One open pull request per head and base at most; a page of 100 covers every base.
    pulls = await gh.getitem(
        "/repos/{owner}/{repo}/pulls{?head,state,per_page}",
        {
            **variables,
            "head": f"{variables['owner']}:{head_branch}",
            "state": "open",
            "per_page": PER_PAGE,
        },
    )
    return PullView.from_json(pulls[0]) if pulls else None


async def ensure_draft_pull(
    gh: GitHubClient, repo: str, head_branch: str, base: str, title: str, body: str
) -> PullView:
    """The open pull request for the branch, opened as a draft if there is none."""
    found = await find_open_pull(gh, repo, head_branch)
    if found is not None:
        return found
    data = {
        "title": _title(title),
        "head": head_branch,
        "base": base,
        "body": cap_body(body),
        "draft": True,
    }
    try:
        created = await gh.post("/repos/{owner}/{repo}/pulls", repo_vars(repo), data=data)
    except gidgethub.HTTPException as exc:
        # 422 "A pull request already exists": another worker opened it in between.
        if is_status(exc, 422):
            raced = await find_open_pull(gh, repo, head_branch)
            if raced is not None:
                return raced
        raise
    return PullView.from_json(created)


async def update_pull(
    gh: GitHubClient, repo: str, number: int, title: str | None = None, body: str | None = None
) -> PullView | None:
    """Change the title and/or body; None (and no request) when there is nothing to change."""
    data: dict[str, str] = {}
    if title is not None:
        data["title"] = _title(title)
    if body is not None:
        data["body"] = cap_body(body)
    if not data:
        return None
    updated = await gh.patch(
        "/repos/{owner}/{repo}/pulls/{number}", {**repo_vars(repo), "number": number}, data=data
    )
    return PullView.from_json(updated)


async def mark_ready_for_review(gh: GitHubClient, node_id: str) -> bool:
    """Mark a draft ready for review (GraphQL; REST cannot); return True when no longer draft."""
    data = await gh.graphql(_READY, endpoint=graphql_endpoint(gh.base_url), id=node_id)
    pull = (data or {}).get("markPullRequestReadyForReview") or {}
    return (pull.get("pullRequest") or {}).get("isDraft") is False
