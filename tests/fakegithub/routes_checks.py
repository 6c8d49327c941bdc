"""Checks routes: check runs, suites, annotations, rerequests."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakegithub import checks
from tests.fakegithub.core import Core
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
from tests.fakegithub.state import AppRegistration, CheckRun, CheckSuite, Repo, User

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}"


def create_run(core: Core, repo: Repo, app: AppRegistration, body: Any, sender: User) -> CheckRun:
    """Validate and create a check run in the app's suite for head_sha, then announce it."""
    try:
        changes = checks.validate(body, None)
    except checks.CheckInvalid as exc:
        invalid(exc.message, exc.errors or None)
    head_sha = changes["head_sha"]
    if repo.resolve(head_sha) != head_sha:
        invalid(f"No commit found for SHA: {head_sha}")
    suite = checks.suite_for(core, repo, app.id, head_sha)
    run = CheckRun(core.world.next_id("check_run"), app.id, suite.id, head_sha, changes["name"])
    checks.apply(run, changes)
    repo.runs[run.id] = run
    suite.runs.append(run.id)
    checks.record_change(core, repo, run, sender, created=True, was_completed=False)
    return run


def update_run(core: Core, repo: Repo, run: CheckRun, body: Any, sender: User) -> None:
    """Validate and apply an update, announcing completion."""
    try:
        changes = checks.validate(body, run)
    except checks.CheckInvalid as exc:
        invalid(exc.message, exc.errors or None)
    was_completed = run.status == "completed"
    checks.apply(run, changes)
    checks.record_change(core, repo, run, sender, created=False, was_completed=was_completed)


def _run_of(request: web.Request, repo: Repo) -> CheckRun:
    run = repo.runs.get(int(request.match_info["run_id"]))
    if run is None:
        not_found()
    return run


def _suite_of(request: web.Request, repo: Repo) -> CheckSuite:
    suite = repo.suites.get(int(request.match_info["suite_id"]))
    if suite is None:
        not_found()
    return suite


@routes.post(R + "/check-runs")
async def post_run(request: web.Request) -> web.Response:
    """POST check-runs."""
    repo = repo_of(request)
    core = core_of(request)
    who = actor(request)
    run = create_run(core, repo, who.app, await body_of(request), who.user)
    return web.json_response(checks.render_run(core.world, repo, run, rest=True), status=201)


@routes.get(R + "/check-runs/{run_id:\\d+}")
async def get_run(request: web.Request) -> web.Response:
    """GET check-runs/{id}."""
    repo = repo_of(request)
    run = _run_of(request, repo)
    return web.json_response(checks.render_run(core_of(request).world, repo, run, rest=True))


@routes.patch(R + "/check-runs/{run_id:\\d+}")
async def patch_run(request: web.Request) -> web.Response:
    """PATCH check-runs/{id}: only the app that created the run may change it."""
    repo = repo_of(request)
    run = _run_of(request, repo)
    who = actor(request)
    if run.app_id != who.app.id:
        raise ApiError(403, "Invalid app_id for this check run")
    body = await body_of(request)
    body.pop("head_sha", None)  # not updatable; GitHub ignores it
    update_run(core_of(request), repo, run, body, who.user)
    return web.json_response(checks.render_run(core_of(request).world, repo, run, rest=True))


@routes.get(R + "/check-runs/{run_id:\\d+}/annotations")
async def list_annotations(request: web.Request) -> web.Response:
    """GET check-runs/{id}/annotations."""
    repo = repo_of(request)
    run = _run_of(request, repo)
    return paginate(request, [checks.render_annotation(repo, run, a) for a in run.annotations])


def _head(repo: Repo, ref: str) -> str:
    sha = repo.resolve(ref)
    if sha is None:
        invalid(f"No commit found for SHA: {ref}")
    return sha


