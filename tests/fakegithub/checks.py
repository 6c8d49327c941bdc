"""Check runs and suites: GitHub's validation rules, JSON shapes and their webhook announcements."""

from __future__ import annotations

from typing import Any

from tests.fakegithub import render, render_pulls
from tests.fakegithub.core import Core
from tests.fakegithub.state import CheckRun, CheckSuite, Repo, User, World, node_id, now_iso

STATUSES = ("queued", "in_progress", "completed")
ACTIONS_ONLY_STATUSES = ("waiting", "requested", "pending")
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "stale",
    "timed_out",
)
LEVELS = ("notice", "warning", "failure")
MAX_TEXT = 65535
MAX_ANNOTATIONS = 50
MAX_ACTIONS = 3
ANNOTATION_FIELDS = ("path", "start_line", "end_line", "annotation_level", "message")


class CheckInvalid(Exception):
    """A request GitHub answers 422: message and the `errors` list."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


def _invalid(field: str, code: str = "invalid", message: str | None = None) -> CheckInvalid:
    error: dict[str, Any] = {"resource": "CheckRun", "field": field, "code": code}
    if message is not None:
        error["message"] = message
    return CheckInvalid("Validation Failed", [error])


def _schema(message: str) -> CheckInvalid:
    """GitHub's answer to a body that fails the route's JSON schema."""
    return CheckInvalid(f"Invalid request.\n\n{message}")


def _check_str(body: dict[str, Any], key: str) -> None:
    if key in body and body[key] is not None and not isinstance(body[key], str):
        raise _schema(f"For 'properties/{key}', {body[key]!r} is not a string.")


def _validate_output(output: Any) -> None:
    if not isinstance(output, dict):
        raise _schema("For 'properties/output', it is not an object.")
    for key in ("title", "summary"):
        if not isinstance(output.get(key), str):
            raise _schema(f'"{key}" wasn\'t supplied.')
    for key in ("summary", "text"):
        value = output.get(key)
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise _invalid(f"output.{key}", "custom", f"Output {key} exceeds {MAX_TEXT} characters")
    annotations = output.get("annotations", [])
    if not isinstance(annotations, list):
        raise _schema("For 'properties/annotations', it is not an array.")
    if len(annotations) > MAX_ANNOTATIONS:
        raise _invalid("output.annotations", "custom", "Only 50 annotations per request")
    for item in annotations:
        missing = [k for k in ANNOTATION_FIELDS if not isinstance(item, dict) or k not in item]
        if missing:
            raise _schema(f'"{missing[0]}" wasn\'t supplied.')
        if item["annotation_level"] not in LEVELS:
            raise _schema(
                f"For 'properties/annotation_level', {item['annotation_level']!r} is not "
                f"one of {list(LEVELS)}."
            )
        if not isinstance(item["start_line"], int) or not isinstance(item["end_line"], int):
            raise _schema("For 'properties/start_line', it is not an integer.")


def _validate_actions(actions: Any) -> None:
    if not isinstance(actions, list):
        raise _schema("For 'properties/actions', it is not an array.")
    if len(actions) > MAX_ACTIONS:
        raise _invalid("actions", "custom", "Only 3 actions per check run")
    limits = {"label": 20, "description": 40, "identifier": 20}
    for action in actions:
        for key, limit in limits.items():
            value = action.get(key) if isinstance(action, dict) else None
            if not isinstance(value, str):
                raise _schema(f'"{key}" wasn\'t supplied.')
            if len(value) > limit:
                raise _invalid(f"actions.{key}", "custom", f"{key} is too long (max {limit})")


def validate(body: Any, run: CheckRun | None) -> dict[str, Any]:
    """Validate a create (run None) or update body; return the normalised changes."""
    if not isinstance(body, dict):
        raise _schema("Body should be a JSON object")
    if run is None:
        for key in ("name", "head_sha"):
            if body.get(key) is None:
                raise _schema(f'"{key}" wasn\'t supplied.')
    for key in ("name", "head_sha", "details_url", "external_id", "started_at", "completed_at"):
        _check_str(body, key)
    if "name" in body and not body["name"]:
        raise _invalid("name", "missing_field")
    status = body.get("status")
    if status in ACTIONS_ONLY_STATUSES:
        raise _invalid("status", "custom", "Only GitHub Actions can set a status of " + status)
    if status is not None and status not in STATUSES:
        raise _schema(f"For 'properties/status', {status!r} is not one of {list(STATUSES)}.")
    conclusion = body.get("conclusion")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        raise _schema(
            f"For 'properties/conclusion', {conclusion!r} is not one of {list(CONCLUSIONS)}."
        )
    changes = dict(body)
    if conclusion is not None:
        changes["status"] = "completed"  # setting a conclusion completes the run
    elif status == "completed" and (run is None or run.conclusion is None):
        raise _invalid("conclusion", "missing_field", "Conclusion required if status is completed")
    details = body.get("details_url", run.details_url if run else None)
    if conclusion == "action_required" and not details:
        raise _invalid("details_url", "missing_field", "details_url required for action_required")
    if "output" in body:
        _validate_output(body["output"])
    if "actions" in body:
        _validate_actions(body["actions"])
    return changes


def apply(run: CheckRun, changes: dict[str, Any]) -> None:
    """Apply validated changes to a run (annotations accumulate, as on GitHub)."""
    for key in ("name", "details_url", "external_id", "started_at", "completed_at"):
        if key in changes and changes[key] is not None:
            setattr(run, key, changes[key])
    if "status" in changes:
        run.status = changes["status"]
    if changes.get("conclusion") is not None:
        run.conclusion = changes["conclusion"]
    if run.status == "completed" and run.completed_at is None:
        run.completed_at = now_iso()
    if run.status != "queued" and run.started_at is None:
        run.started_at = now_iso()
    if "output" in changes:
        output = changes["output"]
        run.output = {k: output.get(k) for k in ("title", "summary", "text")}
        run.annotations.extend(output.get("annotations", []))
    if "actions" in changes:
        run.actions = list(changes["actions"])


def suite_for(core: Core, repo: Repo, app_id: int, head_sha: str) -> CheckSuite:
    """The app's suite on this commit, created on first use (as GitHub does for check runs)."""
    for suite in repo.suites.values():
        if suite.app_id == app_id and suite.head_sha == head_sha:
            return suite
    branch = next(
        (r.removeprefix("refs/heads/") for r, s in repo.refs.items() if s == head_sha), None
    )
    suite = CheckSuite(core.world.next_id("suite"), app_id, head_sha, branch, before=None)
    repo.suites[suite.id] = suite
    return suite


