"""PushChange and CreateSnapshot: the governed writes of a phase to the integration branch."""

from __future__ import annotations

import asyncio

from app.domain.effects import CreateSnapshot, PushChange
from app.domain.events import Pushed, PushRejected, SnapshotCreated
from app.engine.context import Outcome, RunContext
from app.engine.effects.attempt import lost, strategy_of
from app.engine.envelope import Envelope
from app.github.commits import Attempt, BranchMoved


async def push_change(ctx: RunContext, env: Envelope, effect: PushChange) -> Outcome:
    """Commit the gated change on the branch head it was made on (one commit per attempt)."""
    phase = strategy_of(env).phase(effect.phase_id)
    expected = effect.expected_head or env.state.head_sha
    assert expected is not None
    attempt = Attempt(ctx.record.id, phase.phase_id, effect.attempt)
    writer = ctx.writer(env.memo)
    if not ctx.workspace.holds(expected):
        # Carried out again after a crash: pushed already, or the change went with the tree.
        landed = await writer.landed(effect.branch, expected, attempt)
        if landed is None:
            return env, lost(effect.phase_id, effect.attempt)
        env = env.put(env.memo.tip.moved(landed.tree_sha))
        return env, Pushed(effect.phase_id, effect.attempt, landed.commit_sha)
    tree = env.memo.tip.head_tree
    if not tree:
        head = await writer.branch_head(effect.branch)
        assert head is not None
        tree = head.tree_sha
    change = await asyncio.to_thread(ctx.workspace.compute_change)
    try:
        result = await writer.push(
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
    env = env.put(env.memo.tip.moved(result.tree_sha))
    return env, Pushed(effect.phase_id, effect.attempt, result.commit_sha)


async def create_snapshot(ctx: RunContext, env: Envelope, effect: CreateSnapshot) -> Outcome:
    """Tag the green phase's commit `autopack/<run>/<phase>` (idempotent)."""
    writer = ctx.writer(env.memo)
    ref = await writer.snapshot(ctx.record.id, effect.phase_id, effect.commit_sha)
    return env, SnapshotCreated(effect.phase_id, ref)
