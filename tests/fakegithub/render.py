"""JSON shapes of GitHub objects, shared by REST responses and webhook payloads.

Field names and types follow the @octokit/openapi description (checked by test_fidelity.py).
API URLs point at the simulator, so a client following `url` fields stays on it.
"""

from __future__ import annotations

from typing import Any

from tests.fakegithub.state import (
    AppRegistration,
    Comment,
    Installation,
    Issue,
    Label,
    Repo,
    User,
    World,
    node_id,
)

HTML = "https://github.com"
APP_PERMISSIONS = {
    "actions": "write",
    "checks": "write",
    "contents": "write",
    "issues": "write",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "read",
}
APP_EVENTS = [
    "check_run",
    "check_suite",
    "issue_comment",
    "issues",
    "pull_request",
    "push",
    "status",
]


def user(world: World, u: User) -> dict[str, Any]:
    """simple-user."""
    api = f"{world.api_url}/users/{u.login}"
    return {
        "login": u.login,
        "id": u.id,
        "node_id": u.node_id,
        "avatar_url": f"https://avatars.githubusercontent.com/u/{u.id}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{HTML}/{u.login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": u.type,
        "site_admin": False,
    }


def app(world: World, a: AppRegistration) -> dict[str, Any]:
    """integration (an app registered from a manifest has the manifest's permissions, events)."""
    owner = world.user(a.owner_login, "Organization")
    manifest = world.app_manifests.get(a.id, {})
    return {
        "id": a.id,
        "slug": a.slug,
        "node_id": node_id("App", a.id),
        "client_id": a.client_id,
        "owner": user(world, owner),
        "name": a.name,
        "description": "",
        "external_url": f"https://{a.slug}.example.invalid",
        "html_url": f"{HTML}/apps/{a.slug}",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "permissions": dict(manifest.get("default_permissions") or APP_PERMISSIONS),
        "events": list(manifest.get("default_events") or APP_EVENTS),
        "installations_count": len(world.installations_of(a.id)),
    }


