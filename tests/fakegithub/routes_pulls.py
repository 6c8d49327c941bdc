"""Pull request routes, and GraphQL: the one mutation REST lacks (ready for review) and the one
read (an issue's last editor, in `graphql_issues.py`)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tests.fakegithub import graphql_issues, issues_ops, payloads, render_pulls
from tests.fakegithub.core import Core
from tests.fakegithub.respond import (
    actor,
    body_of,
    core_of,
    invalid,
    not_found,
    paginate,
    repo_of,
)
from tests.fakegithub.state import Issue, Pull, Repo, User, node_id, now_iso

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}"


def _error(message: str) -> list[dict[str, Any]]:
    return [{"resource": "PullRequest", "code": "custom", "message": message}]


def _branch(repo: Repo, value: str) -> str:
    """ "owner:branch" or "branch" to the branch name (other owners' forks do not exist here)."""
    owner, _, branch = value.rpartition(":")
    if owner and owner.lower() != repo.owner.login.lower():
        return ""
    return branch


def open_pull(
    core: Core,
    repo: Repo,
    *,
    title: str,
    head: str,
    base: str,
    body: str | None,
    draft: bool,
    user: User,
    app_id: int | None,
) -> Issue:
    """Validate as GitHub does, create the pull request, deliver pull_request.opened."""
    head_sha = repo.refs.get(f"refs/heads/{head}") if head else None
    base_sha = repo.refs.get(f"refs/heads/{base}")
    if head_sha is None:
        invalid(errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}])
    if base_sha is None:
        invalid(errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}])
    if head == base or repo.git.is_ancestor(head_sha, base_sha):
        invalid(errors=_error(f"No commits between {base} and {head}"))
    for other in repo.pulls:
        assert other.pull is not None
        if other.state == "open" and other.pull.head_ref == head and other.pull.base_ref == base:
            invalid(errors=_error(f"A pull request already exists for {repo.owner.login}:{head}."))
    issue = Issue(core.world.next_id("issue"), repo.next_number(), title, body, user, app_id)
    issue.pull = Pull(core.world.next_id("pull"), issue.number, head, base, draft)
    repo.issues[issue.number] = issue
    core.emit("pull_request", "opened", repo, payloads.pull_request(core.world, repo, issue), user)
    return issue


def pull_of(request: web.Request, repo: Repo) -> Issue:
    """The pull request named by {number}."""
    issue = repo.issues.get(int(request.match_info["number"]))
    if issue is None or issue.pull is None:
        not_found()
    return issue


@routes.post(R + "/pulls")
async def create_pull(request: web.Request) -> web.Response:
    """POST pulls (draft or not)."""
    repo = repo_of(request)
    body = await body_of(request)
    for key in ("title", "head", "base"):
        if not isinstance(body.get(key), str) or not body[key]:
            invalid(errors=[{"resource": "PullRequest", "code": "missing_field", "field": key}])
    who = actor(request)
    issue = open_pull(
        core_of(request),
        repo,
        title=body["title"],
        head=_branch(repo, body["head"]),
        base=body["base"],
        body=body.get("body"),
        draft=bool(body.get("draft", False)),
        user=who.user,
        app_id=who.app.id,
    )
    return web.json_response(render_pulls.pull(core_of(request).world, repo, issue), status=201)


@routes.get(R + "/pulls")
async def list_pulls(request: web.Request) -> web.Response:
    """GET pulls (state, head=owner:branch, base), newest first."""
    repo = repo_of(request)
    world = core_of(request).world
    state = request.query.get("state", "open")
    head = request.query.get("head")
    base = request.query.get("base")
    items = []
    for issue in sorted(repo.pulls, key=lambda i: i.number, reverse=True):
        assert issue.pull is not None
        if state != "all" and issue.state != state:
            continue
        if head is not None:
            owner, _, branch = head.partition(":")
            if not branch or owner.lower() != repo.owner.login.lower():
                continue  # GitHub filters by "user:ref-name"; a bare branch matches nothing
            if issue.pull.head_ref != branch:
                continue
        if base is not None and issue.pull.base_ref != base:
            continue
        items.append(render_pulls.pull(world, repo, issue))
    return paginate(request, items)