def refresh_suite(suite: CheckSuite, repo: Repo) -> bool:
    """Recompute a suite's status from its latest runs; True when it just completed."""
    runs = [repo.runs[i] for i in suite.runs]
    latest = {run.name: run for run in runs}.values()
    was = suite.status
    if latest and all(r.status == "completed" for r in latest):
        suite.status = "completed"
        order = ["action_required", "cancelled", "timed_out", "failure", "neutral", "success"]
        found = [r.conclusion for r in latest if r.conclusion in order]
        suite.conclusion = min(found, key=order.index) if found else "success"
        if "stale" in [r.conclusion for r in latest] and not found:
            suite.conclusion = "stale"
    elif any(r.status != "queued" for r in latest):
        suite.status, suite.conclusion = "in_progress", None
    else:
        suite.status, suite.conclusion = "queued", None
    suite.updated_at = now_iso()
    return suite.status == "completed" and was != "completed"


def render_suite(world: World, repo: Repo, suite: CheckSuite, *, rest: bool) -> dict[str, Any]:
    """check-suite (REST, rest=True) or the check_suite object of webhooks."""
    api = f"{world.api_url}/repos/{repo.full_name}/check-suites/{suite.id}"
    body: dict[str, Any] = {
        "id": suite.id,
        "node_id": node_id("CheckSuite", suite.id),
        "head_branch": suite.head_branch,
        "head_sha": suite.head_sha,
        "status": suite.status,
        "conclusion": suite.conclusion,
        "url": api,
        "before": suite.before,
        "after": suite.head_sha,
        "pull_requests": render_pulls.pull_refs(world, repo, suite.head_sha),
        "app": render.app(world, world.apps[suite.app_id]),
        "created_at": suite.created_at,
        "updated_at": suite.updated_at,
        "latest_check_runs_count": len({repo.runs[i].name for i in suite.runs}),
        "check_runs_url": f"{api}/check-runs",
        "rerequestable": True,
        "runs_rerequestable": True,
    }
    commit = repo.git.get_commit(suite.head_sha)
    body["head_commit"] = {
        "id": commit.sha,
        "tree_id": commit.tree,
        "message": commit.message,
        "timestamp": commit.committer.date,
        "author": {"name": commit.author.name, "email": commit.author.email},
        "committer": {"name": commit.committer.name, "email": commit.committer.email},
    }
    if rest:
        body["repository"] = render.repo(world, repo, full=False)
    return body


