"""Issue 5's property: any run, driven by any valid world plus noise, ends within its budgets.

A random strategy (tiers, phases, caps, attempt limits, auditor or not, safety profile, scope) and
a random "world" that answers each effect with a valid event, interleaved with stale, duplicated,
late and made-up events and the occasional cancel, run timeout or environment failure.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import deque
from typing import Any

import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
    WriteArtefacts,
    effect_from_json,
    ref_written,
)
from app.domain.events import (
    ArtefactsWritten,
    AttemptLost,
    AuditorFinished,
    AuditorVerdict,
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    Cancelled,
    CIFinished,
    CIResult,
    EnvironmentFailed,
    Event,
    Finding,
    GateEvaluated,
    PhasesQueued,
    PhaseTimedOut,
    Pushed,
    PushRejected,
    RunTimedOut,
    SnapshotCreated,
    StrategyReady,
    StrategyRejected,
    event_from_json,
)
from app.domain.gate import Decision
from app.domain.issue_record import Severity
from app.domain.machine import advance, start_run
from app.domain.machine_steps import unclean_reasons
from app.domain.run_state import (
    AuditReason,
    Awaiting,
    AwaitKind,
    PhaseStatus,
    RunState,
    RunStatus,
    TierStatus,
)
from app.domain.strategy import CIProfileSettings, CISettings, NoCIPolicy, Strategy
from app.domain.taxonomy import CIProfile, RunScope, SafetyProfile
from tests.domain.machine_fixtures import RUN_ID, make_strategy

MAX_ATTEMPT_TOKENS = 300
ISSUE_POOL = ("lint:e501", "test:flaky-db", "types:any", "docs:missing", "perf:n2")
CHECKS = ("tests", "lint", "types")


@st.composite
def run_strategies(draw: st.DrawFn) -> Strategy:
    """1-3 tiers of 1-4 phases with random caps, limits and profiles."""
    # sampled_from lists start with the usual value: hypothesis leans towards the first.
    tiers = tuple(draw(st.lists(st.sampled_from([2, 1, 3, 4]), min_size=1, max_size=3)))
    strategy = make_strategy(
        tiers,
        auditor_backend=draw(st.sampled_from(["auditor", None, "auditor"])),
        safety_profile=draw(st.sampled_from([*SafetyProfile, SafetyProfile.NORMAL])),
        run_scope=draw(st.sampled_from([*RunScope, RunScope.MULTI_TIER])),
        run_token_cap=draw(_cap(1, 600, 20_000)),
        tier_token_cap=draw(_cap(1, 400, 10_000)),
        ci_run_cap=draw(st.integers(1, 8)),
        max_minor_issues=draw(_cap(0, 4, 30)),
        minor_tolerance=draw(st.integers(0, 4)),
        major_tolerance=draw(st.none() | st.integers(0, 2)),
        commit_artefacts=draw(st.booleans()),
        debt_cleanup=draw(st.booleans()),
    )
    ci = CISettings(
        normal=CIProfileSettings(
            max_reruns=draw(st.integers(0, 2)), on_no_ci=NoCIPolicy.PASS_WITH_MAJOR
        ),
        strict=CIProfileSettings(
            required=("all",),
            max_reruns=draw(st.integers(0, 2)),
            on_no_ci=draw(st.sampled_from(list(NoCIPolicy))),
        ),
    )
    phases = tuple(
        dataclasses.replace(
            phase,
            max_builder_attempts=draw(st.sampled_from([2, 3, 1, 2, 3, 0])),
            max_auditor_attempts=draw(st.integers(0, 2)),
            incident_token_cap=draw(_cap(1, 300, 3000)),
            auto_apply=draw(st.sampled_from([True, True, False])),
            ci_profile=draw(st.sampled_from(list(CIProfile))),
        )
        for phase in strategy.phases
    )
    aged = draw(st.sets(st.sampled_from(ISSUE_POOL), max_size=2))
    return dataclasses.replace(
        strategy,
        ci=ci,
        phases=phases,
        effective_severity={key: Severity.MAJOR for key in sorted(aged)},
    )


def _cap(low: int, tight: int, loose: int) -> st.SearchStrategy[int]:
    """A cap that is sometimes tight (hit on the way) and often loose (runs go far)."""
    return st.integers(0, 7).flatmap(
        lambda roll: st.integers(low, tight) if roll == 7 else st.integers(tight, loose)
    )


class World:
    """Answers effects with valid random events; also makes noise."""

    def __init__(self, rng: random.Random, strategy: Strategy) -> None:
        self.rng = rng
        self.strategy = strategy
        self.commits = 0
        self.late: list[Event] = []  # real results that arrive after a timeout
        # How often things go wrong in this world: some runs go far, some fail early.
        self.harsh = rng.choice([0.05, 0.15, 0.3])

    def _findings(self) -> tuple[Finding, ...]:
        keys = self.rng.sample(ISSUE_POOL, self.rng.choice([0, 0, 0, 1, 2]))
        return tuple(Finding(k, self.rng.choice(list(Severity)), "x") for k in keys)

    def _tokens(self) -> int:
        return self.rng.randint(0, MAX_ATTEMPT_TOKENS)

    def _maybe_timeout(self, phase_id: str, attempt: int, real: Event) -> Event:
        if self.rng.random() < self.harsh / 3:
            self.late.append(real)
            return PhaseTimedOut(phase_id, attempt)
        return real

    def answer(self, effect: Effect) -> Event | None:
        rng = self.rng
        if isinstance(effect, CompileStrategy):
            if rng.random() < 0.03:
                return StrategyRejected("autopack.yml:3: unknown key")
            return StrategyReady(self.strategy)
        if isinstance(effect, CreateBranch):
            return BranchReady("base")
        if isinstance(effect, WriteArtefacts) and not effect.final:
            return ArtefactsWritten("artefacts" if effect.branch else None)
        if isinstance(effect, QueuePhases):
            return PhasesQueued()
        if isinstance(effect, RunBuilder):
            outcome = BuilderOutcome.OK
            if rng.random() < self.harsh:
                outcome = rng.choice([o for o in BuilderOutcome if o is not BuilderOutcome.OK])
            real = BuilderFinished(
                effect.phase_id,
                effect.attempt,
                outcome,
                self._tokens(),
                self._findings(),
                failure_reason="" if outcome is BuilderOutcome.OK else "it broke",
            )
            return self._maybe_timeout(effect.phase_id, effect.attempt, real)
        if isinstance(effect, RunAuditor):
            real = AuditorFinished(
                effect.phase_id,
                effect.attempt,
                rng.choice(list(AuditorVerdict)),
                self._tokens(),
                self._findings(),
            )
            return self._maybe_timeout(effect.phase_id, effect.attempt, real)
        if isinstance(effect, EvaluateGate | PushChange) and rng.random() < 0.02:
            # The worker died and the work tree with it: the unpushed change is gone.
            return AttemptLost(effect.phase_id, effect.attempt, "the work tree was lost")
        if isinstance(effect, EvaluateGate):
            bad = self.harsh * 100
            weights = {
                Decision.PASS: 100 - bad,
                Decision.REVIEW: 10,  # the tests were weakened: a review before the push
                Decision.RETRY: bad * 0.9,
                Decision.FAIL_POLICY: bad * 0.1,
            }
            decision = rng.choices(list(weights), weights=list(weights.values()))[0]
            findings = self._findings()
            if decision is Decision.REVIEW:
                path = f"tests/test_{effect.phase_id}.py"
                key = f"gate:test_skipped:{path}"
                findings += (Finding(key, Severity.MAJOR, "test_skipped", path, 3),)
            return GateEvaluated(effect.phase_id, effect.attempt, decision, findings)
        if isinstance(effect, PushChange):
            if rng.random() < 0.02:
                return PushRejected(effect.phase_id, effect.attempt, "branch moved")
            self.commits += 1
            return Pushed(effect.phase_id, effect.attempt, f"c{self.commits}")
        if isinstance(effect, WaitForCI):
            bad = self.harsh * 200
            weights = [200 - bad, bad * 0.7, bad * 0.15, bad * 0.15]
            result = rng.choices(list(CIResult), weights=weights)[0]
            failed = tuple(rng.sample(CHECKS, rng.randint(1, 2))) if result is CIResult.RED else ()
            flaky = tuple(rng.sample(CHECKS, rng.choice([0, 0, 0, 1])))
            real = CIFinished(
                effect.phase_id, effect.sha, result, failed, flaky, "ci", rerun=effect.rerun
            )
            if rng.random() < 0.03:  # the reconciler's CI timeout wins; the result comes late
                self.late.append(real)
                return CIFinished(
                    effect.phase_id, effect.sha, CIResult.TIMED_OUT, rerun=effect.rerun
                )
            return real
        if isinstance(effect, CreateSnapshot):
            return SnapshotCreated(effect.phase_id, effect.tag)
        return None

    def near_miss(self, waiting: Awaiting) -> Event:
        """The awaited kind of result, but for another phase, attempt, commit or re-run."""
        rng = self.rng
        other = rng.choice(
            [p.phase_id for p in self.strategy.phases if p.phase_id != waiting.phase_id] + ["nope"]
        )
        phase_id, attempt = rng.choice(
            [(other, waiting.attempt), (waiting.phase_id, waiting.attempt + rng.choice([-1, 1, 2]))]
        )
        kind = waiting.kind
        if kind is AwaitKind.BUILDER:
            return BuilderFinished(phase_id, attempt, BuilderOutcome.OK, 1)
        if kind is AwaitKind.GATE:
            return GateEvaluated(phase_id, attempt, Decision.FAIL_POLICY)
        if kind in (AwaitKind.REVIEW, AwaitKind.AUDITOR):
            return AuditorFinished(phase_id, attempt, AuditorVerdict.PATCH, 1)
        if kind is AwaitKind.PUSH:
            return rng.choice(
                [Pushed(phase_id, attempt, "x"), PushRejected(phase_id, attempt, "x")]
            )
        if kind is AwaitKind.CI:
            return rng.choice(
                [
                    CIFinished(other, waiting.sha, CIResult.NO_CI, rerun=waiting.rerun),
                    CIFinished(waiting.phase_id, "x", CIResult.GREEN, rerun=waiting.rerun),
                    CIFinished(
                        waiting.phase_id, waiting.sha, CIResult.RED, rerun=waiting.rerun + 1
                    ),
                    PhaseTimedOut(phase_id, attempt),
                ]
            )
        if kind is AwaitKind.SNAPSHOT:
            return rng.choice(
                [SnapshotCreated(other, "t"), PhaseTimedOut(waiting.phase_id, waiting.attempt)]
            )
        return rng.choice(
            [PhasesQueued(), BranchReady("x")]
            if kind is AwaitKind.STRATEGY
            else [StrategyRejected("x")]
        )

    def noise(self, delivered: list[Event]) -> Event:
        """A stale, duplicated, late, made-up or operator event."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.06:
            return rng.choice(
                [Cancelled("octocat", "stop"), RunTimedOut(), EnvironmentFailed("GitHub 502")]
            )
        if roll < 0.4 and self.late:
            return self.late.pop(rng.randrange(len(self.late)))
        if roll < 0.7 and delivered:
            return rng.choice(delivered)
        phase_id = rng.choice([p.phase_id for p in self.strategy.phases] + ["nope"])
        attempt = rng.randint(0, 6)
        made_up: list[Event] = [
            BuilderFinished(phase_id, attempt, BuilderOutcome.OK, self._tokens()),
            GateEvaluated(phase_id, attempt, Decision.PASS),
            AuditorFinished(phase_id, attempt, AuditorVerdict.PATCH, self._tokens()),
            Pushed(phase_id, attempt, f"x{attempt}"),
            CIFinished(phase_id, f"c{rng.randint(0, 9)}", CIResult.GREEN, rerun=rng.randint(0, 2)),
            SnapshotCreated(phase_id, "t"),
            PhaseTimedOut(phase_id, attempt),
            AttemptLost(phase_id, attempt, "lost"),
            BranchReady("other"),
            PhasesQueued(),
            ArtefactsWritten("old"),
            StrategyReady(self.strategy),
        ]
        return rng.choice(made_up)


