"""Autopack's one check run per run: GitHub's size limits enforced here, updates coalesced.

Every limit GitHub answers with a 422 is checked before the request: output text is truncated
with a pointer to the full report, annotations go out 50 per request (the first batch with the
create, the rest as PATCH updates, which GitHub appends), and actions are validated up front.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

from app.domain.triggers import RETRY_ACTION
from app.github.create import create_once
from app.github.repo import PER_PAGE, GitHubClient, repo_vars

MAX_TEXT = 65_535  # output.summary and output.text, in characters
MAX_TITLE = 255  # output.title and annotation titles
MAX_ANNOTATION_BYTES = 64 * 1024  # annotation message and raw_details
MAX_ANNOTATIONS_PER_REQUEST = 50
MAX_ACTIONS = 3
STATUSES = ("queued", "in_progress", "completed")
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
_ELLIPSIS = "…"


@dataclass(frozen=True)
class Annotation:
    """One line-range remark on a file of the head commit."""

    path: str
    start_line: int
    end_line: int
    level: str  # notice | warning | failure
    message: str
    title: str | None = None
    raw_details: str | None = None

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"annotation level {self.level!r} is not one of {LEVELS}")
        if self.start_line < 1 or self.end_line < self.start_line:
            raise ValueError(f"bad line range {self.start_line}-{self.end_line}")

    def to_json(self) -> dict[str, Any]:
        """The REST shape (fields assumed already fitted)."""
        body: dict[str, Any] = {
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "annotation_level": self.level,
            "message": self.message,
        }
        if self.title is not None:
            body["title"] = self.title
        if self.raw_details is not None:
            body["raw_details"] = self.raw_details
        return body


@dataclass(frozen=True)
class CheckRunOutput:
    """The check run's page: title, markdown summary and text, annotations."""

    title: str
    summary: str
    text: str | None = None
    annotations: tuple[Annotation, ...] = ()

    def to_json(self, annotations: Sequence[Annotation] = ()) -> dict[str, Any]:
        """The REST `output` object carrying the given batch of annotations."""
        body: dict[str, Any] = {"title": self.title, "summary": self.summary}
        if self.text is not None:
            body["text"] = self.text
        if annotations:
            body["annotations"] = [a.to_json() for a in annotations]
        return body


@dataclass(frozen=True)
class CheckAction:
    """A button on the check run; GitHub's length limits are checked on construction."""

    label: str
    description: str
    identifier: str

    def __post_init__(self) -> None:
        for field, value, limit in (
            ("label", self.label, 20),
            ("description", self.description, 40),
            ("identifier", self.identifier, 20),
        ):
            if not value or len(value) > limit:
                raise ValueError(f"action {field} {value!r} must be 1-{limit} characters")

    def to_json(self) -> dict[str, str]:
        """The REST shape."""
        return {
            "label": self.label,
            "description": self.description,
            "identifier": self.identifier,
        }


RETRY = CheckAction("Retry run", "Start a new run for this issue", RETRY_ACTION)


def truncate_chars(text: str, limit: int, pointer: str = "") -> str:
    """`text` cut to `limit` characters, ending with `pointer` (or an ellipsis) when cut."""
    if len(text) <= limit:
        return text
    tail = pointer or _ELLIPSIS
    if len(tail) >= limit:
        return tail[:limit]
    return text[: limit - len(tail)] + tail


def truncate_bytes(text: str, limit: int) -> str:
    """`text` cut so its UTF-8 encoding fits in `limit` bytes (never mid-character)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    marker = _ELLIPSIS.encode()
    return data[: limit - len(marker)].decode(errors="ignore") + _ELLIPSIS


def fit_annotation(annotation: Annotation) -> Annotation:
    """An annotation within GitHub's per-field limits."""
    return replace(
        annotation,
        message=truncate_bytes(annotation.message, MAX_ANNOTATION_BYTES) or "(no message)",
        title=None if annotation.title is None else truncate_chars(annotation.title, MAX_TITLE),
        raw_details=None
        if annotation.raw_details is None
        else truncate_bytes(annotation.raw_details, MAX_ANNOTATION_BYTES),
    )


def fit_output(output: CheckRunOutput, full_report: str | None = None) -> CheckRunOutput:
    """The output within GitHub's limits; cut text points at `full_report` (a path or URL)."""
    where = f"the full report is at {full_report}" if full_report else "the report was cut"
    pointer = f"\n\n{_ELLIPSIS}\n\n**Truncated:** {where}."
    return CheckRunOutput(
        title=truncate_chars(output.title, MAX_TITLE) or "Autopack",
        summary=truncate_chars(output.summary, MAX_TEXT, pointer),
        text=None if output.text is None else truncate_chars(output.text, MAX_TEXT, pointer),
        annotations=tuple(fit_annotation(a) for a in output.annotations),
    )


def annotation_batches(annotations: Sequence[Annotation]) -> list[tuple[Annotation, ...]]:
    """Annotations in request-sized batches (at least one, possibly empty, batch)."""
    size = MAX_ANNOTATIONS_PER_REQUEST
    batches = [tuple(annotations[i : i + size]) for i in range(0, len(annotations), size)]
    return batches or [()]


