"""Webhook payload builders shaped like @octokit/webhooks-examples (see test_fidelity.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.fakegithub import render, render_pulls
from tests.fakegithub.gitstore import Commit
from tests.fakegithub.state import Installation, Issue, Repo, User, World, node_id

ZERO_SHA = "0" * 40


def envelope(
    world: World, repo: Repo | None, sender: User, inst: Installation | None
) -> dict[str, Any]:
    """The keys every repository event carries: repository, organization, sender, installation."""
    body: dict[str, Any] = {}
    if repo is not None:
        body["repository"] = render.repo(world, repo, full=False)
        if repo.owner.type == "Organization":
            body["organization"] = organization(world, repo.owner)
    body["sender"] = render.user(world, sender)
    if inst is not None:
        body["installation"] = {"id": inst.id, "node_id": node_id("Installation", inst.id)}
    return body


def organization(world: World, org: User) -> dict[str, Any]:
    """The organization object of webhook payloads."""
    api = f"{world.api_url}/orgs/{org.login}"
    return {
        "login": org.login,
        "id": org.id,
        "node_id": org.node_id,
        "url": api,
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events",
        "hooks_url": f"{api}/hooks",
        "issues_url": f"{api}/issues",
        "members_url": f"{api}/members{{/member}}",
        "public_members_url": f"{api}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{org.id}?v=4",
        "description": None,
    }


def issues(world: World, repo: Repo, issue: Issue, **extra: Any) -> dict[str, Any]:
    """issues.* body (label=..., changes=...)."""
    return {"issue": render.issue(world, repo, issue), **extra}


def issue_comment(world: World, repo: Repo, issue: Issue, comment_id: int) -> dict[str, Any]:
    """issue_comment.* body."""
    return {
        "issue": render.issue(world, repo, issue),
        "comment": render.comment(world, repo, repo.all_comments[comment_id]),
    }


def pull_request(world: World, repo: Repo, issue: Issue, **extra: Any) -> dict[str, Any]:
    """pull_request.* body."""
    return {"number": issue.number, "pull_request": render_pulls.pull(world, repo, issue), **extra}


def _commit(world: World, repo: Repo, commit: Commit) -> dict[str, Any]:
    def person(name: str, email: str) -> dict[str, Any]:
        return {"name": name, "email": email, "username": name}

    return {
        "id": commit.sha,
        "tree_id": commit.tree,
        "distinct": True,
        "message": commit.message,
        "timestamp": commit.committer.date,
        "url": f"{render.HTML}/{repo.full_name}/commit/{commit.sha}",
        "author": person(commit.author.name, commit.author.email),
        "committer": person(commit.committer.name, commit.committer.email),
        **_changed_files(repo, commit),
    }


def _changed_files(repo: Repo, commit: Commit) -> dict[str, list[str]]:
    """added/removed/modified against the first parent, as a push payload lists them."""
    now = repo.git.files_at(commit.sha)
    before = repo.git.files_at(commit.parents[0]) if commit.parents else {}
    return {
        "added": sorted(set(now) - set(before)),
        "removed": sorted(set(before) - set(now)),
        "modified": sorted(path for path in set(now) & set(before) if now[path] != before[path]),
    }


def push(
    world: World, repo: Repo, ref: str, before: str | None, after: str | None, pusher: User
) -> dict[str, Any]:
    """push body for one ref change (before/after None when created/deleted)."""
    commits: list[dict[str, Any]] = []
    if after is not None:
        # A new branch lists only the commits no other branch has (GitHub's "distinct" ones).
        known = {before} if before is not None else _on_other_branches(repo, ref)
        for commit in repo.commits(after)[:20]:
            if commit.sha in known:
                break
            commits.append(_commit(world, repo, commit))
        commits.reverse()
    old, new = before or ZERO_SHA, after or ZERO_SHA
    return {
        "ref": ref,
        "before": old,
        "after": new,
        "created": before is None,
        "deleted": after is None,
        "forced": before is not None
        and after is not None
        and not repo.git.is_ancestor(before, after),
        "base_ref": None,
        "compare": f"{render.HTML}/{repo.full_name}/compare/{old[:12]}...{new[:12]}",
        "commits": commits,
        "head_commit": commits[-1] if commits else None,
        "pusher": {"name": pusher.login, "email": f"{pusher.id}+{pusher.login}@users.noreply"},
    }


def _on_other_branches(repo: Repo, ref: str) -> set[str]:
    return {
        commit.sha
        for name in repo.refs
        if name != ref and name.startswith("refs/heads/")
        for commit in repo.commits(name)
    }


def installation(world: World, inst: Installation, repos: list[Repo]) -> dict[str, Any]:
    """installation.created body (no repository key: it is an account-level event)."""
    return {
        "installation": render.installation(world, inst),
        "repositories": [render.repo_brief(r) for r in repos],
    }


def push_repository(repository: dict[str, Any], repo: Repo) -> None:
    """Push payloads carry the older repository shape: epoch times, stargazers, master_branch."""
    for key in ("created_at", "pushed_at"):
        stamp = repository[key]
        repository[key] = int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
    repository["stargazers"] = 0
    repository["master_branch"] = repo.default_branch
