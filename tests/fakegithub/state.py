"""The simulator's data model: users, apps, installations, tokens, repositories and their objects.

Plain mutable records owned by one `World`; no I/O here. Routes and helpers change them and
then announce the change through the core (webhooks, CI).
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakegithub.gitstore import Commit, GitError, GitStore


def now_iso() -> str:
    """The current UTC time as GitHub writes it (seconds, Z suffix)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_at(epoch: float) -> str:
    """An epoch time as GitHub writes it."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    """A legacy-format GraphQL node id ("MDU6SXNzdWUx"-style), unique per kind and number."""
    raw = f"0{len(kind)}:{kind}{number}"
    return base64.b64encode(raw.encode()).decode()


PERMISSIONS = ("admin", "maintain", "write", "triage", "read", "none")


@dataclass
class User:
    """A GitHub account: a person, an organization or an app's bot."""

    id: int
    login: str
    type: str  # "User" | "Organization" | "Bot"

    @property
    def node_id(self) -> str:
        """The account's node id."""
        return node_id(
            {"Organization": "Organization", "Bot": "Bot"}.get(self.type, "User"), self.id
        )


@dataclass(frozen=True)
class AppRegistration:
    """A GitHub App: id, slug, keys and webhook secret."""

    id: int
    slug: str
    name: str
    private_key_pem: str
    webhook_secret: str
    public_key_pem: str
    client_id: str
    owner_login: str

    @property
    def bot_login(self) -> str:
        """The login of the app's bot user, as GitHub names it."""
        return f"{self.slug}[bot]"


@dataclass
class Installation:
    """An app installed on an account, for all its repositories or a selection."""

    id: int
    app_id: int
    account: User
    repos: set[str] | None  # lower-case full names; None: every repository of the account
    created_at: str = field(default_factory=now_iso)

    def covers(self, repo: Repo) -> bool:
        """Whether a token of this installation may see the repository."""
        if repo.owner.login.lower() != self.account.login.lower():
            return False
        return self.repos is None or repo.full_name.lower() in self.repos


@dataclass
class Token:
    """An installation access token."""

    token: str
    installation_id: int
    app_id: int
    expires_at: float


@dataclass
class Label:
    """A repository label."""

    id: int
    name: str
    color: str = "ededed"
    description: str | None = None
    default: bool = False


@dataclass
class Comment:
    """An issue (or pull request conversation) comment."""

    id: int
    issue_number: int
    body: str
    user: User
    app_id: int | None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class Issue:
    """An issue; a pull request is an issue too (same number space) with `pull` set."""

    id: int
    number: int
    title: str
    body: str | None
    user: User
    app_id: int | None
    labels: list[Label] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None
    closed_by: User | None = None
    comments: int = 0
    locked: bool = False
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    pull: Pull | None = None
    editor: User | None = None  # who last edited the body (GraphQL `editor`), and when
    last_edited_at: str | None = None


@dataclass
class Pull:
    """The pull-request half of an issue."""

    id: int
    number: int
    head_ref: str
    base_ref: str
    draft: bool
    merged: bool = False


@dataclass
class CheckSuite:
    """All check runs of one app on one head commit."""

    id: int
    app_id: int
    head_sha: str
    head_branch: str | None
    before: str | None
    status: str = "queued"
    conclusion: str | None = None
    runs: list[int] = field(default_factory=list)
    attempts: int = 1  # 1 + how many times it was rerequested
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)


@dataclass
class CheckRun:
    """One check run."""

    id: int
    app_id: int
    suite_id: int
    head_sha: str
    name: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    external_id: str = ""
    details_url: str | None = None
    output: dict[str, Any] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CommitStatus:
    """One commit status (GitHub keeps every one; the newest per context counts)."""

    id: int
    sha: str
    state: str  # error | failure | pending | success
    context: str
    creator: User
    description: str | None = None
    target_url: str | None = None
    created_at: str = field(default_factory=now_iso)


@dataclass
class WorkflowRun:
    """A GitHub Actions workflow run: one per Actions check suite, re-run in place."""

    id: int
    suite_id: int
    head_sha: str
    head_branch: str | None
    run_number: int
    actor: User
    name: str = "CI"
    path: str = ".github/workflows/ci.yml"
    event: str = "push"
    run_attempt: int = 1
    created_at: str = field(default_factory=now_iso)
    run_started_at: str = field(default_factory=now_iso)


