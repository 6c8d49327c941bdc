"""The run's first effects: compile the strategy (asking the planner when the issue has no
checklist), create the integration branch, queue the phases."""

from __future__ import annotations

import asyncio

from app.agents.contract import PhaseSpec
from app.domain.compiler import RunIdentity
from app.domain.effects import BudgetsLeft, CompileStrategy, CreateBranch, QueuePhases
from app.domain.events import (
    BranchReady,
    BuilderOutcome,
    EnvironmentFailed,
    PhasesQueued,
    StrategyReady,
    StrategyRejected,
)
from app.engine.context import Outcome, RunContext
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
from app.github.commits import BranchMoved
from app.github.repo import default_branch_head, protected_branches


async def compile_strategy(ctx: RunContext, env: Envelope, effect: CompileStrategy) -> Outcome:
    """Compile and freeze the run's strategy from the labelled plan, ruleset and backlog."""
    record = ctx.record
    identity = RunIdentity(record.id, record.repository, record.issue_number, record.branch)
    backlogs = ctx.services.backlogs
    backlog = await backlogs.get(record.repository) if backlogs else None
    ask = _planner(ctx) if ctx.settings.operator.planner else None
    facts = env.memo.facts
    labelled = (facts.plan_title, facts.plan_body) if facts.plan_body is not None else None
    planned = await plan_run(ctx.gh, ctx.settings, identity, backlog, ask, labelled)
    env = env.put(facts.compiled(planned.issue_title, planned.default_branch))
    if planned.strategy is None:
        return env, StrategyRejected(planned.problem)
    return env, StrategyReady(planned.strategy, planned.planner_tokens)


def _planner(ctx: RunContext) -> AskPlanner:
    """Ask the operator's planner profile for a plan, in the run's workspace (thrown away)."""
    operator = ctx.settings.operator
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
            budgets_left=BudgetsLeft(
                tokens=min(PLANNER_TOKENS, operator.limits.max_tokens_per_run),
                builder_attempts=0,
                auditor_attempts=0,
                seconds=profile.timeout_seconds,
            ),
        )
        try:
            result = await ctx.services.builder(name, profile).run(spec, ctx.workspace.tree)
            text = read_plan_file(ctx.workspace.tree)
        finally:
            # Whatever the planner touched is thrown away: the first builder starts clean.
            await asyncio.to_thread(ctx.workspace.reset)
        if result.outcome.value != BuilderOutcome.OK.value:
            reason = result.failure_reason or f"it ended {result.outcome.value}"
            return PlannerAnswer("", result.tokens_used, reason)
        return PlannerAnswer(text or result.summary, result.tokens_used)

    return ask


async def create_branch(ctx: RunContext, env: Envelope, effect: CreateBranch) -> Outcome:
    """Create the integration branch at the default branch's head (idempotent)."""
    repo = ctx.record.repository
    head = await default_branch_head(ctx.gh, repo)
    protected = await protected_branches(ctx.gh, repo)
    env = env.put(env.memo.facts.branched(head.branch, tuple(sorted(protected))))
    writer = ctx.writer(env.memo)
    try:
        await writer.create_branch(effect.branch, head.sha)
    except BranchMoved as exc:
        return env, EnvironmentFailed(str(exc))
    branch_head = await writer.branch_head(effect.branch)
    assert branch_head is not None
    env = env.put(env.memo.tip.moved(branch_head.tree_sha))
    env = env.put(env.memo.clocks.run_started(ctx.now()))
    return env, BranchReady(branch_head.commit_sha)


async def queue_phases(ctx: RunContext, env: Envelope, effect: QueuePhases) -> Outcome:
    """The phases are in the frozen strategy already: nothing to do at the edge."""
    return env, PhasesQueued()
