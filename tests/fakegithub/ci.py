"""Simulated CI: a separate app ("fake-ci") that checks every new branch head from a script."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.fakegithub import checks
from tests.fakegithub.core import Core
from tests.fakegithub.state import CheckRun, CheckSuite, Repo, now_iso

DEFAULT_CHECKS = ("tests", "lint")


@dataclass(frozen=True)
class Behaviour:
    """How one named check behaves."""

    kind: str  # "pass" | "fail_times" | "always_fail" | "flaky" | "hang"
    n: int = 0

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


@dataclass(frozen=True)
class CIScript:
    """Per-repository CI: check name -> behaviour, and the delay before a suite starts."""

    checks: Mapping[str, Behaviour] = field(default_factory=dict)
    delay: float = 0.05

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
    """Runs suites for the CI app in background tasks tracked by the core."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._head_index: dict[int, dict[str, int]] = {}  # suite id -> check name -> head index

    def on_head(self, repo: Repo, branch: str, sha: str, before: str | None) -> None:
        """A branch was created or moved: schedule a suite for the new head."""
        script: CIScript | None = repo.ci
        if script is None or not script.checks:
            return
        suite = checks.suite_for(self.core, repo, self.core.ci_app.id, sha)
        if suite.runs:  # this commit was checked already (another branch points at it)
            return
        suite.head_branch, suite.before = branch, before
        indexes = {}
        for name in script.checks:
            indexes[name] = repo.ci_heads.get(name, 0)
            repo.ci_heads[name] = indexes[name] + 1
        self._head_index[suite.id] = indexes
        self.core.spawn(self._run(repo, suite, list(script.checks)))

    def rerun_suite(self, repo: Repo, suite: CheckSuite) -> None:
        """Rerequested: run every check of the suite again."""
        script: CIScript | None = repo.ci
        if script is None:
            return
        suite.attempts += 1
        suite.status, suite.conclusion = "queued", None
        names = sorted({repo.runs[i].name for i in suite.runs}) or list(script.checks)
        self.core.spawn(self._run(repo, suite, names))

    def rerun_check(self, repo: Repo, suite: CheckSuite, name: str) -> None:
        """A single check run was rerequested."""
        suite.attempts += 1
        self.core.spawn(self._run(repo, suite, [name]))

    async def _run(self, repo: Repo, suite: CheckSuite, names: list[str]) -> None:
        script: CIScript = repo.ci
        await asyncio.sleep(script.delay)
        bot = self.core.world.bot(self.core.ci_app)
        started: list[CheckRun] = []
        for name in names:
            run = CheckRun(
                self.core.world.next_id("check_run"),
                self.core.ci_app.id,
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
                "text": None,
            }
            checks.record_change(self.core, repo, run, bot, created=False, was_completed=False)
