"""Carries out the machine's effects at the edge and turns what happened into events.

Failures of the outside world become events the machine understands (`EnvironmentFailed`,
`PushRejected`, a failed builder attempt); nothing here decides what they mean for the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
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
from app.agents.pids import discover_process_limit
from app.agents.probes import ProbeSpec, probe_findings, run_probes
from app.agents.sandbox import SandboxHost, SandboxUnavailable
from app.agents.tarball import WorkspaceError
from app.agents.workspace import TarballSource, Workspace
from app.config import BuilderProfile, Settings
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
    RunAuditor,
    RunBuilder,
    WaitForCI,
)
from app.domain.events import (
    AttemptLost,
    AuditorFinished,
    AuditorVerdict,
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    CIFinished,
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
from app.domain.evidence import (
    EvidenceKind,
    PhaseEvidence,
    builder_log,
    change_diff,
    gate_findings,
    gate_text,
)
from app.domain.gate import Decision, evaluate
from app.domain.issue_record import IssueRecord, Severity
from app.domain.run_state import AuditReason
from app.domain.strategy import PhaseStrategy, Strategy
from app.engine.ci_watch import CIWatcher
from app.engine.envelope import Envelope
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
from app.github.client import GitHubApp, InstallationClient, failed_call
from app.github.commits import Attempt, BranchMoved, GovernedWriter, RefPolicy
from app.github.repo import (
    default_branch_head,
    protected_branches,
)
from app.store.backlogs import BacklogStore
from app.store.evidence import EvidenceStore
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
        evidence: EvidenceStore | None = None,
        clock: CIWatcher.Clock | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.session = session
        self.backlogs = backlogs
        self.evidence = evidence
        self.sandbox = SandboxHost.from_settings(settings, discover_process_limit())
        self.ci = CIWatcher(app, settings, clock=clock)
        self.reporter = Reporter(app, settings, backlogs, progress, evidence)
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
            self.app,
            self.session,
            record.installation_id,
            record.repository,
            self.settings.retry_backoff_seconds,
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
            env, result = await self._dispatch(ctx, env, effect)
            await self._note_ci_output(record, env, [] if result is None else [result])
            return env, result
        except SandboxUnavailable as exc:  # fail closed: nothing ran unsandboxed
            log.warning("sandbox failed", extra={"fields": {"run": record.id, "reason": str(exc)}})
            return env, EnvironmentFailed(str(exc))
        except OUTSIDE_FAILURES as exc:
            reason = _outside_reason(effect, exc)
            log.warning("effect failed", extra={"fields": {"run": record.id, "reason": reason}})
            if self.reporter.handles(effect):
                return env, None  # reporting never ends a run
            return env, EnvironmentFailed(reason)

    async def tick(
        self, record: RunRecord, env: Envelope, now: float
    ) -> tuple[Envelope, list[Event]]:
        """Timeouts and CI, looked at again."""
        try:
            env, events = await self.ci.tick(self.context(record, env), env, now)
        except OUTSIDE_FAILURES as exc:
            log.warning("CI poll failed: %s", _first_line(exc))
            return env, []
        await self._note_ci_output(record, env, events)
        return env, events

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
            case WaitForCI():
                return await self.ci.wait(ctx, env, effect), None
            case RerunCI():
                return await self.ci.rerun(ctx, env, effect)
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
        planner = operator.planner_profile()
        assert planner is not None
        name, profile = planner

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
                result = await self._profile_builder(name, profile).run(spec, ctx.workspace.tree)
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

    def _runner(self, name: str, profile: BuilderProfile) -> CommandRunner:
        scratch = self.settings.data_dir / "scratch"
        return CommandRunner(profile, scratch_root=scratch, sandbox=self.sandbox, name=name)

    def _profile_builder(self, name: str, profile: BuilderProfile) -> Builder:
        if profile.backend == "command":
            return CommandBuilder(self._runner(name, profile))
        return OpenAIBuilder(ChatClient(profile, self.session), profile)

    def _profile_auditor(self, name: str, profile: BuilderProfile) -> Auditor:
        if profile.backend == "command":
            return CommandAuditor(self._runner(name, profile))
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
        # Every attempt starts from the branch head and nothing else: what an earlier attempt
        # (or a failed phase) left in the tree must never ship inside this one.
        await ctx.workspace.clean_at(head)
        name = strategy.builder_for(phase.phase_id)
        profile = self.settings.operator.builders[name]
        result = await self._profile_builder(f"builders.{name}", profile).run(
            self._spec(strategy, phase, effect), ctx.workspace.tree
        )
        outcome = BuilderOutcome(result.outcome.value)
        reason = result.failure_reason or ""
        stray = ctx.workspace.stray_entries()
        if stray:
            outcome = BuilderOutcome.FAILED
            reason = "the builder wrote outside the workspace: " + ", ".join(stray[:5])
        await self._keep(
            ctx.record.id,
            effect.phase_id,
            effect.attempt,
            {
                EvidenceKind.DIFF: await self._diff(ctx),
                EvidenceKind.BUILDER_LOG: builder_log(result.stdout_tail, result.stderr_tail),
            },
        )
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
        if not ctx.workspace.holds(env.state.head_sha or ""):
            return env, _lost(effect.phase_id, effect.attempt)
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
        await self._keep(
            ctx.record.id, effect.phase_id, effect.attempt, {EvidenceKind.GATE: gate_text(findings)}
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
            sandbox=self.sandbox,
        )
        return tuple(probe_findings(results))

    async def _push(
        self, ctx: RunContext, env: Envelope, effect: PushChange
    ) -> tuple[Envelope, Event | None]:
        strategy = _strategy(env)
        phase = strategy.phase(effect.phase_id)
        expected = effect.expected_head or env.state.head_sha
        assert expected is not None
        attempt = Attempt(ctx.record.id, phase.phase_id, effect.attempt)
        if not ctx.workspace.holds(expected):
            # Carried out again after a crash: pushed already, or the change went with the tree.
            landed = await ctx.writer.landed(effect.branch, expected, attempt)
            if landed is None:
                return env, _lost(effect.phase_id, effect.attempt)
            return env.note(head_tree=landed.tree_sha), Pushed(
                effect.phase_id, effect.attempt, landed.commit_sha
            )
        tree = env.memo.head_tree
        if not tree:
            head = await ctx.writer.branch_head(effect.branch)
            assert head is not None
            tree = head.tree_sha
        change = await asyncio.to_thread(ctx.workspace.compute_change)
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
        head = env.state.head_sha or ""
        evidence = await self._evidence_of(ctx, effect.phase_id)
        review = effect.reason is AuditReason.PRE_PUSH_REVIEW
        if review:
            # A review judges the gated change still in the tree: it is what will be pushed.
            if not ctx.workspace.holds(head):
                return env, _lost(effect.phase_id, effect.attempt)
            diff = await self._diff(ctx)
        else:
            # An escalation works from the branch head; the failed attempt is in the evidence.
            await ctx.workspace.clean_at(head)
            diff = evidence.diff
        request = AuditRequest(
            spec=self._spec(strategy, phase, effect),
            diff=diff or "(no change was recorded for this phase)",
            ci_failures=effect.feedback,
            gate_findings=tuple(_suggested(f) for f in gate_findings(evidence.gate)),
            ci_output=evidence.ci_output,
            builder_log=evidence.builder_log,
            profile=effect.auditor_profile.value,
        )
        auditor = self._profile_auditor(f"auditors.{name}", profile)
        verdict = await auditor.review(request, ctx.workspace.tree)
        answer = AuditorVerdict(verdict.verdict.value)
        summary = verdict.summary or verdict.failure_reason or ""
        if review and await self._diff(ctx) != diff:
            # The reviewer must not edit what it approves: the push would carry unreviewed text.
            answer, summary = AuditorVerdict.REJECT, "the reviewer changed the work tree"
        elif verdict.verdict is Verdict.PATCH and verdict.patch:
            try:
                await ctx.workspace.clean_at(head)
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

    # -- evidence ------------------------------------------------------------------------------

    async def _diff(self, ctx: RunContext) -> str:
        """The work tree's change against the branch head as a unified diff."""
        workspace = ctx.workspace

        def render() -> str:
            return change_diff(workspace.compute_change())

        try:
            return await asyncio.to_thread(render)
        except WorkspaceError as exc:
            return f"(the change could not be read: {exc})"

    async def _keep(
        self, run_id: str, phase_id: str, attempt: int, texts: dict[EvidenceKind, str]
    ) -> None:
        if self.evidence is not None:
            now = datetime.fromtimestamp(self.clock(), UTC)
            await self.evidence.record(run_id, phase_id, attempt, texts, now)

    async def _note_ci_output(self, record: RunRecord, env: Envelope, events: list[Event]) -> None:
        """What failing checks said, kept as the evidence of the attempt CI judged."""
        waiting = env.state.awaiting
        for event in events:
            if isinstance(event, CIFinished) and event.output and waiting is not None:
                texts = {EvidenceKind.CI_OUTPUT: event.output}
                await self._keep(record.id, event.phase_id, waiting.attempt, texts)

    async def _evidence_of(self, ctx: RunContext, phase_id: str) -> PhaseEvidence:
        if self.evidence is None:
            return PhaseEvidence()
        return await self.evidence.of_phase(ctx.record.id, phase_id)


def _strategy(env: Envelope) -> Strategy:
    strategy = env.state.strategy
    assert strategy is not None, "no phase effect runs before the strategy is frozen"
    return strategy


def _finding(issue: SuggestedIssue) -> Finding:
    severity = Severity.MAJOR if issue.severity == "major" else Severity.MINOR
    return Finding(
        issue.issue_key, severity, issue.category, issue.path, issue.line, issue.evidence[:500]
    )


def _lost(phase_id: str, attempt: int) -> AttemptLost:
    reason = "its change was lost with the work tree (the worker stopped before pushing it)"
    return AttemptLost(phase_id, attempt, reason)


def _suggested(finding: Finding) -> SuggestedIssue:
    return SuggestedIssue(
        finding.issue_key,
        finding.severity.value,
        finding.category,
        finding.message,
        finding.path,
        finding.line,
    )


def _outside_reason(effect: Effect, exc: BaseException) -> str:
    """What failed, naming the GitHub call when the exception knows it."""
    call = failed_call(exc)
    where = f" at {call}" if call else ""
    return f"{type(effect).__name__} failed{where}: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
