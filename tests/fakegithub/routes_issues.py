"""Issue, comment and label routes."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakegithub import issues_ops, render
from tests.fakegithub.respond import (
    ApiError,
    actor,
    body_of,
    core_of,
    invalid,
    not_found,
    paginate,
    repo_of,
)
from tests.fakegithub.state import Comment, Issue, Repo

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}"


def issue_of(request: web.Request, repo: Repo) -> Issue:
    """The issue (or pull request) named by {number}."""
    try:
        number = int(request.match_info["number"])
    except ValueError:
        not_found()
    issue = repo.issues.get(number)
    if issue is None:
        not_found()
    return issue


def _labels_arg(value: Any) -> list[str]:
    if value is None:
        return []
    names = [v.get("name") if isinstance(v, dict) else v for v in value]
    if not isinstance(value, list) or not all(isinstance(n, str) and n for n in names):
        invalid("Invalid request.\n\nFor 'properties/labels', it is not an array of strings.")
    return [str(n) for n in names]


@routes.post(R + "/issues")
async def create_issue(request: web.Request) -> web.Response:
    """POST issues."""
    repo = repo_of(request)
    body = await body_of(request)
    title = body.get("title")
    if isinstance(title, int):
        title = str(title)
    if not isinstance(title, str) or not title:
        invalid(
            "Validation Failed", [{"resource": "Issue", "code": "missing_field", "field": "title"}]
        )
    text = body.get("body")
    if text is not None and not isinstance(text, str):
        invalid("Invalid request.\n\nFor 'properties/body', it is not a string.")
    who = actor(request)
    issue = issues_ops.create_issue(
        core_of(request), repo, title, text, who.user, who.app.id, _labels_arg(body.get("labels"))
    )
    return web.json_response(render.issue(core_of(request).world, repo, issue), status=201)


@routes.get(R + "/issues")
async def list_issues(request: web.Request) -> web.Response:
    """GET issues (state, labels, creator; pull requests included, as on GitHub)."""
    repo = repo_of(request)
    world = core_of(request).world
    state = request.query.get("state", "open")
    if state not in ("open", "closed", "all"):
        invalid("Validation Failed", [{"resource": "Issue", "code": "invalid", "field": "state"}])
    wanted = {n.strip().lower() for n in request.query.get("labels", "").split(",") if n.strip()}
    creator = request.query.get("creator", "").lower()
    items = []
    for issue in sorted(repo.issues.values(), key=lambda i: i.number, reverse=True):
        if state != "all" and issue.state != state:
            continue
        if not wanted <= {lab.name.lower() for lab in issue.labels}:
            continue
        if creator and issue.user.login.lower() != creator:
            continue
        items.append(render.issue(world, repo, issue))
    if request.query.get("direction") == "asc":
        items.reverse()
    return paginate(request, items)


@routes.get(R + "/issues/{number:\\d+}")
async def get_issue(request: web.Request) -> web.Response:
    """GET issues/{n}."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    return web.json_response(render.issue(core_of(request).world, repo, issue))


@routes.patch(R + "/issues/{number:\\d+}")
async def update_issue(request: web.Request) -> web.Response:
    """PATCH issues/{n}: title, body, state, state_reason, labels."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    body = await body_of(request)
    if body.get("state") not in (None, "open", "closed"):
        invalid("Validation Failed", [{"resource": "Issue", "code": "invalid", "field": "state"}])
    if "title" in body and (not isinstance(body["title"], str) or not body["title"]):
        invalid(
            "Validation Failed", [{"resource": "Issue", "code": "missing_field", "field": "title"}]
        )
    changes: dict[str, Any] = {
        k: body[k] for k in ("title", "body", "state", "state_reason") if k in body
    }
    if "labels" in body:
        changes["labels"] = _labels_arg(body["labels"])
    issues_ops.update_issue(core_of(request), repo, issue, changes, actor(request).user)
    return web.json_response(render.issue(core_of(request).world, repo, issue))


@routes.post(R + "/issues/{number:\\d+}/comments")
async def create_comment(request: web.Request) -> web.Response:
    """POST issues/{n}/comments."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    body = await body_of(request)
    text = body.get("body")
    if not isinstance(text, str) or not text:
        invalid('Invalid request.\n\n"body" wasn\'t supplied.')
    who = actor(request)
    comment = issues_ops.add_comment(core_of(request), repo, issue, text, who.user, who.app.id)
    return web.json_response(render.comment(core_of(request).world, repo, comment), status=201)


