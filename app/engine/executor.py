"""Carries out the machine's effects at the edge and turns what happened into events.

Failures of the outside world become events the machine understands (`EnvironmentFailed`,
`PushRejected`, a failed builder attempt); nothing here decides what they mean for the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import aiohttp
import gidgethub

from app.agents.auditor import CommandAuditor, OpenAIAuditor
from app.agents.command import CommandBuilder, CommandRunner
from app.agents.contract import (
    Auditor,
    AuditRequest,
    Builder,
    PhaseSpec,
    SuggestedIssue,
    Verdict,
)
from app.agents.contract import BudgetsLeft as SpecBudgets
from app.agents.files import ToolError, apply_patch
from app.agents.openai_backend import ChatClient, OpenAIBuilder
from app.agents.probes import ProbeSpec, probe_findings, run_probes
from app.agents.tarball import WorkspaceError
from app.agents.workspace import TarballSource, Workspace
from app.config import BuilderProfile, Settings
from app.domain.change import FileChange
from app.domain.compiler import RunIdentity
from app.domain.effects import (
    CompileStrategy,
    CreateBranch,
    CreateSnapshot,
    Effect,
    EvaluateGate,
    PushChange,
    QueuePhases,
    RerunCI,
    ResetWorkspace,
    RunAuditor,
    RunBuilder,
    WaitForCI,
)
from app.domain.events import (
    AuditorFinished,
    AuditorVerdict,
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    EnvironmentFailed,
    Event,
    Finding,
    GateEvaluated,
    PhasesQueued,
    Pushed,
    PushRejected,
    SnapshotCreated,
    StrategyReady,
    StrategyRejected,
)
from app.domain.gate import Decision, evaluate
from app.domain.issue_record import IssueRecord, Severity
from app.domain.strategy import PhaseStrategy, Strategy
from app.engine.ci_watch import CIWatcher
from app.engine.envelope import CIWatch, Envelope
from app.engine.planning import (
    PLANNER_PHASE,
    PLANNER_TOKENS,
    AskPlanner,
    PlannerAnswer,
    plan_run,
    planner_prompt,
    read_plan_file,
)
from app.engine.reporting import Reporter
from app.github.client import GitHubApp, InstallationClient
from app.github.commits import Attempt, BranchMoved, GovernedWriter, RefPolicy
from app.github.repo import (
    default_branch_head,
    protected_branches,
)
from app.store.backlogs import BacklogStore
from app.store.progress import ProgressStore
from app.store.runs import RunRecord

log = logging.getLogger("autopack.executor")

# What the outside world throws when it is down or refuses; the run ends as an environment failure.
OUTSIDE_FAILURES = (
    gidgethub.GitHubException,
    aiohttp.ClientError,
    TimeoutError,
    WorkspaceError,
    OSError,
)


@dataclass(frozen=True)
class RunContext:
    """The collaborators of one run's effects; the workspace is opened only when used."""

    record: RunRecord
    gh: InstallationClient
    writer: GovernedWriter
    open_workspace: Callable[[], Workspace]

    @cached_property
    def workspace(self) -> Workspace:
        """The run's workspace (reading its manifest from disk, so not for every poll)."""
        return self.open_workspace()