def accepted_bound(strategy: Strategy) -> int:
    """The most events a run can accept, from its caps."""
    total = 5  # strategy, branch, queue, initial artefacts, a final operator event
    for phase in strategy.phases:
        attempts = phase.max_builder_attempts + phase.max_auditor_attempts
        reruns = strategy.ci.profile(phase.ci_profile).max_reruns
        # builder/auditor, gate, review, push, CI and its re-runs; then one snapshot
        total += attempts * (4 + 1 + reruns) + 1
    return total


def _round_trips(value: Any, decode: Any) -> None:
    assert decode(json.loads(json.dumps(value.to_json()))) == value


def _check_effects(run: RunState, effects: tuple[Effect, ...]) -> None:
    strategy = run.strategy
    starts = [e for e in effects if isinstance(e, RunBuilder | RunAuditor)]
    assert len(starts) <= 1
    for effect in effects:
        _round_trips(effect, effect_from_json)
        ref = ref_written(effect)
        if ref is not None:
            assert strategy is not None
            allowed = {strategy.branch} | {
                f"autopack/{run.run_id}/{p.phase_id}" for p in strategy.phases
            }
            assert ref in allowed, ref
    for effect in effects:
        if isinstance(effect, RerunCI):
            # A re-run starts only while the tier is under its CI cap (this one included).
            assert strategy is not None
            tier_id = strategy.phase(effect.phase_id).tier_id
            assert run.tier_progress(tier_id).ci_runs <= strategy.tier(tier_id).ci_run_cap
    for progress in run.phases:
        if progress.status is PhaseStatus.GREEN:
            assert progress.last_commit is not None
            assert progress.ci_runs >= 1
        if progress.needs_review:
            # Marked only where no auditor could review, and only for what goes to the branch.
            assert strategy is not None
            assert not strategy.auditor_backend
            pushing = run.awaiting is not None and run.awaiting.kind is AwaitKind.PUSH
            assert progress.last_commit is not None or pushing or run.status.is_terminal
    for start in starts:
        # Fail closed: nothing starts once a cap is reached, and it is told what is left.
        assert strategy is not None
        phase = strategy.phase(start.phase_id)
        progress = run.phase_progress(start.phase_id)
        tier = run.tier_progress(phase.tier_id)
        tier_cap = strategy.tier(phase.tier_id).token_cap
        left = min(
            strategy.budget.token_cap - run.tokens,
            tier_cap - tier.tokens,
            phase.incident_token_cap - progress.tokens,
        )
        assert left > 0
        assert start.budgets_left.tokens == left
        if isinstance(start, RunBuilder):
            assert 1 <= progress.builder_attempts <= phase.max_builder_attempts
            assert start.attempt == progress.attempts
        else:
            assert strategy.auditor_backend
            if start.reason is not AuditReason.PRE_PUSH_REVIEW:
                assert 1 <= progress.auditor_attempts <= phase.max_auditor_attempts
                assert start.attempt == progress.attempts