@routes.get(R + "/pulls/{number:\\d+}")
async def get_pull(request: web.Request) -> web.Response:
    """GET pulls/{n}."""
    repo = repo_of(request)
    return web.json_response(
        render_pulls.pull(core_of(request).world, repo, pull_of(request, repo))
    )


@routes.patch(R + "/pulls/{number:\\d+}")
async def update_pull(request: web.Request) -> web.Response:
    """PATCH pulls/{n}: title, body, state, base (`draft` is not REST-settable: see /graphql)."""
    repo = repo_of(request)
    issue = pull_of(request, repo)
    assert issue.pull is not None
    body = await body_of(request)
    if body.get("state") not in (None, "open", "closed"):
        invalid(errors=[{"resource": "PullRequest", "code": "invalid", "field": "state"}])
    core = core_of(request)
    sender = actor(request).user
    if isinstance(body.get("base"), str) and body["base"] != issue.pull.base_ref:
        if f"refs/heads/{body['base']}" not in repo.refs:
            invalid(errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        old = issue.pull.base_ref
        issue.pull.base_ref = body["base"]
        changes = {"base": {"ref": {"from": old}, "sha": {"from": repo.refs[f"refs/heads/{old}"]}}}
        body_ = payloads.pull_request(core.world, repo, issue, changes=changes)
        core.emit("pull_request", "edited", repo, body_, sender)
    changes_: dict[str, Any] = {k: body[k] for k in ("title", "body", "state") if k in body}
    issues_ops.update_issue(core, repo, issue, changes_, sender)
    return web.json_response(render_pulls.pull(core.world, repo, issue))


def mark_ready(core: Core, repo: Repo, issue: Issue, sender: User) -> None:
    """Draft -> ready for review, with pull_request.ready_for_review."""
    assert issue.pull is not None
    if not issue.pull.draft:
        return
    issue.pull.draft = False
    issue.updated_at = now_iso()
    body = payloads.pull_request(core.world, repo, issue)
    core.emit("pull_request", "ready_for_review", repo, body, sender)


_MUTATION = re.compile(r"\bmutation\b[^{]*\{\s*markPullRequestReadyForReview\s*\(", re.S)
_LITERAL_ID = re.compile(r'pullRequestId\s*:\s*"([^"]+)"')


@routes.post("/graphql")
async def graphql(request: web.Request) -> web.Response:
    """`markPullRequestReadyForReview` by node id and the issue editor query; anything else is
    an unknown route."""
    core = core_of(request)
    body = await body_of(request)
    query = body.get("query")
    if isinstance(query, str) and graphql_issues.asks_for_editor(query):
        variables = body.get("variables") or {}
        return web.json_response(graphql_issues.answer(core, actor(request), query, variables))
    if not isinstance(query, str) or not _MUTATION.search(query):
        core.unknown_routes.append(f"POST /graphql {str(query)[:80]!r}")
        return web.json_response({"errors": [{"message": "unsupported by the simulator"}]})
    literal = _LITERAL_ID.search(query)
    variables = body.get("variables") or {}
    candidates = [literal.group(1)] if literal else []
    candidates += _strings(variables)
    who = actor(request)
    for repo in core.world.repos.values():
        if not who.installation.covers(repo):
            continue
        for issue in repo.pulls:
            assert issue.pull is not None
            pr_node = node_id("PullRequest", issue.pull.id)
            if pr_node in candidates:
                mark_ready(core, repo, issue, who.user)
                pull = {"id": pr_node, "number": issue.number, "isDraft": issue.pull.draft}
                return web.json_response(
                    {"data": {"markPullRequestReadyForReview": {"pullRequest": pull}}}
                )
    message = "Could not resolve to a node with the global id of the pull request."
    return web.json_response(
        {
            "data": {"markPullRequestReadyForReview": None},
            "errors": [{"type": "NOT_FOUND", "message": message}],
        }
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
