"""Commit status routes: create, list, and the combined status of a ref."""

from __future__ import annotations

from aiohttp import web

from tests.fakegithub import statuses
from tests.fakegithub.respond import ApiError, actor, body_of, core_of, invalid, paginate, repo_of
from tests.fakegithub.state import Repo

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}"


def _commit(repo: Repo, ref: str) -> str:
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(404, f"No commit found for SHA: {ref}")
    return sha


@routes.post(R + "/statuses/{sha}")
async def post_status(request: web.Request) -> web.Response:
    """POST statuses/{sha}: 201 with the status; 422 for a bad body or an unknown commit."""
    repo = repo_of(request)
    core = core_of(request)
    sha = request.match_info["sha"]
    if len(sha) != 40 or repo.resolve(sha) != sha:
        invalid(f"No commit found for SHA: {sha}")
    try:
        status = statuses.create(core, repo, sha, await body_of(request), actor(request).user)
    except statuses.StatusInvalid as exc:
        invalid(exc.message, exc.errors or None)
    body = statuses.render_status(core.world, repo, status, simple=False)
    return web.json_response(body, status=201)


@routes.get(R + "/commits/{ref}/statuses")
async def list_statuses(request: web.Request) -> web.Response:
    """GET commits/{ref}/statuses: every status of the commit, newest first."""
    repo = repo_of(request)
    sha = _commit(repo, request.match_info["ref"])
    world = core_of(request).world
    found = sorted((s for s in repo.statuses if s.sha == sha), key=lambda s: s.id, reverse=True)
    return paginate(request, [statuses.render_status(world, repo, s, simple=False) for s in found])


@routes.get(R + "/commits/{ref}/status")
async def combined_status(request: web.Request) -> web.Response:
    """GET commits/{ref}/status: the combined state and the newest status per context (paged)."""
    repo = repo_of(request)
    sha = _commit(repo, request.match_info["ref"])
    world = core_of(request).world
    items = [
        statuses.render_status(world, repo, s, simple=True) for s in statuses.latest(repo, sha)
    ]
    extra = statuses.render_combined(world, repo, sha)
    return paginate(request, items, wrap="statuses", extra=extra)