@routes.get(R + "/commits/{ref}/check-runs")
async def runs_for_ref(request: web.Request) -> web.Response:
    """GET commits/{ref}/check-runs (check_name, status, app_id, filter=latest|all)."""
    repo = repo_of(request)
    sha = _head(repo, request.match_info["ref"])
    query = request.query
    runs = [r for r in repo.runs.values() if r.head_sha == sha]
    if query.get("filter", "latest") == "latest":
        latest: dict[tuple[int, str], CheckRun] = {}
        for run in runs:
            latest[(run.app_id, run.name)] = run
        runs = list(latest.values())
    if "check_name" in query:
        runs = [r for r in runs if r.name == query["check_name"]]
    if "status" in query:
        if query["status"] not in checks.STATUSES:
            invalid("Invalid request.\n\nstatus must be one of queued, in_progress, completed.")
        runs = [r for r in runs if r.status == query["status"]]
    if "app_id" in query:
        runs = [r for r in runs if str(r.app_id) == query["app_id"]]
    runs.sort(key=lambda r: r.id, reverse=True)
    world = core_of(request).world
    items = [checks.render_run(world, repo, r, rest=True) for r in runs]
    return paginate(request, items, wrap="check_runs")


@routes.get(R + "/commits/{ref}/check-suites")
async def suites_for_ref(request: web.Request) -> web.Response:
    """GET commits/{ref}/check-suites (app_id, check_name)."""
    repo = repo_of(request)
    sha = _head(repo, request.match_info["ref"])
    suites = [s for s in repo.suites.values() if s.head_sha == sha]
    if "app_id" in request.query:
        suites = [s for s in suites if str(s.app_id) == request.query["app_id"]]
    if "check_name" in request.query:
        name = request.query["check_name"]
        suites = [s for s in suites if any(repo.runs[i].name == name for i in s.runs)]
    world = core_of(request).world
    items = [checks.render_suite(world, repo, s, rest=True) for s in suites]
    return paginate(request, items, wrap="check_suites")


@routes.get(R + "/check-suites/{suite_id:\\d+}")
async def get_suite(request: web.Request) -> web.Response:
    """GET check-suites/{id}."""
    repo = repo_of(request)
    suite = _suite_of(request, repo)
    return web.json_response(checks.render_suite(core_of(request).world, repo, suite, rest=True))


def rerequest_suite(core: Core, repo: Repo, suite: CheckSuite, sender: User) -> None:
    """Ask the suite's app to run it again: the CI re-runs; the app under test gets a webhook."""
    if suite.app_id == core.ci_app.id and core.ci is not None:
        core.ci.rerun_suite(repo, suite)
    elif suite.app_id == core.app.id:
        checks.announce_suite(core, repo, suite, "rerequested", sender)


def rerequest_run(core: Core, repo: Repo, run: CheckRun, sender: User) -> None:
    """Ask a run's app to run it again (only the owning app hears of it)."""
    if run.app_id == core.ci_app.id and core.ci is not None:
        core.ci.rerun_check(repo, repo.suites[run.suite_id], run.name)
    elif run.app_id == core.app.id:
        checks.announce_run(core, repo, run, "rerequested", sender)


@routes.post(R + "/check-suites/{suite_id:\\d+}/rerequest")
async def post_rerequest_suite(request: web.Request) -> web.Response:
    """POST check-suites/{id}/rerequest: 201 {}; 403 for an Actions suite (the Actions API)."""
    repo = repo_of(request)
    suite = _suite_of(request, repo)
    if suite.app_id == core_of(request).actions_app.id:
        raise ApiError(403, "Resource not accessible by integration")
    rerequest_suite(core_of(request), repo, suite, actor(request).user)
    return web.json_response({}, status=201)


@routes.post(R + "/check-runs/{run_id:\\d+}/rerequest")
async def post_rerequest_run(request: web.Request) -> web.Response:
    """POST check-runs/{id}/rerequest: 201 {}."""
    repo = repo_of(request)
    run = _run_of(request, repo)
    rerequest_run(core_of(request), repo, run, actor(request).user)
    return web.json_response({}, status=201)