def render_run(world: World, repo: Repo, run: CheckRun, *, rest: bool) -> dict[str, Any]:
    """check-run (REST) or the check_run object of webhooks (with a fuller check_suite)."""
    api = f"{world.api_url}/repos/{repo.full_name}/check-runs/{run.id}"
    suite = repo.suites[run.suite_id]
    return {
        "id": run.id,
        "name": run.name,
        "node_id": node_id("CheckRun", run.id),
        "head_sha": run.head_sha,
        "external_id": run.external_id,
        "url": api,
        "html_url": f"{render.HTML}/{repo.full_name}/runs/{run.id}",
        "details_url": run.details_url,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "output": {
            "title": run.output.get("title"),
            "summary": run.output.get("summary"),
            "text": run.output.get("text"),
            "annotations_count": len(run.annotations),
            "annotations_url": f"{api}/annotations",
        },
        "check_suite": (
            {"id": suite.id}
            if rest
            else {
                k: v
                for k, v in render_suite(world, repo, suite, rest=False).items()
                if k not in ("latest_check_runs_count", "check_runs_url", "head_commit")
                and not k.startswith("rerequestable")
                and k != "runs_rerequestable"
            }
        ),
        "app": render.app(world, world.apps[run.app_id]),
        "pull_requests": render_pulls.pull_refs(world, repo, run.head_sha),
    }


def render_annotation(repo: Repo, run: CheckRun, item: dict[str, Any]) -> dict[str, Any]:
    """check-annotation."""
    return {
        "path": item["path"],
        "blob_href": f"{render.HTML}/{repo.full_name}/blob/{run.head_sha}/{item['path']}",
        "start_line": item["start_line"],
        "end_line": item["end_line"],
        "start_column": item.get("start_column"),
        "end_column": item.get("end_column"),
        "annotation_level": item["annotation_level"],
        "title": item.get("title", ""),
        "message": item["message"],
        "raw_details": item.get("raw_details", ""),
    }


def announce_run(
    core: Core, repo: Repo, run: CheckRun, action: str, sender: User, **extra: Any
) -> None:
    """Deliver check_run.<action> (created, completed, rerequested, requested_action)."""
    body = {"check_run": render_run(core.world, repo, run, rest=False), **extra}
    core.emit("check_run", action, repo, body, sender)


def announce_suite(core: Core, repo: Repo, suite: CheckSuite, action: str, sender: User) -> None:
    """Deliver check_suite.<action> (completed, rerequested)."""
    body = {"check_suite": render_suite(core.world, repo, suite, rest=False)}
    core.emit("check_suite", action, repo, body, sender)


def record_change(
    core: Core, repo: Repo, run: CheckRun, sender: User, *, created: bool, was_completed: bool
) -> None:
    """Announce a created run and a run that just completed, then its suite if it just finished."""
    suite = repo.suites[run.suite_id]
    completed_now = refresh_suite(suite, repo)
    if created:
        announce_run(core, repo, run, "created", sender)
    if run.status == "completed" and not was_completed:
        announce_run(core, repo, run, "completed", sender)
    if completed_now:
        announce_suite(core, repo, suite, "completed", sender)
