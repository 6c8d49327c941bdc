"""Simulated CI that checks every new branch head from a script.

It reports one of three ways (`CIScript.via`): check runs of a separate app ("fake-ci"), commit
statuses only (as Jenkins, Buildkite and many others do), or GitHub Actions (check suites owned by
the `github-actions` app, each a workflow run that the Actions API re-runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.fakegithub import checks, statuses
from tests.fakegithub.core import Core
from tests.fakegithub.state import AppRegistration, CheckRun, CheckSuite, Repo, WorkflowRun, now_iso

DEFAULT_CHECKS = ("tests", "lint")
VIAS = ("checks", "statuses", "actions")
PASSING = ("success", "neutral", "skipped")


@dataclass(frozen=True)
class Behaviour:
    """How one named check behaves."""

    kind: str  # "pass" | "fail_times" | "always_fail" | "flaky" | "hang" | "gone_after"
    n: int = 0

    def reports(self, head_index: int) -> bool:
        """Whether the check runs at all on the head_index-th head (0-based)."""
        return self.kind != "gone_after" or head_index < self.n

    def conclusion(self, head_index: int, attempt: int) -> str | None:
        """success/failure for the head_index-th head (0-based) on attempt (1-based); None hangs."""
        if self.kind == "hang":
            return None
        if self.kind == "always_fail":
            return "failure"
        if self.kind == "fail_times":
            return "failure" if head_index < self.n else "success"
        if self.kind == "flaky":
            return "failure" if attempt == 1 else "success"
        return "success"


PASS = Behaviour("pass")
ALWAYS_FAIL = Behaviour("always_fail")
FLAKY = Behaviour("flaky")
HANG = Behaviour("hang")


def fail_times(n: int) -> Behaviour:
    """Fails on the first n heads, then passes."""
    return Behaviour("fail_times", n)


def gone_after(n: int) -> Behaviour:
    """Passes on the first n heads, then never reports again (a workflow that stopped running)."""
    return Behaviour("gone_after", n)


@dataclass(frozen=True)
class CIScript:
    """Per-repository CI: check name -> behaviour, how it reports, and its timing."""

    checks: Mapping[str, Behaviour] = field(default_factory=dict)
    delay: float = 0.05  # seconds before a suite starts
    via: str = "checks"  # "checks" | "statuses" | "actions"
    rerun_delay: float = 0.0  # extra seconds before a re-run's check runs appear
    # (status, message) the Actions re-run endpoint answers instead of re-running.
    rerun_refusal: tuple[int, str] | None = None
    # Moments a test decides: a re-run's check runs appear only once `rerun_gate` is set; a
    # workflow run whose jobs all ended is concluded (completed) only once `conclusion_gate` is
    # set, as GitHub concludes a run a moment after its last job (until then it is in_progress).
    rerun_gate: asyncio.Event | None = None
    conclusion_gate: asyncio.Event | None = None

    def __post_init__(self) -> None:
        if self.via not in VIAS:
            raise ValueError(f"via must be one of {VIAS}, not {self.via!r}")

    def through(self, via: str) -> CIScript:
        """The same checks reported through `via` ("checks", "statuses" or "actions")."""
        return dataclasses.replace(self, via=via)

    def concluded(self) -> bool:
        """Whether a workflow run whose jobs all ended is concluded yet (see conclusion_gate)."""
        return self.conclusion_gate is None or self.conclusion_gate.is_set()

    @classmethod
    def uniform(cls, behaviour: Behaviour, names: tuple[str, ...] = DEFAULT_CHECKS) -> CIScript:
        """Every named check behaves the same."""
        return cls({name: behaviour for name in names})

    @classmethod
    def pass_(cls, names: tuple[str, ...] = DEFAULT_CHECKS) -> CIScript:
        """Everything passes."""
        return cls.uniform(PASS, names)

    @classmethod
    def fail_times(cls, n: int, names: tuple[str, ...] = DEFAULT_CHECKS) -> CIScript:
        """The first n heads fail, later ones pass."""
        return cls.uniform(fail_times(n), names)

    @classmethod
    def always_fail(cls, names: tuple[str, ...] = DEFAULT_CHECKS) -> CIScript:
        """Every head fails."""
        return cls.uniform(ALWAYS_FAIL, names)

    @classmethod
    def flaky(cls, names: tuple[str, ...] = DEFAULT_CHECKS) -> CIScript:
        """Fails, then passes when the suite (or run) is rerequested."""
        return cls.uniform(FLAKY, names)

    @classmethod
    def hang(cls, names: tuple[str, ...] = DEFAULT_CHECKS) -> CIScript:
        """Starts and stays in_progress forever."""
        return cls.uniform(HANG, names)

    @classmethod
    def none(cls) -> CIScript:
        """No CI configured: nothing ever appears."""
        return cls({})


class CIRunner:
    """Runs suites for the CI apps in background tasks tracked by the core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._head_index: dict[int, dict[str, int]] = {}  # suite id -> check name -> head index
        self._status_heads: set[tuple[int, str]] = set()  # (repo id, sha) reported by statuses

    def app_for(self, script: CIScript) -> AppRegistration:
        """The app whose suites hold the script's check runs."""
        return self.core.actions_app if script.via == "actions" else self.core.ci_app

    def on_head(self, repo: Repo, branch: str, sha: str, before: str | None) -> None:
        """A branch was created or moved: schedule CI for the new head (once per commit)."""
        script: CIScript | None = repo.ci
        if script is None or not script.checks:
            return
        if script.via == "statuses":
            if (repo.id, sha) not in self._status_heads:
                self._status_heads.add((repo.id, sha))
                self.core.spawn(self._report_statuses(repo, sha, self._next_heads(repo, script)))
            return
        suite = checks.suite_for(self.core, repo, self.app_for(script).id, sha)
        if suite.id in self._head_index:  # this commit was checked already (another branch)
            return
        suite.head_branch, suite.before = branch, before
        indexes = self._next_heads(repo, script)
        self._head_index[suite.id] = indexes
        if script.via == "actions":
            number = len(repo.workflow_runs) + 1
            bot = self.core.world.bot(self.core.actions_app)
            run = WorkflowRun(
                self.core.world.next_id("workflow_run"), suite.id, sha, branch, number, bot
            )
            repo.workflow_runs[run.id] = run
        names = [name for name, index in indexes.items() if script.checks[name].reports(index)]
        self.core.spawn(self._run(repo, suite, names, script.delay))

    @staticmethod
    def _next_heads(repo: Repo, script: CIScript) -> dict[str, int]:
        """Each check's head index for a new head (counted per check name)."""
        indexes = {}
        for name in script.checks:
            indexes[name] = repo.ci_heads.get(name, 0)
            repo.ci_heads[name] = indexes[name] + 1
        return indexes

    def rerun_suite(self, repo: Repo, suite: CheckSuite) -> None:
        """Rerequested: run every check of the suite again."""
        script: CIScript | None = repo.ci
        if script is None:
            return
        suite.attempts += 1
        suite.status, suite.conclusion = "queued", None
        names = sorted({repo.runs[i].name for i in suite.runs}) or list(script.checks)
        self.core.spawn(
            self._run(repo, suite, names, script.delay + script.rerun_delay, rerun=True)
        )

    def rerun_check(self, repo: Repo, suite: CheckSuite, name: str) -> None:
        """A single check run was rerequested."""
        script: CIScript = repo.ci
        suite.attempts += 1
        self.core.spawn(
            self._run(repo, suite, [name], script.delay + script.rerun_delay, rerun=True)
        )

    def rerun_failed_jobs(self, repo: Repo, workflow_run: WorkflowRun) -> None:
        """The Actions API re-runs a workflow run's failed jobs: a new attempt, same suite."""
        script: CIScript = repo.ci
        suite = repo.suites[workflow_run.suite_id]
        latest = {repo.runs[i].name: repo.runs[i] for i in suite.runs}
        failed = sorted(name for name, run in latest.items() if run.conclusion not in PASSING)
        workflow_run.run_attempt += 1
        workflow_run.run_started_at = now_iso()
        suite.attempts += 1
        suite.status, suite.conclusion = "queued", None
        self.core.spawn(
            self._run(repo, suite, failed, script.delay + script.rerun_delay, rerun=True)
        )

    async def _run(
        self, repo: Repo, suite: CheckSuite, names: list[str], delay: float, *, rerun: bool = False
    ) -> None:
        script: CIScript = repo.ci
        await asyncio.sleep(delay)
        if rerun and script.rerun_gate is not None:
            await script.rerun_gate.wait()
        bot = self.core.world.bot(self.core.world.apps[suite.app_id])
        started: list[CheckRun] = []
        for name in names:
            run = CheckRun(
                self.core.world.next_id("check_run"),
                suite.app_id,
                suite.id,
                suite.head_sha,
                name,
                status="in_progress",
                started_at=now_iso(),
                details_url=f"https://ci.example.invalid/{repo.full_name}/{suite.id}/{name}",
            )
            repo.runs[run.id] = run
            suite.runs.append(run.id)
            started.append(run)
            checks.record_change(self.core, repo, run, bot, created=True, was_completed=False)
        await asyncio.sleep(0)  # let "created" go out before any completion
        for run in started:
            behaviour = script.checks.get(run.name, PASS)
            index = self._head_index.get(suite.id, {}).get(run.name, 0)
            conclusion = behaviour.conclusion(index, suite.attempts)
            if conclusion is None:
                continue
            run.status, run.conclusion, run.completed_at = "completed", conclusion, now_iso()
            run.output = {
                "title": f"{run.name}: {conclusion}",
                "summary": f"{run.name} {conclusion} (attempt {suite.attempts})",
                "text": f"log of {run.name}, attempt {suite.attempts}: {conclusion}",
            }
            checks.record_change(self.core, repo, run, bot, created=False, was_completed=False)

    async def _report_statuses(self, repo: Repo, sha: str, indexes: dict[str, int]) -> None:
        script: CIScript = repo.ci
        await asyncio.sleep(script.delay)
        bot = self.core.world.bot(self.core.ci_app)
        names = [name for name, index in indexes.items() if script.checks[name].reports(index)]

        def post(name: str, state: str, description: str) -> None:
            url = f"https://ci.example.invalid/{repo.full_name}/{sha[:7]}/{name}"
            body = {"state": state, "context": name, "description": description, "target_url": url}
            statuses.create(self.core, repo, sha, body, bot)

        for name in names:
            post(name, "pending", f"{name} is running")
        await asyncio.sleep(0)  # let "pending" go out before any result
        for name in names:
            conclusion = script.checks[name].conclusion(indexes[name], 1)
            if conclusion is not None:
                state = "success" if conclusion == "success" else "failure"
                post(name, state, f"{name}: {state}")