@routes.get(R + "/issues/{number:\\d+}/comments")
async def list_comments(request: web.Request) -> web.Response:
    """GET issues/{n}/comments, oldest first."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    world = core_of(request).world
    return paginate(request, [render.comment(world, repo, c) for c in repo.comments(issue.number)])


def comment_of(request: web.Request, repo: Repo) -> Comment:
    """The comment named by {comment_id}."""
    comment = repo.all_comments.get(int(request.match_info["comment_id"]))
    if comment is None:
        not_found()
    return comment


@routes.get(R + "/issues/comments")
async def list_repo_comments(request: web.Request) -> web.Response:
    """GET issues/comments (every comment of the repository)."""
    repo = repo_of(request)
    world = core_of(request).world
    return paginate(request, [render.comment(world, repo, c) for c in repo.all_comments.values()])


@routes.get(R + "/issues/comments/{comment_id:\\d+}")
async def get_comment(request: web.Request) -> web.Response:
    """GET issues/comments/{id}."""
    repo = repo_of(request)
    return web.json_response(
        render.comment(core_of(request).world, repo, comment_of(request, repo))
    )


@routes.patch(R + "/issues/comments/{comment_id:\\d+}")
async def update_comment(request: web.Request) -> web.Response:
    """PATCH issues/comments/{id}: edit in place."""
    repo = repo_of(request)
    comment = comment_of(request, repo)
    body = await body_of(request)
    if not isinstance(body.get("body"), str) or not body["body"]:
        invalid('Invalid request.\n\n"body" wasn\'t supplied.')
    issues_ops.edit_comment(core_of(request), repo, comment, body["body"], actor(request).user)
    return web.json_response(render.comment(core_of(request).world, repo, comment))


@routes.delete(R + "/issues/comments/{comment_id:\\d+}")
async def delete_comment(request: web.Request) -> web.Response:
    """DELETE issues/comments/{id}."""
    repo = repo_of(request)
    comment = comment_of(request, repo)
    issues_ops.delete_comment(core_of(request), repo, comment, actor(request).user)
    return web.Response(status=204)


async def _label_names(request: web.Request) -> list[str]:
    raw = await request.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise ApiError(400, "Problems parsing JSON") from exc
    if isinstance(data, dict):
        data = data.get("labels")
        if data is None:
            invalid('Invalid request.\n\n"labels" wasn\'t supplied.')
    return _labels_arg(data)


def _issue_labels(request: web.Request, repo: Repo, issue: Issue) -> web.Response:
    world = core_of(request).world
    return web.json_response([render.label(world, repo, lab) for lab in issue.labels])


@routes.get(R + "/issues/{number:\\d+}/labels")
async def list_labels(request: web.Request) -> web.Response:
    """GET issues/{n}/labels."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    world = core_of(request).world
    return paginate(request, [render.label(world, repo, lab) for lab in issue.labels])


@routes.post(R + "/issues/{number:\\d+}/labels")
async def add_labels(request: web.Request) -> web.Response:
    """POST issues/{n}/labels: add (creating repository labels as needed)."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    names = await _label_names(request)
    issues_ops.add_labels(core_of(request), repo, issue, names, actor(request).user)
    return _issue_labels(request, repo, issue)


@routes.put(R + "/issues/{number:\\d+}/labels")
async def set_labels(request: web.Request) -> web.Response:
    """PUT issues/{n}/labels: replace."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    names = await _label_names(request)
    issues_ops.set_labels(core_of(request), repo, issue, names, actor(request).user)
    return _issue_labels(request, repo, issue)


@routes.delete(R + "/issues/{number:\\d+}/labels/{name}")
async def remove_label(request: web.Request) -> web.Response:
    """DELETE issues/{n}/labels/{name}: 404 when the issue does not carry it."""
    repo = repo_of(request)
    issue = issue_of(request, repo)
    name = request.match_info["name"]
    if not issues_ops.remove_label(core_of(request), repo, issue, name, actor(request).user):
        raise ApiError(404, "Label does not exist")
    return _issue_labels(request, repo, issue)


@routes.get(R + "/labels")
async def list_repo_labels(request: web.Request) -> web.Response:
    """GET labels."""
    repo = repo_of(request)
    world = core_of(request).world
    return paginate(request, [render.label(world, repo, lab) for lab in repo.labels.values()])


@routes.post(R + "/labels")
async def create_repo_label(request: web.Request) -> web.Response:
    """POST labels: 422 already_exists for a taken name."""
    repo = repo_of(request)
    body = await body_of(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        invalid('Invalid request.\n\n"name" wasn\'t supplied.')
    if name.lower() in repo.labels:
        invalid(errors=[{"resource": "Label", "code": "already_exists", "field": "name"}])
    lab = issues_ops.label_named(core_of(request), repo, name)
    lab.color = str(body.get("color", lab.color)).lstrip("#")
    lab.description = body.get("description")
    return web.json_response(render.label(core_of(request).world, repo, lab), status=201)
