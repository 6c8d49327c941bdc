"""JSON shapes of pull requests (REST and webhooks) and the pull-request stubs of checks."""

from __future__ import annotations

from typing import Any

from tests.fakegithub.render import HTML, association, label, repo, user
from tests.fakegithub.state import Issue, Repo, World, node_id


def pull(world: World, r: Repo, i: Issue) -> dict[str, Any]:
    """pull-request."""
    assert i.pull is not None
    p = i.pull
    api = f"{world.api_url}/repos/{r.full_name}/pulls/{i.number}"
    issue_api = f"{world.api_url}/repos/{r.full_name}/issues/{i.number}"
    html = f"{HTML}/{r.full_name}/pull/{i.number}"
    head_sha = r.ref(f"heads/{p.head_ref}") or ""
    statuses = f"{world.api_url}/repos/{r.full_name}/statuses/{head_sha}"

    def side(ref: str, sha: str) -> dict[str, Any]:
        return {
            "label": f"{r.owner.login}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": user(world, r.owner),
            "repo": repo(world, r, full=False),
        }

    return {
        "url": api,
        "id": p.id,
        "node_id": node_id("PullRequest", p.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue_api,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{world.api_url}/repos/{r.full_name}/pulls/comments{{/number}}",
        "comments_url": f"{issue_api}/comments",
        "statuses_url": statuses,
        "number": i.number,
        "state": i.state,
        "locked": i.locked,
        "title": i.title,
        "user": user(world, i.user),
        "body": i.body,
        "labels": [label(world, r, lab) for lab in i.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "closed_at": i.closed_at,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": side(p.head_ref, head_sha),
        "base": side(p.base_ref, r.ref(f"heads/{p.base_ref}") or ""),
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "issue": {"href": issue_api},
            "comments": {"href": f"{issue_api}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {
                "href": f"{world.api_url}/repos/{r.full_name}/pulls/comments{{/number}}"
            },
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": statuses},
        },
        "author_association": association(r, i.user),
        "auto_merge": None,
        "draft": p.draft,
        "merged": p.merged,
        "mergeable": None,
        "rebaseable": None,
        "mergeable_state": "unknown",
        "merged_by": None,
        "comments": i.comments,
        "review_comments": 0,
        "maintainer_can_modify": False,
        "commits": 1,
        "additions": 0,
        "deletions": 0,
        "changed_files": 0,
    }


def pull_refs(world: World, r: Repo, head_sha: str) -> list[dict[str, Any]]:
    """The minimal open pull requests whose head is at `head_sha` (for checks)."""
    out = []
    for i in r.pulls:
        assert i.pull is not None
        if i.state != "open" or r.ref(f"heads/{i.pull.head_ref}") != head_sha:
            continue
        brief = {"id": r.id, "url": f"{world.api_url}/repos/{r.full_name}", "name": r.name}
        out.append(
            {
                "url": f"{world.api_url}/repos/{r.full_name}/pulls/{i.number}",
                "id": i.pull.id,
                "number": i.number,
                "head": {"ref": i.pull.head_ref, "sha": head_sha, "repo": brief},
                "base": {
                    "ref": i.pull.base_ref,
                    "sha": r.ref(f"heads/{i.pull.base_ref}") or "",
                    "repo": brief,
                },
            }
        )
    return out
