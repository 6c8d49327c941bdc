"""RunBuilder: one builder attempt, from the branch head and nothing else."""

from __future__ import annotations

from app.domain.effects import RunBuilder
from app.domain.events import BuilderFinished, BuilderOutcome
from app.domain.evidence import EvidenceKind, builder_log
from app.engine import evidence
from app.engine.context import Outcome, RunContext
from app.engine.effects.attempt import phase_spec, strategy_of
from app.engine.envelope import Envelope


async def run_builder(ctx: RunContext, env: Envelope, effect: RunBuilder) -> Outcome:
    """Run the builder in the workspace; its change stays there for the gate."""
    strategy = strategy_of(env)
    phase = strategy.phase(effect.phase_id)
    if effect.attempt == 1:
        env = env.put(env.memo.clocks.phase_started(ctx.now()))
    head = env.state.head_sha
    assert head is not None, "a builder never runs before the branch exists"
    # Every attempt starts from the branch head and nothing else: what an earlier attempt
    # (or a failed phase) left in the tree must never ship inside this one.
    await ctx.workspace.clean_at(head)
    name = strategy.builder_for(phase.phase_id)
    profile = ctx.settings.operator.builders[name]
    builder = ctx.services.builder(f"builders.{name}", profile)
    result = await builder.run(phase_spec(strategy, phase, effect), ctx.workspace.tree)
    outcome = BuilderOutcome(result.outcome.value)
    reason = result.failure_reason or ""
    stray = ctx.workspace.stray_entries()
    if stray:
        outcome = BuilderOutcome.FAILED
        reason = "the builder wrote outside the workspace: " + ", ".join(stray[:5])
    texts = {
        EvidenceKind.DIFF: await evidence.attempt_diff(ctx),
        EvidenceKind.BUILDER_LOG: builder_log(result.stdout_tail, result.stderr_tail),
    }
    await evidence.keep(ctx, effect.phase_id, effect.attempt, texts)
    return env, BuilderFinished(
        phase_id=effect.phase_id,
        attempt=effect.attempt,
        outcome=outcome,
        tokens_used=result.tokens_used,
        issues=result.issues,
        summary=result.summary,
        failure_reason=reason,
    )