def _check_state(
    status: str | None, conclusion: str | None, details_url: str | None, *, creating: bool
) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status {status!r} is not one of {STATUSES}")
    if conclusion is not None and conclusion not in CONCLUSIONS:
        raise ValueError(f"conclusion {conclusion!r} is not one of {CONCLUSIONS}")
    if creating and status == "completed" and conclusion is None:
        raise ValueError("a completed check run needs a conclusion")
    if creating and conclusion == "action_required" and not details_url:
        raise ValueError("conclusion action_required needs a details_url")


def _check_actions(actions: Sequence[CheckAction]) -> list[dict[str, str]]:
    if len(actions) > MAX_ACTIONS:
        raise ValueError(f"at most {MAX_ACTIONS} actions per check run, got {len(actions)}")
    identifiers = [a.identifier for a in actions]
    if len(set(identifiers)) != len(identifiers):
        raise ValueError(f"duplicate action identifiers: {identifiers}")
    return [a.to_json() for a in actions]


def _run_url(repo: str, check_run_id: int) -> tuple[str, dict[str, Any]]:
    return (
        "/repos/{owner}/{repo}/check-runs/{check_run_id}",
        {**repo_vars(repo), "check_run_id": check_run_id},
    )


async def _send_more_annotations(
    gh: GitHubClient, repo: str, check_run_id: int, output: CheckRunOutput, batches: Sequence[Any]
) -> None:
    url, variables = _run_url(repo, check_run_id)
    for batch in batches:
        await gh.patch(url, variables, data={"output": output.to_json(batch)})


async def create_check_run(
    gh: GitHubClient,
    repo: str,
    head_sha: str,
    name: str,
    external_id: str,
    output: CheckRunOutput,
    status: str = "in_progress",
    details_url: str | None = None,
    *,
    conclusion: str | None = None,
    actions: Sequence[CheckAction] = (),
) -> int:
    """Create the check run (then PATCH any annotations past the first 50); return its id."""
    _check_state(status, conclusion, details_url, creating=True)
    if not name or len(name) > MAX_TITLE:
        raise ValueError(f"check run name must be 1-{MAX_TITLE} characters")
    fitted = fit_output(output)
    first, *rest = annotation_batches(fitted.annotations)
    body: dict[str, Any] = {
        "name": name,
        "head_sha": head_sha,
        "external_id": external_id,
        "status": status,
        "output": fitted.to_json(first),
    }
    if conclusion is not None:
        body["conclusion"] = conclusion
    if details_url is not None:
        body["details_url"] = details_url
    if actions:
        body["actions"] = _check_actions(actions)
    check_run_id = await create_once(
        gh,
        "/repos/{owner}/{repo}/check-runs",
        repo_vars(repo),
        body,
        identify=lambda created: int(created["id"]),
        find=lambda: find_check_run(gh, repo, head_sha, name, external_id),
    )
    await _send_more_annotations(gh, repo, check_run_id, fitted, rest)
    return check_run_id


async def update_check_run(
    gh: GitHubClient,
    repo: str,
    check_run_id: int,
    *,
    status: str | None = None,
    conclusion: str | None = None,
    output: CheckRunOutput | None = None,
    actions: Sequence[CheckAction] = (),
    details_url: str | None = None,
) -> None:
    """PATCH the check run; annotations past the first 50 follow in further PATCHes."""
    _check_state(status, conclusion, details_url, creating=False)
    if status == "completed" and conclusion is None:
        raise ValueError("completing a check run needs a conclusion")
    body: dict[str, Any] = {}
    if status is not None:
        body["status"] = status
    if conclusion is not None:
        body["conclusion"] = conclusion
    if details_url is not None:
        body["details_url"] = details_url
    if actions:
        body["actions"] = _check_actions(actions)
    rest: list[tuple[Annotation, ...]] = []
    fitted: CheckRunOutput | None = None
    if output is not None:
        fitted = fit_output(output)
        first, *rest = annotation_batches(fitted.annotations)
        body["output"] = fitted.to_json(first)
    if not body:
        return
    url, variables = _run_url(repo, check_run_id)
    await gh.patch(url, variables, data=body)
    if fitted is not None:
        await _send_more_annotations(gh, repo, check_run_id, fitted, rest)


async def find_check_run(
    gh: GitHubClient, repo: str, head_sha: str, name: str, external_id: str
) -> int | None:
    """The id of an existing check run with this name and external_id on the commit."""
    runs = gh.getiter(
        "/repos/{owner}/{repo}/commits/{sha}/check-runs{?check_name,filter,per_page}",
        {
            **repo_vars(repo),
            "sha": head_sha,
            "check_name": name,
            "filter": "all",
            "per_page": PER_PAGE,
        },
        iterable_key="check_runs",
    )
    async with aclosing(runs):
        async for run in runs:
            if run.get("external_id") == external_id:
                return int(run["id"])
    return None