def installation(world: World, inst: Installation) -> dict[str, Any]:
    """installation."""
    a = world.apps[inst.app_id]
    return {
        "id": inst.id,
        "client_id": a.client_id,
        "account": user(world, inst.account),
        "repository_selection": "all" if inst.repos is None else "selected",
        "access_tokens_url": f"{world.api_url}/app/installations/{inst.id}/access_tokens",
        "repositories_url": f"{world.api_url}/installation/repositories",
        "html_url": f"{HTML}/settings/installations/{inst.id}",
        "app_id": a.id,
        "app_slug": a.slug,
        "target_id": inst.account.id,
        "target_type": inst.account.type,
        "permissions": dict(APP_PERMISSIONS),
        "events": list(APP_EVENTS),
        "created_at": inst.created_at,
        "updated_at": inst.created_at,
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def repo_urls(world: World, r: Repo) -> dict[str, Any]:
    """The *_url fields every repository shape carries."""
    api = f"{world.api_url}/repos/{r.full_name}"
    templated = {
        "archive_url": "{archive_format}{/ref}",
        "assignees_url": "assignees{/user}",
        "blobs_url": "git/blobs{/sha}",
        "branches_url": "branches{/branch}",
        "collaborators_url": "collaborators{/collaborator}",
        "comments_url": "comments{/number}",
        "commits_url": "commits{/sha}",
        "compare_url": "compare/{base}...{head}",
        "contents_url": "contents/{+path}",
        "contributors_url": "contributors",
        "deployments_url": "deployments",
        "downloads_url": "downloads",
        "events_url": "events",
        "forks_url": "forks",
        "git_commits_url": "git/commits{/sha}",
        "git_refs_url": "git/refs{/sha}",
        "git_tags_url": "git/tags{/sha}",
        "hooks_url": "hooks",
        "issue_comment_url": "issues/comments{/number}",
        "issue_events_url": "issues/events{/number}",
        "issues_url": "issues{/number}",
        "keys_url": "keys{/key_id}",
        "labels_url": "labels{/name}",
        "languages_url": "languages",
        "merges_url": "merges",
        "milestones_url": "milestones{/number}",
        "notifications_url": "notifications{?since,all,participating}",
        "pulls_url": "pulls{/number}",
        "releases_url": "releases{/id}",
        "stargazers_url": "stargazers",
        "statuses_url": "statuses/{sha}",
        "subscribers_url": "subscribers",
        "subscription_url": "subscription",
        "tags_url": "tags",
        "teams_url": "teams",
        "trees_url": "git/trees{/sha}",
    }
    return {key: f"{api}/{suffix}" for key, suffix in templated.items()}


def repo(world: World, r: Repo, *, full: bool = True) -> dict[str, Any]:
    """full-repository (REST) or the repository object of webhook payloads (full=False)."""
    open_issues = sum(1 for i in r.issues.values() if i.state == "open")
    body: dict[str, Any] = {
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": r.full_name,
        "private": r.private,
        "owner": user(world, r.owner),
        "html_url": f"{HTML}/{r.full_name}",
        "description": None,
        "fork": False,
        "url": f"{world.api_url}/repos/{r.full_name}",
        **repo_urls(world, r),
        "created_at": r.created_at,
        "updated_at": r.pushed_at,
        "pushed_at": r.pushed_at,
        "git_url": f"git://github.com/{r.full_name}.git",
        "ssh_url": f"git@github.com:{r.full_name}.git",
        "clone_url": f"{HTML}/{r.full_name}.git",
        "svn_url": f"{HTML}/{r.full_name}",
        "homepage": None,
        "size": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": None,
        "has_issues": True,
        "has_projects": True,
        "has_downloads": True,
        "has_wiki": True,
        "has_pages": False,
        "has_discussions": False,
        "forks_count": 0,
        "mirror_url": None,
        "archived": False,
        "disabled": False,
        "open_issues_count": open_issues,
        "license": None,
        "is_template": False,
        "web_commit_signoff_required": False,
        "topics": [],
        "visibility": "private" if r.private else "public",
        "forks": 0,
        "open_issues": open_issues,
        "watchers": 0,
        "default_branch": r.default_branch,
        "custom_properties": {},
    }
    if full:
        body.update(
            {
                "allow_squash_merge": True,
                "allow_merge_commit": True,
                "allow_rebase_merge": True,
                "allow_auto_merge": False,
                "delete_branch_on_merge": False,
                "allow_forking": True,
                "network_count": 0,
                "subscribers_count": 0,
                "permissions": {
                    "admin": False,
                    "maintain": False,
                    "push": True,
                    "triage": True,
                    "pull": True,
                },
            }
        )
        if r.owner.type == "Organization":
            body["organization"] = user(world, r.owner)
    return body


def repo_brief(r: Repo) -> dict[str, Any]:
    """The short repository entries of installation payloads."""
    return {
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": r.full_name,
        "private": r.private,
    }


def label(world: World, r: Repo, lab: Label) -> dict[str, Any]:
    """label."""
    return {
        "id": lab.id,
        "node_id": node_id("Label", lab.id),
        "url": f"{world.api_url}/repos/{r.full_name}/labels/{lab.name}",
        "name": lab.name,
        "color": lab.color,
        "default": lab.default,
        "description": lab.description,
    }


def association(r: Repo, u: User) -> str:
    """author_association of a user on a repository."""
    if u.login.lower() == r.owner.login.lower():
        return "OWNER"
    if r.permissions.get(u.login.lower(), "none") in ("admin", "maintain", "write"):
        return "COLLABORATOR"
    return "NONE"


def _reactions(url: str) -> dict[str, Any]:
    keys = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")
    return {"url": f"{url}/reactions", "total_count": 0, **dict.fromkeys(keys, 0)}


def issue(world: World, r: Repo, i: Issue) -> dict[str, Any]:
    """issue (a pull request's issue carries a `pull_request` link object)."""
    api = f"{world.api_url}/repos/{r.full_name}/issues/{i.number}"
    kind = "pull" if i.pull is not None else "issues"
    body: dict[str, Any] = {
        "url": api,
        "repository_url": f"{world.api_url}/repos/{r.full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{HTML}/{r.full_name}/{kind}/{i.number}",
        "id": i.id,
        "node_id": node_id("Issue", i.id),
        "number": i.number,
        "title": i.title,
        "user": user(world, i.user),
        "labels": [label(world, r, lab) for lab in i.labels],
        "state": i.state,
        "locked": i.locked,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": i.comments,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
        "closed_at": i.closed_at,
        "author_association": association(r, i.user),
        "active_lock_reason": None,
        "body": i.body,
        "reactions": _reactions(api),
        "timeline_url": f"{api}/timeline",
        "performed_via_github_app": _via_app(world, i.app_id),
        "state_reason": i.state_reason,
    }
    body["draft"] = i.pull.draft if i.pull is not None else False
    if i.pull is not None:
        pulls = f"{world.api_url}/repos/{r.full_name}/pulls/{i.number}"
        body["pull_request"] = {
            "url": pulls,
            "html_url": f"{HTML}/{r.full_name}/pull/{i.number}",
            "diff_url": f"{HTML}/{r.full_name}/pull/{i.number}.diff",
            "patch_url": f"{HTML}/{r.full_name}/pull/{i.number}.patch",
            "merged_at": None,
        }
    return body


def _via_app(world: World, app_id: int | None) -> dict[str, Any] | None:
    return app(world, world.apps[app_id]) if app_id is not None else None


def comment(world: World, r: Repo, c: Comment) -> dict[str, Any]:
    """issue-comment."""
    api = f"{world.api_url}/repos/{r.full_name}/issues/comments/{c.id}"
    return {
        "url": api,
        "html_url": f"{HTML}/{r.full_name}/issues/{c.issue_number}#issuecomment-{c.id}",
        "issue_url": f"{world.api_url}/repos/{r.full_name}/issues/{c.issue_number}",
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "user": user(world, c.user),
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "author_association": association(r, c.user),
        "body": c.body,
        "reactions": _reactions(api),
        "performed_via_github_app": _via_app(world, c.app_id),
    }
