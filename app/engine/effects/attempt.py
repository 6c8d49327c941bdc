"""What builder and auditor attempts share: the phase as the agent contract states it, and the
agents' issues as the machine's findings."""

from __future__ import annotations

from app.agents.contract import PhaseSpec
from app.domain.effects import RunAuditor, RunBuilder
from app.domain.events import AttemptLost
from app.domain.strategy import PhaseStrategy, Strategy
from app.engine.envelope import Envelope


def strategy_of(env: Envelope) -> Strategy:
    """The run's frozen strategy (every phase effect comes after it)."""
    strategy = env.state.strategy
    assert strategy is not None, "no phase effect runs before the strategy is frozen"
    return strategy


def phase_spec(
    strategy: Strategy, phase: PhaseStrategy, effect: RunBuilder | RunAuditor
) -> PhaseSpec:
    """The phase as a builder or auditor receives it (AUTOPACK_PHASE_FILE)."""
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
        budgets_left=effect.budgets_left,
        feedback=effect.feedback,
    )


def lost(phase_id: str, attempt: int) -> AttemptLost:
    """The attempt's unpushed change is gone with the work tree (a worker died and moved)."""
    reason = "its change was lost with the work tree (the worker stopped before pushing it)"
    return AttemptLost(phase_id, attempt, reason)
