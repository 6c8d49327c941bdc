"""Issue comments: one per run, edited in place and found again by a hidden marker.

The marker makes the create idempotent: a worker that crashed after creating the comment but
before storing its id finds the comment on the next try instead of posting a second one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import aclosing

import gidgethub

from app.github.create import create_once
from app.github.repo import PER_PAGE, GitHubClient, is_status, repo_vars

MAX_BODY = 65_536  # GitHub's limit for an issue comment body, in characters
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TRUNCATED = "\n\n…\n\n**Truncated:** the full report is in the check run and the run artefacts."


def run_marker(run_id: str) -> str:
    """The hidden HTML comment that identifies a run's comment."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"{run_id!r} is not a safe run id")
    return f"<!-- autopack:run:{run_id} -->"


def cap_body(body: str, limit: int = MAX_BODY) -> str:
    """`body` within GitHub's limit, saying so when cut."""
    if len(body) <= limit:
        return body
    return body[: limit - len(_TRUNCATED)] + _TRUNCATED


def _issue_vars(repo: str, issue: int) -> dict[str, object]:
    return {**repo_vars(repo), "number": issue}


async def find_run_comment(gh: GitHubClient, repo: str, issue: int, run_id: str) -> int | None:
    """The id of the comment carrying this run's marker, if one exists (all pages)."""
    marker = run_marker(run_id)
    # The marker opens our comments; a person quoting one starts with "> ".
    return await _find_comment(gh, repo, issue, lambda body: body.startswith(marker))


async def _find_comment(
    gh: GitHubClient, repo: str, issue: int, matches: Callable[[str], bool]
) -> int | None:
    comments = gh.getiter(
        "/repos/{owner}/{repo}/issues/{number}/comments{?per_page}",
        {**_issue_vars(repo, issue), "per_page": PER_PAGE},
    )
    async with aclosing(comments):
        async for comment in comments:
            if matches(str(comment.get("body") or "")):
                return int(comment["id"])
    return None


async def _edit(gh: GitHubClient, repo: str, comment_id: int, body: str) -> bool:
    """PATCH a comment; False when it no longer exists."""
    try:
        await gh.patch(
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
            {**repo_vars(repo), "comment_id": comment_id},
            data={"body": body},
        )
    except gidgethub.HTTPException as exc:
        if is_status(exc, 404):
            return False
        raise
    return True


async def upsert_run_comment(
    gh: GitHubClient, repo: str, issue: int, run_id: str, body: str, comment_id: int | None
) -> int:
    """Create or edit the run's comment; return its id (store it for the next update).

    The body gets the run's marker in front unless it already starts with it.
    """
    marker = run_marker(run_id)
    full = cap_body(body if body.startswith(marker) else f"{marker}\n{body}")
    if comment_id is not None and await _edit(gh, repo, comment_id, full):
        return comment_id
    # No stored id, or someone deleted the comment: look before creating.
    found = await find_run_comment(gh, repo, issue, run_id)
    if found is not None and await _edit(gh, repo, found, full):
        return found
    return await post_comment(gh, repo, issue, full)


async def post_comment(gh: GitHubClient, repo: str, issue: int, body: str) -> int:
    """Post a one-off comment (a plan preview, a permission refusal); return its id."""
    if not body.strip():
        raise ValueError("GitHub refuses an empty comment")
    text = cap_body(body)
    return await create_once(
        gh,
        "/repos/{owner}/{repo}/issues/{number}/comments",
        _issue_vars(repo, issue),
        {"body": text},
        identify=lambda created: int(created["id"]),
        # A lost answer may hide a comment that was made: the same text is that comment.
        find=lambda: _find_comment(gh, repo, issue, lambda found: found == text),
    )
