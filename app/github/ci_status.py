"""CI on GitHub: the check runs and commit statuses of a commit, and asking CI to run again.

Reads return the typed views of `domain/ci.py`. The only writes ask CI to run again and change no
repository content: a GitHub Actions suite is re-run through the Actions API (the failed jobs of
its workflow run), any other app's suite through `rerequest`. GitHub refusing a re-run (403/422)
is a `RerunRefused` with its reason, which the caller turns into a red verdict; but GitHub's 403
"This workflow is already running" is no refusal (see `RerunRequest.ALREADY_RUNNING`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import gidgethub

from app.domain.ci import CheckRunView, StatusView
from app.github.client import RateLimited
from app.github.repo import PER_PAGE, GitHubClient, is_status, repo_vars

# The GitHub Actions app: its suites are workflow runs, re-run through the Actions API.
ACTIONS_SLUG = "github-actions"
REFUSALS = (403, 422)
# GitHub answers 403 with one of these (run level, job level) to any re-run of a workflow run that
# has not concluded yet, whoever asked; checked case-insensitively, as a part of the message.
ALREADY_RUNNING_MESSAGES = (
    "this workflow is already running",
    "the workflow run containing this job is already running",
)


class RerunRefused(Exception):
    """GitHub would not re-run a suite; the message says which and why."""


class RerunRequest(StrEnum):
    """What became of a request to re-run a suite."""

    STARTED = "started"
    # The suite's workflow run has not concluded: a re-run already under way (ours, asked for by
    # a worker that died before it heard the answer, or someone's), or jobs that just ended in a
    # run GitHub has not concluded yet. Nothing was refused: wait, and ask again until a newer
    # run of the check shows or GitHub accepts.
    ALREADY_RUNNING = "already_running"


def check_run_view(data: Mapping[str, Any]) -> CheckRunView:
    """A REST check run as the CI interpreter sees it."""
    suite = data.get("check_suite") or {}
    app = data.get("app") or {}
    output = data.get("output") or {}
    return CheckRunView(
        name=str(data["name"]),
        app_id=int(app.get("id", 0)),
        status=str(data["status"]),
        conclusion=data.get("conclusion"),
        id=int(data["id"]),
        suite_id=int(suite["id"]) if suite.get("id") is not None else None,
        app_slug=str(app.get("slug") or ""),
        title=str(output.get("title") or ""),
        summary=str(output.get("summary") or ""),
        text=str(output.get("text") or ""),
        details_url=str(data.get("details_url") or data.get("html_url") or ""),
    )


def status_view(data: Mapping[str, Any]) -> StatusView:
    """A REST commit status as the CI interpreter sees it."""
    return StatusView(
        context=str(data["context"]),
        state=str(data["state"]),
        id=int(data["id"]),
        description=str(data.get("description") or ""),
        target_url=str(data.get("target_url") or ""),
    )


async def check_runs_for(
    gh: GitHubClient, repo: str, sha: str, *, include_reruns: bool = False
) -> list[CheckRunView]:
    """The check runs on a commit: the latest per name, or every attempt with include_reruns."""
    runs = gh.getiter(
        "/repos/{owner}/{repo}/commits/{sha}/check-runs{?filter,per_page}",
        {
            **repo_vars(repo),
            "sha": sha,
            "filter": "all" if include_reruns else "latest",
            "per_page": PER_PAGE,
        },
        iterable_key="check_runs",
    )
    return [check_run_view(run) async for run in runs]


async def statuses_for(gh: GitHubClient, repo: str, sha: str) -> list[StatusView]:
    """The newest status of each context on a commit (the combined status, every page)."""
    statuses = gh.getiter(
        "/repos/{owner}/{repo}/commits/{sha}/status{?per_page}",
        {**repo_vars(repo), "sha": sha, "per_page": PER_PAGE},
        iterable_key="statuses",
    )
    return [status_view(status) async for status in statuses]


async def commit_parent(gh: GitHubClient, repo: str, sha: str) -> str | None:
    """The first parent of a commit, or None for a root commit."""
    data = await gh.getitem(
        "/repos/{owner}/{repo}/git/commits/{sha}", {**repo_vars(repo), "sha": sha}
    )
    parents = data.get("parents") or []
    return str(parents[0]["sha"]) if parents else None


async def rerun_requested(gh: GitHubClient, repo: str, suite_id: int) -> bool:
    """True when the suite was asked to run again and its new runs have not started: GitHub
    resets a rerequested suite (and a re-run workflow's) to `queued` until they do."""
    suite = await gh.getitem(
        "/repos/{owner}/{repo}/check-suites/{suite_id}", {**repo_vars(repo), "suite_id": suite_id}
    )
    return bool(suite.get("status") == "queued")


async def rerun_suite(
    gh: GitHubClient, repo: str, sha: str, suite_id: int, app_slug: str
) -> RerunRequest:
    """Ask CI to run a suite's failed checks again; RerunRefused when GitHub says no."""
    try:
        if app_slug == ACTIONS_SLUG:
            await _rerun_workflow(gh, repo, sha, suite_id)
        else:
            await gh.post(
                "/repos/{owner}/{repo}/check-suites/{suite_id}/rerequest",
                {**repo_vars(repo), "suite_id": suite_id},
                data={},
            )
    except gidgethub.HTTPException as exc:
        # A rate limit is a reason to wait, not a refusal: it propagates like any outage.
        limited = isinstance(exc, RateLimited | gidgethub.RateLimitExceeded)
        if limited or not is_status(exc, *REFUSALS):
            raise
        if app_slug == ACTIONS_SLUG and _already_running(exc):
            return RerunRequest.ALREADY_RUNNING
        raise RerunRefused(
            f"GitHub refused to re-run check suite {suite_id} "
            f"(HTTP {int(exc.status_code)}: {_message(exc)})"
        ) from exc
    return RerunRequest.STARTED


async def _rerun_workflow(gh: GitHubClient, repo: str, sha: str, suite_id: int) -> None:
    variables = repo_vars(repo)
    runs = gh.getiter(
        "/repos/{owner}/{repo}/actions/runs{?head_sha,check_suite_id,per_page}",
        {**variables, "head_sha": sha, "check_suite_id": suite_id, "per_page": PER_PAGE},
        iterable_key="workflow_runs",
    )
    found = [run async for run in runs if run.get("check_suite_id") == suite_id]
    if not found:
        raise RerunRefused(f"no GitHub Actions workflow run belongs to check suite {suite_id}")
    await gh.post(
        "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
        {**variables, "run_id": int(found[0]["id"])},
        data={},
    )


def _already_running(exc: gidgethub.HTTPException) -> bool:
    message = _message(exc).casefold()
    return is_status(exc, 403) and any(known in message for known in ALREADY_RUNNING_MESSAGES)


def _message(exc: gidgethub.HTTPException) -> str:
    text = str(exc.args[0]) if exc.args else ""
    return text.strip() or exc.status_code.phrase