def _run_world(strategy: Strategy, rng: random.Random) -> tuple[RunState, list[Event]]:
    world = World(rng, strategy)
    run, first = start_run(RUN_ID)
    pending: deque[Effect] = deque(first)
    delivered: list[Event] = []
    keys = [e.key for e in first]
    bound = accepted_bound(strategy)
    steps = 0
    while not run.status.is_terminal:
        steps += 1
        assert steps <= 20 * bound + 50, "the run did not end"
        roll = rng.random()
        if roll < 0.08 and run.awaiting is not None:
            miss = world.near_miss(run.awaiting)
            assert advance(run, miss) == (run, ()), miss  # a near miss is stale
            continue
        if roll < 0.25:
            event = world.noise(delivered)
        else:
            assert pending, f"stuck in {run.status} awaiting {run.awaiting}"
            answer = world.answer(pending.popleft())
            if answer is None:
                continue
            event = answer
        delivered.append(event)
        after, effects = advance(run, event)
        assert advance(run, event) == (after, effects)  # deterministic
        if after is run:
            assert effects == ()
        else:
            assert after.seq == run.seq + 1
            assert after.seq <= bound
            _round_trips(after, RunState.from_json)
            _round_trips(event, event_from_json)
            _check_effects(after, effects)
        keys += [e.key for e in effects]
        pending.extend(effects)
        run = after
    assert len(keys) == len(set(keys)), "an idempotency key repeats"
    return run, delivered


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=run_strategies(), seed=st.integers(0, 2**32))
def test_any_run_ends_within_its_budgets(strategy: Strategy, seed: int) -> None:
    # A seeded generator, not st.randoms(): hypothesis' randoms lean towards 0.0, which would
    # make nearly every run end by an early cancel.
    rng = random.Random(seed)
    run, delivered = _run_world(strategy, rng)
    assert run.awaiting is None
    assert run.terminal_reason
    # The run cap is exceeded by at most the one attempt in flight.
    assert run.tokens < strategy.budget.token_cap + MAX_ATTEMPT_TOKENS
    for tier in run.tiers:
        assert tier.tokens < strategy.tier(tier.tier_id).token_cap + MAX_ATTEMPT_TOKENS
    for progress in run.phases:
        cap = strategy.phase(progress.phase_id).incident_token_cap
        assert progress.tokens < cap + MAX_ATTEMPT_TOKENS
    # After a terminal state nothing changes.
    world = World(rng, strategy)
    for _ in range(5):
        assert advance(run, world.noise(delivered)) == (run, ())
    # Replaying the same events gives the same run.
    replay, _ = start_run(RUN_ID)
    for event in delivered:
        replay, _ = advance(replay, event)
    assert replay == run


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=run_strategies(), seed=st.integers(0, 2**32))
def test_the_phases_asked_for_decide_the_outcome(strategy: Strategy, seed: int) -> None:
    run, _ = _run_world(strategy, random.Random(seed))
    asked = [p for p in run.phases if not strategy.phase(p.phase_id).is_debt_cleanup]
    cleanup = [p for p in run.phases if strategy.phase(p.phase_id).is_debt_cleanup]
    critical = strategy.safety_profile is SafetyProfile.SAFETY_CRITICAL
    if run.status is RunStatus.DONE_SUCCESS:
        assert all(p.status is PhaseStatus.GREEN for p in asked)
        assert all(p.status in (PhaseStatus.GREEN, PhaseStatus.FAILED) for p in cleanup)
        assert all(t.status is TierStatus.COMPLETE for t in run.tiers)
        if any(p.status is PhaseStatus.FAILED for p in cleanup):
            hypothesis.event("a failed debt cleanup did not sink the run")
        if critical:
            # A safety-critical run succeeds only with every tier clean.
            assert all(not unclean_reasons(run, t.tier_id) for t in run.tiers)
            hypothesis.event("a safety-critical run succeeded")
    if run.status is RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW:
        failed_tier = any(t.status is TierStatus.FAILED for t in run.tiers)
        unclean = critical and any(
            t.status is TierStatus.COMPLETE and unclean_reasons(run, t.tier_id) for t in run.tiers
        )
        assert failed_tier or unclean, run.terminal_reason
        if unclean and not failed_tier:
            hypothesis.event("a safety-critical tier ended not clean")
        # A tier fails only through a phase that was asked for.
        for tier in run.tiers:
            if tier.status is TierStatus.FAILED:
                assert any(
                    p.status is PhaseStatus.FAILED for p in asked if p.tier_id == tier.tier_id
                )
