"""GitHub Actions routes: list and read workflow runs, re-run a run's failed jobs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakegithub import checks, render, render_pulls
from tests.fakegithub.respond import ApiError, core_of, not_found, paginate, repo_of
from tests.fakegithub.state import Repo, WorkflowRun, World, node_id

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}"
WORKFLOW_ID = 161335  # the one workflow file every simulated run comes from


def render_workflow_run(world: World, repo: Repo, run: WorkflowRun) -> dict[str, Any]:
    """workflow-run; status and conclusion are its check suite's."""
    suite = repo.suites[run.suite_id]
    status, conclusion = _status(repo, run)
    api = f"{world.api_url}/repos/{repo.full_name}"
    here = f"{api}/actions/runs/{run.id}"
    minimal = render.repo(world, repo, full=False)
    head = checks.render_suite(world, repo, suite, rest=False)["head_commit"]
    return {
        "id": run.id,
        "name": run.name,
        "node_id": node_id("WorkflowRun", run.id),
        "check_suite_id": suite.id,
        "check_suite_node_id": node_id("CheckSuite", suite.id),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.path,
        "display_title": head["message"].splitlines()[0] if head["message"] else run.name,
        "run_number": run.run_number,
        "run_attempt": run.run_attempt,
        "referenced_workflows": [],
        "event": run.event,
        "status": status,
        "conclusion": conclusion,
        "workflow_id": WORKFLOW_ID,
        "url": here,
        "html_url": f"{render.HTML}/{repo.full_name}/actions/runs/{run.id}",
        "pull_requests": render_pulls.pull_refs(world, repo, run.head_sha),
        "created_at": run.created_at,
        "updated_at": suite.updated_at,
        "actor": render.user(world, run.actor),
        "triggering_actor": render.user(world, run.actor),
        "run_started_at": run.run_started_at,
        "jobs_url": f"{here}/jobs",
        "logs_url": f"{here}/logs",
        "check_suite_url": f"{api}/check-suites/{suite.id}",
        "artifacts_url": f"{here}/artifacts",
        "cancel_url": f"{here}/cancel",
        "rerun_url": f"{here}/rerun",
        "previous_attempt_url": (
            f"{here}/attempts/{run.run_attempt - 1}" if run.run_attempt > 1 else None
        ),
        "workflow_url": f"{api}/actions/workflows/{WORKFLOW_ID}",
        "head_commit": head,
        "repository": minimal,
        "head_repository": minimal,
        "head_repository_id": repo.id,
    }


def _status(repo: Repo, run: WorkflowRun) -> tuple[str, str | None]:
    """The run's status and conclusion: its suite's, once GitHub has concluded the run."""
    suite = repo.suites[run.suite_id]
    if suite.status == "completed" and repo.ci is not None and not repo.ci.concluded():
        return "in_progress", None
    return suite.status, suite.conclusion


def _run_of(request: web.Request, repo: Repo) -> WorkflowRun:
    run = repo.workflow_runs.get(int(request.match_info["run_id"]))
    if run is None:
        not_found()
    return run


@routes.get(R + "/actions/runs")
async def list_runs(request: web.Request) -> web.Response:
    """GET actions/runs (head_sha, check_suite_id, branch, event, status), newest first."""
    repo = repo_of(request)
    query = request.query
    runs = sorted(repo.workflow_runs.values(), key=lambda r: r.id, reverse=True)
    if "head_sha" in query:
        runs = [r for r in runs if r.head_sha == query["head_sha"]]
    if "check_suite_id" in query:
        runs = [r for r in runs if str(r.suite_id) == query["check_suite_id"]]
    if "branch" in query:
        runs = [r for r in runs if r.head_branch == query["branch"]]
    if "event" in query:
        runs = [r for r in runs if r.event == query["event"]]
    if "status" in query:
        wanted = query["status"]
        runs = [r for r in runs if wanted in _status(repo, r)]
    world = core_of(request).world
    items = [render_workflow_run(world, repo, r) for r in runs]
    return paginate(request, items, wrap="workflow_runs")


@routes.get(R + "/actions/runs/{run_id:\\d+}")
async def get_run(request: web.Request) -> web.Response:
    """GET actions/runs/{id}."""
    repo = repo_of(request)
    run = _run_of(request, repo)
    return web.json_response(render_workflow_run(core_of(request).world, repo, run))


@routes.post(R + "/actions/runs/{run_id:\\d+}/rerun-failed-jobs")
async def rerun_failed_jobs(request: web.Request) -> web.Response:
    """POST actions/runs/{id}/rerun-failed-jobs: 201 {}; 403 until the run has concluded (GitHub
    refuses any re-run of a run in progress, re-runs included), or when scripted."""
    repo = repo_of(request)
    run = _run_of(request, repo)
    core = core_of(request)
    refusal = repo.ci.rerun_refusal if repo.ci is not None else None
    if refusal is not None:
        raise ApiError(*refusal)
    if _status(repo, run)[0] != "completed":
        raise ApiError(403, "This workflow is already running")
    if core.ci is not None:
        core.ci.rerun_failed_jobs(repo, run)
    return web.json_response({}, status=201)