class EngineExecutor:
    """The worker's executor: one instance per process, shared by every run it drives."""

    def __init__(
        self,
        settings: Settings,
        app: GitHubApp,
        session: aiohttp.ClientSession,
        *,
        backlogs: BacklogStore | None = None,
        progress: ProgressStore | None = None,
        clock: CIWatcher.Clock | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.session = session
        self.backlogs = backlogs
        self.ci = CIWatcher(app, settings, clock=clock)
        self.reporter = Reporter(app, settings, backlogs, progress)
        self.clock = self.ci.clock

    # -- context -------------------------------------------------------------------------------

    def context(self, record: RunRecord, env: Envelope) -> RunContext:
        """Clients, the governed writer and the workspace of one run."""
        gh = self.app.installation(record.installation_id)
        policy = RefPolicy(
            default_branch=env.memo.default_branch or "\0unknown",
            prefix=self.settings.operator.integration_branch_prefix,
            protected=frozenset(env.memo.protected),
        )
        source = TarballSource.from_app(
            self.app, self.session, record.installation_id, record.repository
        )
        return RunContext(
            record,
            gh,
            GovernedWriter(gh, record.repository, policy),
            lambda: Workspace.for_run(self.settings.data_dir, record.id, source),
        )

    # -- the Executor protocol -----------------------------------------------------------------

    async def execute(
        self, record: RunRecord, env: Envelope, effect: Effect
    ) -> tuple[Envelope, Event | None]:
        """Carry out one effect; outside-world failures become EnvironmentFailed."""
        ctx = self.context(record, env)
        try:
            return await self._dispatch(ctx, env, effect)
        except OUTSIDE_FAILURES as exc:
            reason = f"{type(effect).__name__} failed: {type(exc).__name__}: {_first_line(exc)}"
            log.warning("effect failed", extra={"fields": {"run": record.id, "reason": reason}})
            if self.reporter.handles(effect):
                return env, None  # reporting never ends a run
            return env, EnvironmentFailed(reason)

    async def tick(
        self, record: RunRecord, env: Envelope, now: float
    ) -> tuple[Envelope, list[Event]]:
        """Timeouts and CI, looked at again."""
        try:
            return await self.ci.tick(self.context(record, env), env, now)
        except OUTSIDE_FAILURES as exc:
            log.warning("CI poll failed: %s", _first_line(exc))
            return env, []

    def next_wake(self, env: Envelope, now: float) -> float | None:
        """The next deadline or CI poll."""
        return self.ci.next_wake(env, now)

    async def _dispatch(
        self, ctx: RunContext, env: Envelope, effect: Effect
    ) -> tuple[Envelope, Event | None]:
        if self.reporter.handles(effect):
            return await self.reporter.execute(ctx, env, effect)
        match effect:
            case CompileStrategy():
                return await self._compile(ctx, env)
            case CreateBranch():
                return await self._create_branch(ctx, env, effect)
            case QueuePhases():
                return env, PhasesQueued()
            case RunBuilder():
                return await self._run_builder(ctx, env, effect)
            case EvaluateGate():
                return await self._evaluate_gate(ctx, env, effect)
            case PushChange():
                return await self._push(ctx, env, effect)
            case ResetWorkspace():
                await asyncio.to_thread(ctx.workspace.reset)
                return env, None
            case WaitForCI():
                current = env.memo.ci
                if current and (current.sha, current.rerun) == (effect.sha, effect.rerun):
                    return env, None  # RerunCI already set up this wait (and what to ignore)
                watch = CIWatch(effect.sha, effect.phase_id, effect.rerun, self.clock())
                return env.note(ci=watch), None
            case RerunCI():
                return await self.ci.rerun(ctx, env, effect), None
            case RunAuditor():
                return await self._run_auditor(ctx, env, effect)
            case CreateSnapshot():
                ref = await ctx.writer.snapshot(ctx.record.id, effect.phase_id, effect.commit_sha)
                return env, SnapshotCreated(effect.phase_id, ref)
        return env, None  # CancelInFlight: the driver already stopped long effects

    # -- bootstrap -----------------------------------------------------------------------------

    async def _compile(self, ctx: RunContext, env: Envelope) -> tuple[Envelope, Event | None]:
        record = ctx.record
        identity = RunIdentity(record.id, record.repository, record.issue_number, record.branch)
        backlog = await self.backlogs.get(record.repository) if self.backlogs else None
        ask = self._planner(ctx) if self.settings.operator.planner else None
        memo = env.memo
        labelled = (memo.plan_title, memo.plan_body) if memo.plan_body is not None else None
        planned = await plan_run(ctx.gh, self.settings, identity, backlog, ask, labelled)
        env = env.note(issue_title=planned.issue_title, default_branch=planned.default_branch)
        if planned.strategy is None:
            return env, StrategyRejected(planned.problem)
        return env, StrategyReady(planned.strategy, planned.planner_tokens)

    def _planner(self, ctx: RunContext) -> AskPlanner:
        """Ask the operator's planner profile for a plan, in the run's workspace (read-only)."""
        operator = self.settings.operator
        assert operator.planner is not None
        profile = operator.builders[operator.planner]

        async def ask(title: str, body: str, head: str) -> PlannerAnswer:
            await ctx.workspace.ensure(head)
            spec = PhaseSpec(
                run_id=ctx.record.id,
                phase_id=PLANNER_PHASE,
                tier_id="T0",
                title=f"Plan: {title}"[:300],
                description=planner_prompt(title, body),
                task_category="planning",
                complexity="low",
                builder_mode="plan",
                attempt=1,
                budgets_left=SpecBudgets(
                    min(PLANNER_TOKENS, operator.limits.max_tokens_per_run),
                    0,
                    profile.timeout_seconds,
                ),
            )
            try:
                result = await self._profile_builder(profile).run(spec, ctx.workspace.tree)
                text = read_plan_file(ctx.workspace.tree)
            finally:
                # Whatever the planner touched is thrown away: the first builder starts clean.
                await asyncio.to_thread(ctx.workspace.reset)
            if result.outcome.value != BuilderOutcome.OK.value:
                reason = result.failure_reason or f"it ended {result.outcome.value}"
                return PlannerAnswer("", result.tokens_used, reason)
            return PlannerAnswer(text or result.summary, result.tokens_used)

        return ask

    async def _create_branch(
        self, ctx: RunContext, env: Envelope, effect: CreateBranch
    ) -> tuple[Envelope, Event | None]:
        repo = ctx.record.repository
        head = await default_branch_head(ctx.gh, repo)
        protected = await protected_branches(ctx.gh, repo)
        env = env.note(default_branch=head.branch, protected=tuple(sorted(protected)))
        writer = self.context(ctx.record, env).writer
        try:
            await writer.create_branch(effect.branch, head.sha)
        except BranchMoved as exc:
            return env, EnvironmentFailed(str(exc))
        branch_head = await writer.branch_head(effect.branch)
        assert branch_head is not None
        env = env.note(
            head_tree=branch_head.tree_sha, started_at=env.memo.started_at or self.clock()
        )
        return env, BranchReady(branch_head.commit_sha)

    # -- a phase attempt -----------------------------------------------------------------------

    def _spec(
        self, strategy: Strategy, phase: PhaseStrategy, effect: RunBuilder | RunAuditor
    ) -> PhaseSpec:
        budgets = effect.budgets_left
        return PhaseSpec(
            run_id=strategy.run_id,
            phase_id=phase.phase_id,
            tier_id=phase.tier_id,
            title=phase.title,
            description=phase.description,
            task_category=phase.task_category.value,
            complexity=phase.complexity.value,
            builder_mode=phase.builder_mode.value,
            attempt=effect.attempt,
            budgets_left=SpecBudgets(budgets.tokens, budgets.builder_attempts, budgets.seconds),
            feedback=effect.feedback,
        )

    def _profile_builder(self, profile: BuilderProfile) -> Builder:
        if profile.backend == "command":
            return CommandBuilder(
                CommandRunner(profile, scratch_root=self.settings.data_dir / "scratch")
            )
        return OpenAIBuilder(ChatClient(profile, self.session), profile)

    def _profile_auditor(self, profile: BuilderProfile) -> Auditor:
        if profile.backend == "command":
            return CommandAuditor(
                CommandRunner(profile, scratch_root=self.settings.data_dir / "scratch")
            )
        return OpenAIAuditor(ChatClient(profile, self.session), profile)

    async def _run_builder(
        self, ctx: RunContext, env: Envelope, effect: RunBuilder
    ) -> tuple[Envelope, Event | None]:
        strategy = _strategy(env)
        phase = strategy.phase(effect.phase_id)
        if effect.attempt == 1:
            env = env.note(phase_started_at=self.clock())
        head = env.state.head_sha
        assert head is not None, "a builder never runs before the branch exists"
        await ctx.workspace.ensure(head)
        profile = self.settings.operator.builders[strategy.builder_profile]
        result = await self._profile_builder(profile).run(
            self._spec(strategy, phase, effect), ctx.workspace.tree
        )
        outcome = BuilderOutcome(result.outcome.value)
        reason = result.failure_reason or ""
        stray = ctx.workspace.stray_entries()
        if stray:
            outcome = BuilderOutcome.FAILED
            reason = "the builder wrote outside the workspace: " + ", ".join(stray[:5])
        notes = (
            *env.memo.builder_notes,
            f"{phase.phase_id}#{effect.attempt}: {result.summary or reason}",
        )[-20:]
        return env.note(builder_notes=notes), BuilderFinished(
            phase_id=effect.phase_id,
            attempt=effect.attempt,
            outcome=outcome,
            tokens_used=result.tokens_used,
            issues=tuple(_finding(issue) for issue in result.issues),
            summary=result.summary,
            failure_reason=reason,
        )

    async def _evaluate_gate(
        self, ctx: RunContext, env: Envelope, effect: EvaluateGate
    ) -> tuple[Envelope, Event | None]:
        strategy = _strategy(env)
        phase = strategy.phase(effect.phase_id)
        try:
            change = await asyncio.to_thread(ctx.workspace.compute_change)
        except WorkspaceError as exc:
            finding = Finding("gate:unreadable_change", Severity.MAJOR, "unsafe_path")
            return env, GateEvaluated(
                effect.phase_id, effect.attempt, Decision.FAIL_POLICY, (finding,), str(exc)
            )
        probes = await self._probes(ctx, env) if not change.empty else ()
        verdict = evaluate(change, phase.gate.policy(), probe_findings=probes)
        findings = tuple(
            Finding(
                r.issue_key,
                r.severity,
                r.category,
                r.path,
                r.line,
                "; ".join(r.evidence)[:500],
            )
            for r in verdict.findings
        )
        summary = "; ".join(
            f"{r.category}: {r.evidence[0] if r.evidence else r.issue_key}"
            for r in verdict.findings
        )
        return env, GateEvaluated(
            effect.phase_id, effect.attempt, verdict.decision, findings, summary
        )

    async def _probes(self, ctx: RunContext, env: Envelope) -> tuple[IssueRecord, ...]:
        # The repository names probes; only the operator's config decides whether they run.
        probes = _strategy(env).probes
        if not probes:
            return ()
        results = await run_probes(
            [ProbeSpec(probe.name, probe.argv) for probe in probes],
            ctx.workspace.tree,
            self.settings.operator,
            scratch_dir=self.settings.data_dir / "scratch" / ctx.record.id / "probes",
        )
        return tuple(probe_findings(results))

    async def _push(
        self, ctx: RunContext, env: Envelope, effect: PushChange
    ) -> tuple[Envelope, Event | None]:
        strategy = _strategy(env)
        phase = strategy.phase(effect.phase_id)
        expected = effect.expected_head or env.state.head_sha
        assert expected is not None
        tree = env.memo.head_tree
        if not tree:
            head = await ctx.writer.branch_head(effect.branch)
            assert head is not None
            tree = head.tree_sha
        change = await asyncio.to_thread(ctx.workspace.compute_change)
        attempt = Attempt(ctx.record.id, phase.phase_id, effect.attempt)
        try:
            result = await ctx.writer.push(
                effect.branch,
                change,
                expected_head=expected,
                base_tree=tree,
                message=f"{phase.phase_id}: {phase.title}",
                attempt=attempt,
            )
        except BranchMoved as exc:
            return env, PushRejected(effect.phase_id, effect.attempt, str(exc))
        await asyncio.to_thread(ctx.workspace.advance, result.commit_sha)
        return env.note(head_tree=result.tree_sha), Pushed(
            effect.phase_id, effect.attempt, result.commit_sha
        )

    async def _run_auditor(
        self, ctx: RunContext, env: Envelope, effect: RunAuditor
    ) -> tuple[Envelope, Event | None]:
        strategy = _strategy(env)
        phase = strategy.phase(effect.phase_id)
        name = strategy.auditor_backend
        profile = self.settings.operator.auditors.get(name or "")
        if profile is None:
            return env, AuditorFinished(
                effect.phase_id,
                effect.attempt,
                AuditorVerdict.REJECT,
                0,
                (),
                "no auditor configured",
            )
        await ctx.workspace.ensure(env.state.head_sha or "")
        change = await asyncio.to_thread(ctx.workspace.compute_change)
        request = AuditRequest(
            spec=self._spec(strategy, phase, effect),
            diff=_diff_text(change.files),
            ci_failures=effect.feedback,
            profile=effect.auditor_profile.value,
        )
        verdict = await self._profile_auditor(profile).review(request, ctx.workspace.tree)
        answer = AuditorVerdict(verdict.verdict.value)
        summary = verdict.summary or verdict.failure_reason or ""
        if verdict.verdict is Verdict.PATCH and verdict.patch:
            try:
                await asyncio.to_thread(ctx.workspace.reset)
                await asyncio.to_thread(apply_patch, ctx.workspace.tree, verdict.patch)
            except ToolError as exc:
                answer, summary = AuditorVerdict.REJECT, f"the auditor's patch was refused: {exc}"
        return env, AuditorFinished(
            effect.phase_id,
            effect.attempt,
            answer,
            verdict.tokens_used,
            tuple(_finding(issue) for issue in verdict.issues),
            summary,
        )


def _strategy(env: Envelope) -> Strategy:
    strategy = env.state.strategy
    assert strategy is not None, "no phase effect runs before the strategy is frozen"
    return strategy


def _finding(issue: SuggestedIssue) -> Finding:
    severity = Severity.MAJOR if issue.severity == "major" else Severity.MINOR
    return Finding(
        issue.issue_key, severity, issue.category, issue.path, issue.line, issue.evidence[:500]
    )


def _diff_text(files: tuple[FileChange, ...], limit: int = 200_000) -> str:
    """The change as text for a reviewer: each file's new content, binary files named only."""
    parts = []
    for file in files:
        text = "<binary>" if file.binary else (file.content or b"").decode("utf-8", "replace")
        parts.append(f"--- {file.kind.value}: {file.path}\n{text}")
    return "\n".join(parts)[:limit]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
