"""FakeGitHub: the running simulator plus the helpers a test uses to drive a scenario."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from tests.fakegithub import checks, issues_ops, payloads
from tests.fakegithub.auth import RateLimits, issue_token, register_app
from tests.fakegithub.ci import CIRunner, CIScript
from tests.fakegithub.core import Core, RequestRecord
from tests.fakegithub.faults import Faults
from tests.fakegithub.gitstore import GitStore, Signature
from tests.fakegithub.hooks import DeliveryRecord
from tests.fakegithub.routes_checks import rerequest_run, rerequest_suite
from tests.fakegithub.server import build_app
from tests.fakegithub.state import (
    PERMISSIONS,
    AppRegistration,
    CheckRun,
    Installation,
    Repo,
    User,
    World,
    now_iso,
)

FileValue = bytes | str | tuple[bytes | str, str]


class FakeGitHub:
    """A GitHub on 127.0.0.1 with one app under test ("autopack") and a CI app ("fake-ci")."""

    def __init__(self, *, app_slug: str = "autopack", rate_limit: int = 5000) -> None:
        self.world = World()
        self.app: AppRegistration = register_app(self.world, app_slug, app_slug.title())
        self.ci_app: AppRegistration = register_app(self.world, "fake-ci", "Fake CI")
        self.actions_app: AppRegistration = register_app(
            self.world, "github-actions", "GitHub Actions", owner="github"
        )
        self.core = Core(self.world, self.app, self.ci_app, self.actions_app)
        self.core.ci = CIRunner(self.core)
        self.core.rate_limits.set_limit(rate_limit)
        self.url = ""
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1:<random port>."""
        self._runner = web.AppRunner(build_app(self.core), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self.world.api_url = self.url
        await self.core.dispatcher.start()

    async def stop(self) -> None:
        """Stop CI tasks, deliveries and the server."""
        await self.core.stop()
        await self.core.dispatcher.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- observation ---------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str | None:
        """Where deliveries go (the app under test's /api/github/webhooks)."""
        return self.core.dispatcher.webhook_url

    @webhook_url.setter
    def webhook_url(self, value: str | None) -> None:
        self.core.dispatcher.webhook_url = value

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every API request, in order."""
        return self.core.request_log

    @property
    def deliveries(self) -> list[DeliveryRecord]:
        """Every webhook delivery attempt, in order."""
        return self.core.dispatcher.records

    @property
    def unknown_routes(self) -> list[str]:
        """Requests no route matched ("METHOD /path"); the fixture fails the test on any."""
        return self.core.unknown_routes

    @property
    def faults(self) -> Faults:
        """Faults on demand."""
        return self.core.faults

    @property
    def rate_limits(self) -> RateLimits:
        """The per-installation budgets (set_limit(n), reset_all())."""
        return self.core.rate_limits

    @property
    def subscribed_events(self) -> set[str]:
        """The events the app under test receives (edit to narrow)."""
        return self.core.subscribed_events

    def calls(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[RequestRecord]:
        """The request log filtered by method and path prefix."""
        return [
            r
            for r in self.core.request_log
            if (method is None or r.method == method.upper())
            and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def repo(self, full_name: str) -> Repo:
        """A repository by full name (KeyError when absent)."""
        return self.world.repos[full_name.lower()]

    def user(self, login: str) -> User:
        """A person's account (created on first use)."""
        return self.world.user(login)

    def check_run(self, check_run_id: int) -> tuple[Repo, CheckRun]:
        """A check run and its repository."""
        for repo in self.world.repos.values():
            if check_run_id in repo.runs:
                return repo, repo.runs[check_run_id]
        raise KeyError(check_run_id)

    # -- setup ---------------------------------------------------------------------------------

    def install(
        self, account: str, repos: list[str] | None = None, *, account_type: str = "Organization"
    ) -> Installation:
        """Install the app on an account (all repositories, or the named ones); no webhook."""
        owner = self.world.find_user(account) or self.world.user(account, account_type)
        selected = None if repos is None else {self._full(account, r).lower() for r in repos}
        inst = Installation(self.world.next_id("installation"), self.app.id, owner, selected)
        self.world.installations[inst.id] = inst
        return inst

    async def install_app(
        self, account: str, repos: list[str] | None = None, sender: str = "octocat"
    ) -> Installation:
        """install(), then deliver installation.created as GitHub does."""
        inst = self.install(account, repos)
        covered = [r for r in self.world.repos.values() if inst.covers(r)]
        body = payloads.installation(self.world, inst, covered)
        self.core.emit("installation", "created", None, body, self.user(sender), inst)
        await self.core.dispatcher.join()
        return inst

    def installation_token(self, installation: Installation) -> str:
        """A fresh installation token without the JWT round trip (for tests of the simulator)."""
        return issue_token(self.world, installation.id, installation.app_id).token

    @staticmethod
    def _full(account: str, repo: str) -> str:
        return repo if "/" in repo else f"{account}/{repo}"

    def create_repo(
        self,
        full_name: str,
        files: Mapping[str, FileValue] | None = None,
        *,
        default_branch: str = "main",
        installation: Installation | None = None,
        private: bool = False,
        ci: CIScript | None = None,
        protected_branches: Iterable[str] = (),
        owner_type: str = "Organization",
    ) -> Repo:
        """A repository whose default branch holds `files` (None: a README; {}: empty repo)."""
        owner_login, name = full_name.split("/", 1)
        owner = self.world.find_user(owner_login) or self.world.user(owner_login, owner_type)
        repo = Repo(
            id=self.world.next_id("repo"),
            name=name,
            owner=owner,
            private=private,
            default_branch=default_branch,
            git=GitStore(),
            ci=ci,
            protected=set(protected_branches),
        )
        self.world.repos[repo.full_name.lower()] = repo
        if files is None:
            files = {"README.md": f"# {name}\n"}
        if files:
            author = Signature("Octo Cat", "octocat@users.noreply.github.com", now_iso())
            sha = repo.git.commit_files(files, [], "Initial commit", author)
            repo.refs[f"refs/heads/{default_branch}"] = sha
        if installation is not None and installation.repos is not None:
            installation.repos.add(repo.full_name.lower())
        return repo

    def set_permission(self, full_name: str, user: str, permission: str) -> None:
        """A collaborator's role: admin, maintain, write, triage, read or none."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        self.world.user(user)
        self.repo(full_name).permissions[user.lower()] = permission

    # -- people acting -------------------------------------------------------------------------

    async def open_issue(self, full_name: str, title: str, body: str, user: str = "octocat") -> int:
        """A person opens an issue (issues.opened)."""
        repo = self.repo(full_name)
        issue = issues_ops.create_issue(self.core, repo, title, body, self.user(user), None)
        await self.core.dispatcher.join()
        return issue.number

    async def label_issue(
        self, full_name: str, number: int, label: str, sender: str = "octocat"
    ) -> None:
        """A person adds a label (issues.labeled / pull_request.labeled)."""
        repo = self.repo(full_name)
        issues_ops.add_labels(self.core, repo, repo.issues[number], [label], self.user(sender))
        await self.core.dispatcher.join()

    async def unlabel_issue(
        self, full_name: str, number: int, label: str, sender: str = "octocat"
    ) -> None:
        """A person removes a label (issues.unlabeled)."""
        repo = self.repo(full_name)
        if not issues_ops.remove_label(
            self.core, repo, repo.issues[number], label, self.user(sender)
        ):
            raise KeyError(f"issue {number} has no label {label!r}")
        await self.core.dispatcher.join()

    async def comment(self, full_name: str, number: int, body: str, sender: str = "octocat") -> int:
        """A person comments (issue_comment.created); returns the comment id."""
        repo = self.repo(full_name)
        comment = issues_ops.add_comment(
            self.core, repo, repo.issues[number], body, self.user(sender), None
        )
        await self.core.dispatcher.join()
        return comment.id

    async def edit_issue(
        self, full_name: str, number: int, body: str, sender: str = "octocat"
    ) -> None:
        """A person edits an issue's description (issues.edited with changes.body)."""
        repo = self.repo(full_name)
        issues_ops.update_issue(
            self.core, repo, repo.issues[number], {"body": body}, self.user(sender)
        )
        await self.core.dispatcher.join()

    async def close_issue(self, full_name: str, number: int, sender: str = "octocat") -> None:
        """A person closes an issue or pull request."""
        repo = self.repo(full_name)
        issues_ops.update_issue(
            self.core, repo, repo.issues[number], {"state": "closed"}, self.user(sender)
        )
        await self.core.dispatcher.join()

    async def push(
        self,
        full_name: str,
        branch: str,
        files: Mapping[str, FileValue | None],
        message: str = "Update from a person",
        sender: str = "octocat",
    ) -> str:
        """A person pushes one commit changing `files` (None deletes) onto `branch`."""
        repo = self.repo(full_name)
        parent = repo.ref(f"heads/{branch}") or repo.ref(f"heads/{repo.default_branch}")
        items: list[dict[str, Any]] = []
        for path, value in files.items():
            if value is None:
                items.append({"path": path, "mode": "100644", "type": "blob", "sha": None})
                continue
            content, mode = value if isinstance(value, tuple) else (value, "100644")
            data = content.encode() if isinstance(content, str) else content
            items.append(
                {"path": path, "mode": mode, "type": "blob", "sha": repo.git.put_blob(data)}
            )
        base_tree = repo.git.get_commit(parent).tree if parent else None
        tree = repo.git.create_tree(items, base_tree)
        who = self.user(sender)
        author = Signature(who.login, f"{who.id}+{who.login}@users.noreply.github.com", now_iso())
        sha = repo.git.put_commit(tree, [parent] if parent else [], message, author)
        self.core.set_ref(repo, f"refs/heads/{branch}", sha, who)
        await self.core.dispatcher.join()
        return sha

    async def click_action(
        self, check_run_id: int, identifier: str, sender: str = "octocat"
    ) -> None:
        """A person clicks a check run's action button (check_run.requested_action)."""
        repo, run = self.check_run(check_run_id)
        if identifier not in {a["identifier"] for a in run.actions}:
            raise KeyError(f"check run {check_run_id} has no action {identifier!r}")
        if run.app_id == self.app.id:
            checks.announce_run(
                self.core,
                repo,
                run,
                "requested_action",
                self.user(sender),
                requested_action={"identifier": identifier},
            )
        await self.core.dispatcher.join()

    async def rerequest_check_run(self, check_run_id: int, sender: str = "octocat") -> None:
        """A person clicks "Re-run" on a check run (only its app hears of it)."""
        repo, run = self.check_run(check_run_id)
        rerequest_run(self.core, repo, run, self.user(sender))
        await self.core.dispatcher.join()

    async def rerequest_check_suite(self, suite_id: int, sender: str = "octocat") -> None:
        """A person clicks "Re-run all checks"."""
        for repo in self.world.repos.values():
            if suite_id in repo.suites:
                rerequest_suite(self.core, repo, repo.suites[suite_id], self.user(sender))
        await self.core.dispatcher.join()

    # -- deliveries ----------------------------------------------------------------------------

    async def deliver(self, event: str, payload: dict[str, Any]) -> DeliveryRecord:
        """Sign and POST an arbitrary payload to webhook_url."""
        return await self.core.dispatcher.enqueue(event, payload)

    async def redeliver(self, guid: str) -> DeliveryRecord:
        """Deliver a recorded payload again with the same X-GitHub-Delivery."""
        record = self.core.dispatcher.by_guid(guid)
        if record is None:
            raise KeyError(guid)
        return await self.core.dispatcher.enqueue(
            record.event, record.payload, guid=guid, redelivery=True
        )

    def release_held(self) -> None:
        """Send deliveries held by faults.reorder_next, newest first."""
        self.core.dispatcher.release_held()

    async def idle(self, timeout: float = 10) -> None:  # noqa: ASYNC109 - pinned signature
        """Wait until no CI task or webhook delivery is pending."""
        await self.core.idle(timeout)