@dataclass
class Repo:
    """A repository: git objects, refs and everything that hangs off it."""

    id: int
    name: str
    owner: User
    private: bool
    default_branch: str
    git: GitStore
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> sha
    protected: set[str] = field(default_factory=set)
    issues: dict[int, Issue] = field(default_factory=dict)
    labels: dict[str, Label] = field(default_factory=dict)  # lower-case name -> label
    all_comments: dict[int, Comment] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)  # lower-case login -> role
    suites: dict[int, CheckSuite] = field(default_factory=dict)
    runs: dict[int, CheckRun] = field(default_factory=dict)
    statuses: list[CommitStatus] = field(default_factory=list)  # oldest first
    workflow_runs: dict[int, WorkflowRun] = field(default_factory=dict)
    ci: Any = None  # ci.CIScript | None (typed loosely: ci.py imports this module)
    ci_heads: dict[str, int] = field(default_factory=dict)  # check name -> heads run so far
    created_at: str = field(default_factory=now_iso)
    pushed_at: str = field(default_factory=now_iso)

    @property
    def full_name(self) -> str:
        """owner/name."""
        return f"{self.owner.login}/{self.name}"

    def ref(self, name: str) -> str | None:
        """The sha a ref points at ("heads/main", "refs/heads/main" or "main"), or None."""
        for candidate in (name, f"refs/{name}", f"refs/heads/{name}", f"refs/tags/{name}"):
            if candidate.startswith("refs/") and candidate in self.refs:
                return self.refs[candidate]
        return None

    def resolve(self, ref_or_sha: str) -> str | None:
        """A branch, tag, ref or commit sha (full) to a commit sha, or None."""
        sha = self.ref(ref_or_sha)
        if sha is None and len(ref_or_sha) == 40:
            sha = ref_or_sha
        if sha is None:
            return None
        try:
            while self.git.object_type(sha) == "tag":
                sha = self.git.get_tag(sha).object_sha
            return sha if self.git.object_type(sha) == "commit" else None
        except GitError:
            return None

    def files(self, ref: str) -> dict[str, bytes]:
        """Path -> content of the tree at a ref."""
        sha = self.resolve(ref)
        if sha is None:
            raise KeyError(ref)
        return {path: content for path, (_mode, content) in self.git.files_at(sha).items()}

    def commits(self, ref: str) -> list[Commit]:
        """The first-parent history at a ref, newest first."""
        sha = self.resolve(ref)
        out: list[Commit] = []
        while sha is not None:
            commit = self.git.get_commit(sha)
            out.append(commit)
            sha = commit.parents[0] if commit.parents else None
        return out

    @property
    def pulls(self) -> list[Issue]:
        """Issues that are pull requests."""
        return [issue for issue in self.issues.values() if issue.pull is not None]

    @property
    def check_runs(self) -> list[CheckRun]:
        """Every check run of the repository, oldest first."""
        return list(self.runs.values())

    def comments(self, number: int) -> list[Comment]:
        """The comments on issue or pull request `number`, oldest first."""
        return [c for c in self.all_comments.values() if c.issue_number == number]

    def next_number(self) -> int:
        """The next issue/pull number."""
        return max(self.issues, default=0) + 1


@dataclass
class ManifestCode:
    """The one-hour, one-use `code` of the App manifest flow, for one registered app."""

    app_id: int
    expires_at: float


class World:
    """Everything the simulated GitHub knows, plus id allocation."""

    def __init__(self) -> None:
        self.api_url = "http://127.0.0.1"
        self.users: dict[str, User] = {}
        self.apps: dict[int, AppRegistration] = {}
        self.installations: dict[int, Installation] = {}
        self.tokens: dict[str, Token] = {}
        self.repos: dict[str, Repo] = {}
        self.downloads: dict[str, tuple[str, str]] = {}  # tarball token -> (full name, sha)
        # The App manifest flow: pending codes, the manifest each app was registered from, each
        # app's webhook configuration, and who is signed in on the web pages.
        self.manifest_codes: dict[str, ManifestCode] = {}
        self.app_manifests: dict[int, dict[str, Any]] = {}
        self.hook_configs: dict[int, dict[str, str]] = {}
        self.web_user = "octocat"
        self.manifest_webhook_secrets = True  # False: conversions answer webhook_secret null
        self._ids: dict[str, Iterator[int]] = {}

    def next_id(self, kind: str) -> int:
        """A fresh id for objects of one kind (distinct ranges make mix-ups visible)."""
        if kind not in self._ids:
            start = 1000 + 100000 * (len(self._ids) + 1)
            self._ids[kind] = itertools.count(start)
        return next(self._ids[kind])

    def user(self, login: str, type_: str = "User") -> User:
        """The account with this login, created on first use."""
        key = login.lower()
        if key not in self.users:
            self.users[key] = User(self.next_id("user"), login, type_)
        return self.users[key]

    def find_user(self, login: str) -> User | None:
        """The account with this login, if it exists."""
        return self.users.get(login.lower())

    def bot(self, app: AppRegistration) -> User:
        """The app's bot user."""
        return self.user(app.bot_login, "Bot")

    def get_repo(self, owner: str, name: str) -> Repo | None:
        """A repository by owner and name (case-insensitive, as GitHub)."""
        return self.repos.get(f"{owner}/{name}".lower())

    def installations_of(self, app_id: int) -> list[Installation]:
        """The installations of one app."""
        return [i for i in self.installations.values() if i.app_id == app_id]

    def installation_for(self, app_id: int, repo: Repo) -> Installation | None:
        """The installation of `app_id` that covers `repo`, if any."""
        for inst in self.installations_of(app_id):
            if inst.covers(repo):
                return inst
        return None

    def live_token(self, value: str) -> Token | None:
        """A known, unexpired installation token."""
        token = self.tokens.get(value)
        if token is None or token.expires_at <= time.time():
            return None
        return token
