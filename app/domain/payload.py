"""The parts of a webhook payload Autopack reads, as typed values.

Pure: a delivery's bytes in, a frozen `Payload` out, or `MalformedPayload` naming what is wrong.
Every reader of a delivery (the endpoint's filter, the triggers, the installation handlers, the
run intake) reads these values and never the raw JSON, so a payload whose fields have the wrong
types (`{"check_run": "x"}`, `{"label": 5}`) is refused once, here, rather than failing wherever
it is first touched. Parsing is strict (no "5" for 5) and bounded: JSON nested deeper than the
parser's limit (a few hundred levels; GitHub's payloads nest about ten) or that is not UTF-8 is
malformed, never a RecursionError.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

# GitHub logins are letters, digits and hyphens; GitHub Enterprise Server also keeps `_` and `.`
# from its identity provider. Apps act as `<slug>[bot]`. Repository names are never . or ..
_OWNER = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"


def _not_dot_segment(full_name: str) -> str:
    if full_name.rpartition("/")[2] in (".", ".."):
        raise ValueError("a repository is never named . or ..")
    return full_name


Login = Annotated[str, StringConstraints(pattern=rf"^{_OWNER}(\[bot\])?$")]
FullName = Annotated[
    str,
    StringConstraints(pattern=rf"^{_OWNER}/[A-Za-z0-9_.-]{{1,100}}$"),
    AfterValidator(_not_dot_segment),
]
Action = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")]
AccountType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{0,32}$")]
# Ids fit the database's BIGINT columns, issue numbers its INTEGER ones.
PositiveId = Annotated[int, Field(ge=1, le=2**63 - 1)]
IssueNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]


class MalformedPayload(ValueError):
    """A payload that is not JSON, or lacks (or mistypes) what its event promises."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class User(_Part):
    """A sender or author."""

    login: Login
    type: AccountType = ""


class Repository(_Part):
    """The repository an event happened in."""

    full_name: FullName


class InstalledRepository(_Part):
    """A repository listed in an installation event."""

    id: PositiveId
    full_name: FullName
    private: bool


class Installation(_Part):
    """The installation a delivery is for (installation events also carry the account)."""

    id: PositiveId
    account: User | None = None
    repository_selection: Literal["all", "selected"] = "selected"


class Label(_Part):
    """A label added or removed."""

    name: str


class Issue(_Part):
    """The issue (or pull request) an issues or issue_comment event is about."""

    number: IssueNumber
    title: str = ""
    body: str | None = None
    state: str = "open"
    pull_request: dict[str, Any] | None = None
    labels: tuple[Label, ...] = ()


class Comment(_Part):
    """A comment on an issue."""

    body: str | None = None
    user: User | None = None


class App(_Part):
    """The app that owns a check run or suite."""

    id: PositiveId


class CheckRun(_Part):
    """A check run (only what the CI wake-up and the Retry button need)."""

    id: PositiveId
    head_sha: str = ""
    external_id: str | None = None
    app: App | None = None


class CheckSuite(_Part):
    """A check suite."""

    head_sha: str = ""
    app: App | None = None


class RequestedAction(_Part):
    """The button pressed on a check run."""

    identifier: str


class PushCommit(_Part):
    """One commit of a push: the files it touched."""

    added: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class PullSide(_Part):
    """The head or base of a pull request: its commit and its repository."""

    sha: str = ""
    repo: Repository | None = None


class PullRequest(_Part):
    """A pull request (only what the ruleset check needs: where head and base are)."""

    head: PullSide
    base: PullSide


class BodyChange(_Part):
    """The previous value of an edited field."""

    previous: str | None = Field(default=None, alias="from")


class Changes(_Part):
    """What an `edited` action changed."""

    body: BodyChange | None = None


class Payload(_Part):
    """Every part of a delivery Autopack reads; a part an event does not carry is None."""

    action: Action | None = None
    sender: User | None = None
    repository: Repository | None = None
    installation: Installation | None = None
    issue: Issue | None = None
    label: Label | None = None
    comment: Comment | None = None
    changes: Changes | None = None
    check_run: CheckRun | None = None
    check_suite: CheckSuite | None = None
    requested_action: RequestedAction | None = None
    pull_request: PullRequest | None = None
    # push: the branch, the new head, whether the ref was deleted, the commits' files
    ref: str | None = None
    after: str | None = None
    deleted: bool = False
    commits: tuple[PushCommit, ...] = ()
    # status: the commit and the state of one commit status
    sha: str | None = None
    state: Literal["pending", "success", "failure", "error"] | None = None
    repositories: tuple[InstalledRepository, ...] = ()
    repositories_added: tuple[InstalledRepository, ...] = ()
    repositories_removed: tuple[InstalledRepository, ...] = ()

    @property
    def installation_id(self) -> int | None:
        """The installation the delivery is for, if it names one."""
        return self.installation.id if self.installation is not None else None

    @property
    def repository_name(self) -> str:
        """`owner/name`, or "" when the delivery names no repository."""
        return self.repository.full_name if self.repository is not None else ""


# The events Autopack acts on, each with the parts its handlers need. Anything else is
# acknowledged and dropped by the endpoint.
EVENT_PARTS: dict[str, tuple[str, ...]] = {
    "check_run": ("repository", "sender", "check_run"),
    "installation": ("installation",),
    "installation_repositories": ("installation",),
    "issue_comment": ("repository", "sender", "issue", "comment"),
    "issues": ("repository", "sender", "issue"),
    "pull_request": ("repository", "pull_request"),
    "push": ("repository", "ref"),
    "status": ("repository", "sha", "state"),
}


def parse_payload(event: str, body: bytes | str) -> Payload:
    """The typed payload of a delivery of `event`; MalformedPayload when it is not one."""
    try:
        payload = Payload.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedPayload(_first_error(exc)) from None
    missing = [part for part in EVENT_PARTS.get(event, ()) if getattr(payload, part) is None]
    if missing:
        raise MalformedPayload(f"the {event} delivery has no {', '.join(missing)}")
    return payload


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "json_invalid":
        return "the body is not valid JSON: " + message.removeprefix("Invalid JSON: ")
    if error["type"] == "model_type" and not where:
        return "the body is not a JSON object"
    return f"{where}: {message}" if where else message
