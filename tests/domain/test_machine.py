"""The run state machine, one row per transition rule (docs/state-machine.md), then the details."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.domain.effects import (
    CreateBranch,
    CreateSnapshot,
    EvaluateGate,
    PushChange,
    RerunCI,
    RunAuditor,
    RunBuilder,
    WaitForCI,
    WriteArtefacts,
    effect_from_json,
)
from app.domain.events import (
    EVENT_TYPES,
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
from app.domain.machine import advance, handles, start_run
from app.domain.machine_steps import unclean_reasons
from app.domain.report_view import promotion
from app.domain.run_state import (
    AuditReason,
    AwaitKind,
    PhaseStatus,
    RunState,
    RunStatus,
    TierStatus,
)
from app.domain.strategy import NoCIPolicy
from app.domain.taxonomy import RunScope, SafetyProfile
from tests.domain.machine_fixtures import (
    BRANCH,
    RUN_ID,
    bootstrap,
    drive,
    green_phase,
    make_strategy,
    names,
)

S = RunStatus
OK, FAILED = BuilderOutcome.OK, BuilderOutcome.FAILED
DOC = Path(__file__).resolve().parents[2] / "docs" / "state-machine.md"
END = ["WriteArtefacts", "Report", "Finish"]


def built(phase: str = "p1", attempt: int = 1, tokens: int = 10) -> BuilderFinished:
    return BuilderFinished(phase, attempt, OK, tokens_used=tokens)


def broke(phase: str = "p1", attempt: int = 1, tokens: int = 10) -> BuilderFinished:
    return BuilderFinished(phase, attempt, FAILED, tokens_used=tokens, failure_reason="tests fail")


def gate(decision: Decision = Decision.PASS, phase: str = "p1", attempt: int = 1) -> GateEvaluated:
    return GateEvaluated(phase, attempt, decision, summary="gate says so")


def weakened(phase: str = "p1", attempt: int = 1) -> GateEvaluated:
    """The gate found a test deleted: the change needs a review before it is pushed."""
    finding = Finding(
        "gate:test_deleted:tests/test_a.py", Severity.MAJOR, "test_deleted", "tests/test_a.py"
    )
    return GateEvaluated(phase, attempt, Decision.REVIEW, (finding,), "test_deleted: …")


def pushed(phase: str = "p1", attempt: int = 1) -> Pushed:
    return Pushed(phase, attempt, f"sha-{phase}-{attempt}")


def ci(result: CIResult, phase: str = "p1", attempt: int = 1, rerun: int = 0) -> CIFinished:
    return CIFinished(phase, f"sha-{phase}-{attempt}", result, ("tests",), rerun=rerun)


def audited(verdict: AuditorVerdict, phase: str = "p1", attempt: int = 1) -> AuditorFinished:
    return AuditorFinished(phase, attempt, verdict, tokens_used=5, summary="auditor view")


def flaky_green(phase: str = "p1", attempt: int = 1) -> CIFinished:
    """CI green with a flaky check: a minor issue."""
    return CIFinished(phase, f"sha-{phase}-{attempt}", CIResult.GREEN, flaky_checks=("lint",))


def at_ci(attempt: int = 1) -> list[Event]:
    return [built(attempt=attempt), gate(attempt=attempt), pushed(attempt=attempt)]


# (id, strategy options, events before, the event, status after, effect names)
ROWS: list[tuple[str, dict[str, Any], list[Event] | None, Event, RunStatus, list[str]]] = [
    ("strategy ready", {}, [], StrategyReady(make_strategy()), S.RUN_CREATED,
     ["CreateBranch", "WriteArtefacts", "Report"]),
    ("strategy rejected", {}, [], StrategyRejected("autopack.yml line 3: bad key"),
     S.DONE_FAILED_POLICY_VIOLATION, END),
    ("strategy of another run", {}, [], StrategyReady(make_strategy(run_id="other")),
     S.DONE_FAILED_POLICY_VIOLATION, END),
    ("branch ready", {}, [StrategyReady(make_strategy())], BranchReady("sha0"),
     S.PHASE_QUEUEING, ["QueuePhases"]),
    ("phases queued", {}, [StrategyReady(make_strategy()), BranchReady("sha0")], PhasesQueued(),
     S.PHASE_EXECUTION, ["Report", "RunBuilder"]),
    ("builder ok", {}, None, built(), S.GATE, ["EvaluateGate"]),
    ("builder failed, retry", {}, None, broke(), S.PHASE_EXECUTION,
     ["RunBuilder"]),
    ("builder failed, escalate", {"max_builder_attempts": 1}, None, broke(), S.PHASE_EXECUTION,
     ["RunAuditor"]),
    ("builder failed, no auditor: phase fails", {"max_builder_attempts": 1,
     "auditor_backend": None}, None, broke(), S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("builder failed, multi_tier goes on", {"tiers": (1, 1), "max_builder_attempts": 1,
     "auditor_backend": None}, None, broke(), S.PHASE_EXECUTION, ["Report", "RunBuilder"]),
    ("builder failed, single_tier ends", {"tiers": (1, 1), "max_builder_attempts": 1,
     "auditor_backend": None, "run_scope": RunScope.SINGLE_TIER}, None, broke(),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("builder failed, safety_critical ends", {"tiers": (1, 1), "max_builder_attempts": 1,
     "auditor_backend": None, "safety_profile": SafetyProfile.SAFETY_CRITICAL}, None, broke(),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("gate pass, auto_apply", {}, [built()], gate(), S.GATE, ["PushChange"]),
    ("gate pass, review first", {"auto_apply": False}, [built()], gate(), S.GATE, ["RunAuditor"]),
    ("gate pass, review but no auditor: pushed, marked", {"auto_apply": False,
     "auditor_backend": None}, [built()], gate(), S.GATE, ["PushChange"]),
    ("gate review (tests weakened)", {}, [built()], weakened(), S.GATE, ["RunAuditor"]),
    ("gate review, no auditor: pushed, marked", {"auditor_backend": None}, [built()],
     weakened(), S.GATE, ["PushChange"]),
    ("gate retry", {}, [built()], gate(Decision.RETRY), S.PHASE_EXECUTION,
     ["RunBuilder"]),
    ("gate fail_policy", {}, [built()], gate(Decision.FAIL_POLICY),
     S.DONE_FAILED_POLICY_VIOLATION, END),
    ("review approves", {"auto_apply": False}, [built(), gate()],
     audited(AuditorVerdict.APPROVE), S.GATE, ["PushChange"]),
    ("review rejects", {"auto_apply": False}, [built(), gate()],
     audited(AuditorVerdict.REJECT), S.PHASE_EXECUTION, ["RunBuilder"]),
    ("review patches", {"auto_apply": False}, [built(), gate()],
     audited(AuditorVerdict.PATCH), S.PHASE_EXECUTION, ["RunBuilder"]),
    ("pushed", {}, [built(), gate()], pushed(), S.CI_RUNNING, ["WaitForCI"]),
    ("change lost before the gate: next attempt", {}, [built()],
     AttemptLost("p1", 1, "lost"), S.PHASE_EXECUTION, ["RunBuilder"]),
    ("change lost before the push: next attempt", {}, [built(), gate()],
     AttemptLost("p1", 1, "lost"), S.PHASE_EXECUTION, ["RunBuilder"]),
    ("change lost, no attempt left: phase fails", {"max_builder_attempts": 1,
     "auditor_backend": None}, [built(), gate()], AttemptLost("p1", 1, "lost"),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("push rejected", {}, [built(), gate()], PushRejected("p1", 1, "branch moved"),
     S.DONE_FAILED_ENVIRONMENT, END),
    ("ci green", {}, at_ci(), ci(CIResult.GREEN), S.SNAPSHOT_CREATED, ["CreateSnapshot"]),
    ("ci red, rerun", {}, at_ci(), ci(CIResult.RED), S.CI_RUNNING, ["RerunCI", "WaitForCI"]),
    ("ci red, no rerun left: retry on top", {"max_reruns": 0}, at_ci(), ci(CIResult.RED),
     S.PHASE_EXECUTION, ["RunBuilder"]),
    ("ci red, tier ci cap: no rerun", {"ci_run_cap": 1}, at_ci(), ci(CIResult.RED),
     S.PHASE_EXECUTION, ["RunBuilder"]),
    ("ci red, builder used up: auditor", {"max_reruns": 0, "max_builder_attempts": 1},
     at_ci(), ci(CIResult.RED), S.PHASE_EXECUTION, ["RunAuditor"]),
    ("ci red, nobody left: phase fails", {"max_reruns": 0, "max_builder_attempts": 1,
     "max_auditor_attempts": 0}, at_ci(), ci(CIResult.RED),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("ci timed out: no rerun", {}, at_ci(), ci(CIResult.TIMED_OUT), S.PHASE_EXECUTION,
     ["RunBuilder"]),
    ("no ci, pass_with_major", {}, at_ci(), ci(CIResult.NO_CI), S.SNAPSHOT_CREATED,
     ["CreateSnapshot"]),
    ("no ci, fail", {"on_no_ci": NoCIPolicy.FAIL}, at_ci(), ci(CIResult.NO_CI),
     S.DONE_FAILED_ENVIRONMENT, END),
    ("auditor patches", {"max_builder_attempts": 1}, [broke()], audited(AuditorVerdict.PATCH,
     attempt=2), S.GATE, ["EvaluateGate"]),
    ("auditor rejects, attempts left", {"max_builder_attempts": 1, "max_auditor_attempts": 2},
     [broke()], audited(AuditorVerdict.REJECT, attempt=2), S.PHASE_EXECUTION,
     ["RunAuditor"]),
    ("auditor approves without patch: phase fails", {"max_builder_attempts": 1}, [broke()],
     audited(AuditorVerdict.APPROVE, attempt=2), S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("auditor patch passes the gate: push without review", {"max_builder_attempts": 1,
     "auto_apply": False}, [broke(), audited(AuditorVerdict.PATCH, attempt=2)],
     gate(attempt=2), S.GATE, ["PushChange"]),
    ("snapshot of the last phase", {}, [*at_ci(), ci(CIResult.GREEN)],
     SnapshotCreated("p1", "t"), S.DONE_SUCCESS, END),
    ("snapshot, next phase", {"tiers": (2,)}, [*at_ci(), ci(CIResult.GREEN)],
     SnapshotCreated("p1", "t"), S.PHASE_EXECUTION, ["Report", "RunBuilder"]),
    ("snapshot, safety_critical tier with a major", {"safety_profile":
     SafetyProfile.SAFETY_CRITICAL, "tiers": (1, 1)}, [*at_ci(), ci(CIResult.NO_CI)],
     SnapshotCreated("p1", "t"), S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("snapshot, safety_critical tier over its minor tolerance", {"safety_profile":
     SafetyProfile.SAFETY_CRITICAL, "tiers": (1, 1), "minor_tolerance": 0},
     [*at_ci(), flaky_green()], SnapshotCreated("p1", "t"), S.DONE_FAILED_REQUIRES_HUMAN_REVIEW,
     END),
    ("snapshot, normal tier over its minor tolerance goes on", {"tiers": (1, 1),
     "minor_tolerance": 0}, [*at_ci(), flaky_green()], SnapshotCreated("p1", "t"),
     S.PHASE_EXECUTION, ["Report", "RunBuilder"]),
    ("snapshot, safety_critical tier that reached its token cap", {"safety_profile":
     SafetyProfile.SAFETY_CRITICAL, "tiers": (1, 1), "tier_token_cap": 10},
     [*at_ci(), ci(CIResult.GREEN)], SnapshotCreated("p1", "t"),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("snapshot, clean safety_critical tier goes on", {"safety_profile":
     SafetyProfile.SAFETY_CRITICAL, "tiers": (1, 1)}, [*at_ci(), ci(CIResult.GREEN)],
     SnapshotCreated("p1", "t"), S.PHASE_EXECUTION, ["Report", "RunBuilder"]),
    ("debt cleanup fails: the run succeeds", {"debt_cleanup": True, "max_builder_attempts": 1,
     "auditor_backend": None}, green_phase("p1"), broke("debt"), S.DONE_SUCCESS, END),
    ("debt cleanup fails, safety_critical: the run succeeds", {"debt_cleanup": True,
     "max_builder_attempts": 1, "auditor_backend": None, "safety_profile":
     SafetyProfile.SAFETY_CRITICAL}, green_phase("p1"), broke("debt"), S.DONE_SUCCESS, END),
    ("debt cleanup fails, single_tier: the run succeeds", {"debt_cleanup": True,
     "max_builder_attempts": 1, "auditor_backend": None, "run_scope": RunScope.SINGLE_TIER},
     green_phase("p1"), broke("debt"), S.DONE_SUCCESS, END),
    ("debt cleanup at the run token cap: only the cleanup stops", {"debt_cleanup": True,
     "run_token_cap": 15}, green_phase("p1"), broke("debt"), S.DONE_SUCCESS, END),
    ("debt cleanup over the minor cap: only the cleanup stops", {"debt_cleanup": True,
     "max_minor_issues": 1}, green_phase("p1"), BuilderFinished("debt", 1, OK, issues=(
         Finding("a", Severity.MINOR, "x"), Finding("b", Severity.MINOR, "x"))),
     S.DONE_SUCCESS, END),
    ("debt cleanup fails after a requested phase failed", {"tiers": (1, 1), "debt_cleanup":
     True, "max_builder_attempts": 1, "auditor_backend": None}, [broke("p1"), *green_phase("p2")],
     broke("debt"), S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("run token cap reached: nothing new starts", {"run_token_cap": 10}, None, broke(),
     S.DONE_FAILED_BUDGET_EXHAUSTED, END),
    ("tier token cap reached: phase fails", {"tier_token_cap": 10}, None, broke(),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("phase token cap reached: phase fails", {"incident_token_cap": 10}, None, broke(),
     S.DONE_FAILED_REQUIRES_HUMAN_REVIEW, END),
    ("too many minor issues", {"max_minor_issues": 1}, None,
     BuilderFinished("p1", 1, OK, issues=(Finding("a", Severity.MINOR, "x"),
                                           Finding("b", Severity.MINOR, "x"))),
     S.DONE_FAILED_BUDGET_EXHAUSTED, END),
    ("cancelled", {}, None, Cancelled("octocat", "enough"), S.DONE_FAILED_CANCELLED,
     ["CancelInFlight", *END]),
    ("cancelled before the strategy", {}, [], Cancelled("octocat"), S.DONE_FAILED_CANCELLED,
     ["CancelInFlight", *END]),
    ("run timed out", {}, None, RunTimedOut(), S.DONE_FAILED_BUDGET_EXHAUSTED,
     ["CancelInFlight", *END]),
    ("environment failed", {}, [built()], EnvironmentFailed("GitHub is down"),
     S.DONE_FAILED_ENVIRONMENT, ["CancelInFlight", *END]),
    ("phase timed out: attempt failed", {}, None, PhaseTimedOut("p1", 1), S.PHASE_EXECUTION,
     ["RunBuilder"]),
    ("phase timed out in CI: no reset", {}, at_ci(), PhaseTimedOut("p1", 1), S.PHASE_EXECUTION,
     ["RunBuilder"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "before", "event", "status", "effects"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_transition(
    options: dict[str, Any],
    before: list[Event] | None,
    event: Event,
    status: RunStatus,
    effects: list[str],
) -> None:
    strategy = make_strategy(**options)
    # None: the run is at its first builder attempt; a list not starting with StrategyReady
    # continues from there; otherwise the list is the whole history.
    if before is None:
        prefix = bootstrap(strategy)
    elif before and not isinstance(before[0], StrategyReady):
        prefix = bootstrap(strategy) + before
    else:
        prefix = before
    run, _ = drive(prefix)
    after, produced = advance(run, event)
    assert after.status is status
    assert names(produced) == effects
    assert after.seq == run.seq + 1
    assert status.is_terminal == (after.awaiting is None)


# -- details -----------------------------------------------------------------------------------


def test_the_first_builder_is_told_its_budgets() -> None:
    strategy = make_strategy(incident_token_cap=700, max_builder_attempts=3)
    run, effects = drive(bootstrap(strategy))
    builder = effects[-1]
    assert isinstance(builder, RunBuilder)
    assert (builder.phase_id, builder.attempt, builder.feedback) == ("p1", 1, ())
    assert builder.budgets_left.tokens == 700
    assert builder.budgets_left.builder_attempts == 2
    assert builder.budgets_left.auditor_attempts == 1
    assert builder.budgets_left.seconds == 1800
    assert run.awaiting is not None
    assert run.awaiting.label() == ("builder", "p1", 1)


def test_tokens_left_is_the_smallest_of_run_tier_and_phase() -> None:
    strategy = make_strategy(run_token_cap=250, tier_token_cap=180, incident_token_cap=1000)
    run, effects = drive([*bootstrap(strategy), broke(tokens=100)])
    builder = effects[-1]
    assert isinstance(builder, RunBuilder)
    assert builder.budgets_left.tokens == 80  # tier: 180 - 100
    assert run.tokens == 100
    assert run.tier_progress("t1").tokens == 100


def test_tokens_beyond_the_cap_are_counted_and_nothing_new_starts() -> None:
    strategy = make_strategy(run_token_cap=50)
    run, effects = drive([*bootstrap(strategy), broke(tokens=400)])
    assert run.tokens == 400
    assert run.status is S.DONE_FAILED_BUDGET_EXHAUSTED
    assert not any(isinstance(e, RunBuilder | RunAuditor) for e in effects)
    assert "token cap" in run.terminal_reason


def test_a_failed_attempt_feeds_back_and_records_its_issue() -> None:
    run, effects = drive([*bootstrap(make_strategy()), broke()])
    builder = effects[-1]
    assert isinstance(builder, RunBuilder)
    assert builder.attempt == 2
    assert builder.feedback == ("Attempt 1: the builder ended failed: tests fail",)
    assert dict(run.phase_progress("p1").issues) == {"builder:failed": Severity.MINOR}
    assert dict(run.issues) == {"builder:failed": Severity.MINOR}


def test_ci_red_feedback_names_the_checks_and_the_builder_continues_on_the_commit() -> None:
    strategy = make_strategy(max_reruns=0)
    run, effects = drive([*bootstrap(strategy), *at_ci(), ci(CIResult.RED)])
    assert names(effects) == ["RunBuilder"]
    builder = effects[0]
    assert isinstance(builder, RunBuilder)
    assert "red (tests)" in builder.feedback[-1]
    assert run.head_sha == "sha-p1-1"
    # the next push expects the pushed commit as head
    run, effects = drive([built(attempt=2), gate(attempt=2)], run)
    push = effects[0]
    assert isinstance(push, PushChange)
    assert (push.branch, push.expected_head, push.attempt) == (BRANCH, "sha-p1-1", 2)


def test_a_check_that_passes_on_rerun_is_a_flaky_minor_issue() -> None:
    strategy = make_strategy(max_reruns=2)
    run, effects = drive([*bootstrap(strategy), *at_ci(), ci(CIResult.RED)])
    rerun, wait = effects
    assert isinstance(rerun, RerunCI)
    assert isinstance(wait, WaitForCI)
    assert (rerun.checks, rerun.rerun, wait.rerun) == (("tests",), 1, 1)
    stale, _ = advance(run, ci(CIResult.GREEN))  # the first run's result again: rerun 0
    assert stale is run
    green = CIFinished("p1", "sha-p1-1", CIResult.GREEN, flaky_checks=("lint",), rerun=1)
    run, effects = advance(run, green)
    assert run.status is S.SNAPSHOT_CREATED
    assert dict(run.issues) == {"ci:flaky:lint": Severity.MINOR, "ci:flaky:tests": Severity.MINOR}
    snapshot = effects[0]
    assert isinstance(snapshot, CreateSnapshot)
    assert snapshot.tag == f"autopack/{RUN_ID}/p1"


def test_every_ci_run_counts_against_the_tier_and_the_cap_marks_it_not_clean() -> None:
    strategy = make_strategy(ci_run_cap=2, max_reruns=3)
    run, effects = drive([*bootstrap(strategy), *at_ci(), ci(CIResult.RED)])
    assert names(effects) == ["RerunCI", "WaitForCI"]
    run, effects = advance(run, ci(CIResult.RED, rerun=1))
    assert names(effects) == ["RunBuilder"]  # no third CI run on this tier
    tier = run.tier_progress("t1")
    assert (tier.ci_runs, tier.ci_cap_hit) == (2, True)


def test_no_ci_passes_with_a_major_issue() -> None:
    run, _ = drive([*bootstrap(make_strategy()), *at_ci(), ci(CIResult.NO_CI)])
    assert dict(run.issues) == {"ci:none": Severity.MAJOR}


def test_escalation_after_ci_failures_says_so_and_its_patch_is_gated_as_auditor_patch() -> None:
    strategy = make_strategy(max_builder_attempts=1, max_reruns=0)
    run, effects = drive([*bootstrap(strategy), *at_ci(), ci(CIResult.RED)])
    auditor = effects[0]
    assert isinstance(auditor, RunAuditor)
    assert (auditor.reason, auditor.attempt) == (AuditReason.CI_FAILURES, 2)
    assert auditor.key == "auditor:p1:2"
    run, effects = advance(run, audited(AuditorVerdict.PATCH, attempt=2))
    assert effects == (EvaluateGate("p1", 2, auditor_patch=True),)
    run, effects = drive([gate(attempt=2), pushed(attempt=2), ci(CIResult.RED, attempt=2)], run)
    # the auditor's pushed patch failed CI and it had one attempt: the phase fails
    assert run.status is S.DONE_FAILED_REQUIRES_HUMAN_REVIEW
    assert run.phase_progress("p1").status is PhaseStatus.FAILED


def test_pre_push_review_belongs_to_the_builder_attempt() -> None:
    strategy = make_strategy(auto_apply=False)
    run, effects = drive([*bootstrap(strategy), built(), gate()])
    review = effects[0]
    assert isinstance(review, RunAuditor)
    assert (review.reason, review.attempt, review.key) == (
        AuditReason.PRE_PUSH_REVIEW,
        1,
        "review:p1:1",
    )
    assert run.awaiting is not None
    assert run.awaiting.kind is AwaitKind.REVIEW
    assert run.phase_progress("p1").auditor_attempts == 0


def test_a_review_with_no_auditor_pushes_and_marks_the_phase_for_a_person() -> None:
    strategy = make_strategy(auto_apply=False, auditor_backend=None)
    run, effects = drive([*bootstrap(strategy), built(), weakened()])
    assert [type(e).__name__ for e in effects] == ["PushChange"]
    assert run.needs_review == ()  # marked once the change has landed
    run, _ = advance(run, pushed())
    marks = run.phase_progress("p1").needs_review
    assert len(marks) == 2
    assert "auto_apply off" in marks[0]
    assert marks[1] == "the gate found test_deleted in tests/test_a.py"
    assert run.needs_review == (("p1", marks[0]), ("p1", marks[1]))
    # The marks survive the rest of the phase and the stored state, and the run succeeds.
    run, _ = drive([ci(CIResult.GREEN), SnapshotCreated("p1", "t")], run)
    assert run.status is S.DONE_SUCCESS
    assert RunState.from_json(run.to_json()).needs_review == run.needs_review
    # A state stored before the mark existed reads as "nothing to review".
    stored = run.to_json()
    for phase in stored["phases"]:
        del phase["needs_review"]
    assert RunState.from_json(stored).needs_review == ()


def test_a_change_lost_before_its_push_marks_nothing_for_review() -> None:
    strategy = make_strategy(auto_apply=False, auditor_backend=None, max_builder_attempts=3)
    run, effects = drive([*bootstrap(strategy), built(), gate(), AttemptLost("p1", 1, "lost")])
    assert names(effects) == ["RunBuilder"]
    assert run.needs_review == ()  # the unreviewed change never reached the branch
    run, _ = drive([built(attempt=2), gate(attempt=2), pushed(attempt=2)], run)
    assert [phase for phase, _ in run.needs_review] == ["p1"]


def test_a_review_with_an_auditor_tells_it_why() -> None:
    run, effects = drive([*bootstrap(make_strategy()), built(), weakened()])
    (review,) = effects
    assert isinstance(review, RunAuditor)
    assert review.reason is AuditReason.PRE_PUSH_REVIEW
    assert review.feedback[-1] == "Review needed: the gate found test_deleted in tests/test_a.py"
    assert run.phase_progress("p1").needs_review == ()
    run, effects = advance(run, audited(AuditorVerdict.APPROVE))
    assert [type(e).__name__ for e in effects] == ["PushChange"]
    assert run.needs_review == ()


def test_a_failed_tier_skips_its_phases_and_the_next_tier_runs() -> None:
    strategy = make_strategy((2, 1), max_builder_attempts=1, auditor_backend=None)
    run, effects = drive([*bootstrap(strategy), broke()])
    assert [p.status for p in run.phases] == [
        PhaseStatus.FAILED,
        PhaseStatus.SKIPPED,
        PhaseStatus.RUNNING,
    ]
    assert run.tier_progress("t1").status is TierStatus.FAILED
    assert isinstance(effects[-1], RunBuilder)
    assert effects[-1].phase_id == "p3"
    run, effects = drive(green_phase("p3"), run)
    assert run.status is S.DONE_FAILED_REQUIRES_HUMAN_REVIEW
    assert run.tier_progress("t2").status is TierStatus.COMPLETE
    assert "t1" in run.terminal_reason


def test_tier_cap_marks_the_tier_not_clean() -> None:
    run, _ = drive([*bootstrap(make_strategy(tier_token_cap=10)), broke()])
    tier = run.tier_progress("t1")
    assert tier.token_cap_hit
    assert not tier.clean


def test_aging_raises_severity_and_tier_tolerances_set_flags() -> None:
    strategy = make_strategy(minor_tolerance=0, major_tolerance=0)
    strategy = type(strategy)(
        **{**strategy.__dict__, "effective_severity": {"old": Severity.MAJOR}}
    )
    issues = (Finding("old", Severity.MINOR, "x"), Finding("new", Severity.MINOR, "x"))
    run, _ = drive([*bootstrap(strategy), BuilderFinished("p1", 1, OK, issues=issues)])
    assert dict(run.issues) == {"new": Severity.MINOR, "old": Severity.MAJOR}
    tier = run.tier_progress("t1")
    assert tier.minor_cap_hit
    assert tier.major_cap_hit


def test_success_is_clean_and_keys_are_unique() -> None:
    strategy = make_strategy((2, 1))
    events = [*bootstrap(strategy), *green_phase("p1"), *green_phase("p2"), *green_phase("p3")]
    run = start_run(RUN_ID)[0]
    keys: list[str] = []
    for event in events:
        run, effects = advance(run, event)
        keys += [e.key for e in effects]
    assert run.status is S.DONE_SUCCESS
    assert all(t.clean for t in run.tiers)
    assert len(keys) == len(set(keys))
    assert "push:p2:1" in keys
    assert "snapshot:p3" in keys


def test_initial_artefacts_move_the_head_once() -> None:
    run, effects = drive([StrategyReady(make_strategy())])
    assert WriteArtefacts(final=False, branch=BRANCH) in effects
    assert CreateBranch(BRANCH) in effects
    run, _ = drive([BranchReady("sha0"), ArtefactsWritten("sha1")], run)
    assert (run.head_sha, run.artefacts_pending) == ("sha1", False)
    again, _ = advance(run, ArtefactsWritten("sha-old"))
    assert again is run


def test_artefacts_stay_off_the_branch_when_not_committed() -> None:
    _, effects = drive([StrategyReady(make_strategy(commit_artefacts=False))])
    assert WriteArtefacts(final=False, branch=None) in effects


@pytest.mark.parametrize(
    "event",
    [
        BuilderFinished("p1", 2, OK),  # a future attempt
        BuilderFinished("p2", 1, OK),  # another phase
        GateEvaluated("p1", 1, Decision.PASS),  # out of order
        CIFinished("p1", "sha", CIResult.GREEN),
        SnapshotCreated("p1", "t"),
        BranchReady("x"),
        PhasesQueued(),
        StrategyReady(make_strategy()),
        PhaseTimedOut("p1", 2),
        ArtefactsWritten("x"),
        Pushed("p1", 1, "x"),
        AttemptLost("p1", 1, "lost"),  # the builder is still at work: nothing to lose yet
    ],
    ids=lambda e: type(e).__name__,
)
def test_stale_and_out_of_order_events_change_nothing(event: Event) -> None:
    run, _ = drive([*bootstrap(make_strategy()), ArtefactsWritten("sha1")])
    after, effects = advance(run, event)
    assert after is run
    assert effects == ()


def test_duplicates_change_nothing() -> None:
    run, _ = drive([*bootstrap(make_strategy()), built()])
    again, effects = advance(run, built())
    assert (again, effects) == (run, ())


def test_after_a_terminal_state_nothing_changes() -> None:
    run, _ = drive([*bootstrap(make_strategy()), Cancelled("octocat")])
    for event in [Cancelled("x"), RunTimedOut(), built(), EnvironmentFailed("x")]:
        assert advance(run, event) == (run, ())


def test_terminal_states_close_open_phases_and_tiers() -> None:
    run, _ = drive([*bootstrap(make_strategy((1, 1))), Cancelled("octocat")])
    assert [p.status for p in run.phases] == [PhaseStatus.FAILED, PhaseStatus.SKIPPED]
    assert [t.status for t in run.tiers] == [TierStatus.FAILED, TierStatus.SKIPPED]
    assert run.terminal_reason == "Cancelled by octocat."


def test_state_round_trips_through_json() -> None:
    run, _ = drive([*bootstrap(make_strategy((1, 2))), broke()])
    assert RunState.from_json(run.to_json()) == run
    with pytest.raises(ValueError, match="expected int"):
        RunState.from_json({**run.to_json(), "seq": "3"})


# -- the documented table matches the code -------------------------------------------------------


def _doc_pairs() -> set[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip(" `") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"[A-Z_]+|any", cells[0]) and cells[1][:1].isupper():
            pairs.add((cells[0], cells[1]))
    return pairs


def test_every_documented_transition_exists_in_code() -> None:
    pairs = _doc_pairs()
    assert len(pairs) >= 15
    for state, event in pairs:
        event_type = EVENT_TYPES[event]
        states = [s for s in RunStatus if not s.is_terminal] if state == "any" else [S(state)]
        for status in states:
            assert handles(status, event_type), (state, event)


def test_every_transition_in_code_is_documented() -> None:
    pairs = _doc_pairs()
    for status in RunStatus:
        for name, event_type in EVENT_TYPES.items():
            if handles(status, event_type):
                assert (status.value, name) in pairs or ("any", name) in pairs, (status, name)


def test_unknown_or_malformed_json_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        event_from_json({"type": "Nope"})
    with pytest.raises(ValueError, match="unknown effect type"):
        effect_from_json({"type": "Nope"})
    with pytest.raises(ValueError, match="BuilderFinished"):
        event_from_json({"type": "BuilderFinished", "phase_id": "p1"})
    with pytest.raises(ValueError, match="expected an event of type Pushed"):
        Pushed.from_json(built().to_json())
    data = built().to_json()
    assert data["type"] == "BuilderFinished"
    assert data["outcome"] == "ok"
    push = PushChange(BRANCH, "p1", 2, "sha0")
    assert push.to_json()["key"] == "push:p1:2"
    assert effect_from_json(push.to_json()) == push


# -- debt cleanup, safety-critical cleanliness, high-risk severities ---------------------------


def test_a_failed_debt_cleanup_is_recorded_and_the_asked_for_phases_decide() -> None:
    strategy = make_strategy(debt_cleanup=True, max_builder_attempts=1, auditor_backend=None)
    run, _ = drive([*bootstrap(strategy), *green_phase("p1"), broke("debt")])
    assert run.status is S.DONE_SUCCESS
    debt = run.phase_progress("debt")
    assert debt.status is PhaseStatus.FAILED
    assert "attempt(s)" in debt.failure_reason
    assert run.tier_progress("t1").status is TierStatus.COMPLETE
    assert "debt cleanup (debt) did not succeed" in run.terminal_reason
    # It never pushed: the branch holds only green work, so the run may be promoted.
    assert promotion(run).eligible


def test_a_debt_cleanup_that_failed_after_pushing_keeps_the_run_from_promotion() -> None:
    strategy = make_strategy(
        debt_cleanup=True, max_builder_attempts=1, auditor_backend=None, max_reruns=0
    )
    red = CIFinished("debt", "sha-debt-1", CIResult.RED, ("tests",))
    pushed_red = [built("debt"), gate(phase="debt"), pushed("debt"), red]
    run, _ = drive([*bootstrap(strategy), *green_phase("p1"), *pushed_red])
    assert run.status is S.DONE_SUCCESS
    verdict = promotion(run)
    assert not verdict.eligible
    assert verdict.reasons == (
        "the debt cleanup debt failed after pushing a change CI did not pass",
    )


def test_a_requested_phase_never_gets_the_debt_cleanup_exemption() -> None:
    strategy = make_strategy(debt_cleanup=True, max_builder_attempts=1, auditor_backend=None)
    run, _ = drive([*bootstrap(strategy), broke("p1")])
    assert run.status is S.DONE_FAILED_REQUIRES_HUMAN_REVIEW
    assert run.phase_progress("debt").status is PhaseStatus.SKIPPED  # after a failed tier


def test_a_safety_critical_run_stops_at_a_tier_that_is_not_clean_and_says_why() -> None:
    strategy = make_strategy(
        (1, 1), safety_profile=SafetyProfile.SAFETY_CRITICAL, minor_tolerance=0, tier_token_cap=10
    )
    run, _ = drive([*bootstrap(strategy), *at_ci(), flaky_green(), SnapshotCreated("p1", "t")])
    assert run.status is S.DONE_FAILED_REQUIRES_HUMAN_REVIEW
    assert run.terminal_reason == (
        "Tier t1 is not clean in a safety-critical run: 1 minor issue(s), tolerance 0; "
        "the tier token cap was reached."
    )
    assert run.tier_progress("t2").status is TierStatus.SKIPPED
    assert unclean_reasons(run, "t2") == []


def test_in_a_safety_critical_tier_majors_count_against_its_tolerance() -> None:
    no_ci = [*at_ci(), ci(CIResult.NO_CI), SnapshotCreated("p1", "t")]  # the major ci:none
    critical = {"safety_profile": SafetyProfile.SAFETY_CRITICAL}
    strict, _ = drive([*bootstrap(make_strategy(**critical, major_tolerance=0)), *no_ci])
    assert strict.terminal_reason.endswith("1 major issue(s), tolerance 0.")
    tolerant, _ = drive([*bootstrap(make_strategy(**critical, major_tolerance=1)), *no_ci])
    assert tolerant.status is S.DONE_SUCCESS
    normal, _ = drive([*bootstrap(make_strategy(major_tolerance=0)), *no_ci])
    assert normal.status is S.DONE_SUCCESS  # the rule is the safety-critical profile's


SEVERITY_CASES = [
    # (id, phase reports major?, major categories, where the finding comes from, category,
    #  reported severity, recorded severity)
    ("plain work keeps the reported severity", False, (), "builder", "style", "minor", "minor"),
    ("high-risk work: a builder's issue is major", True, (), "builder", "style", "minor",
     "major"),
    ("high-risk work: an auditor's issue is major", True, (), "auditor", "style", "minor",
     "major"),
    ("high-risk work: the gate's minor stays minor", True, (), "gate", "probe_failed", "minor",
     "minor"),
    ("a high-risk issue category is major anywhere", False, ("schema_contract_change",), "gate",
     "schema_contract_change", "minor", "major"),
    ("from a builder too", False, ("security_auth_change",), "builder", "security_auth_change",
     "minor", "major"),
    ("a major stays major", False, (), "builder", "style", "major", "major"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reported_major", "categories", "source", "category", "severity", "recorded"),
    [pytest.param(*case[1:], id=case[0]) for case in SEVERITY_CASES],
)
def test_high_risk_issues_are_major(
    reported_major: bool,
    categories: tuple[str, ...],
    source: str,
    category: str,
    severity: str,
    recorded: str,
) -> None:
    strategy = make_strategy(
        max_builder_attempts=1,
        reported_issues_major=reported_major,
        major_issue_categories=categories,
    )
    finding = Finding("k", Severity(severity), category)
    events: list[Event] = {
        "builder": [BuilderFinished("p1", 1, OK, issues=(finding,))],
        "gate": [built(), GateEvaluated("p1", 1, Decision.PASS, (finding,))],
        "auditor": [
            broke(),
            AuditorFinished("p1", 2, AuditorVerdict.PATCH, 5, (finding,)),
        ],
    }[source]
    run, _ = drive([*bootstrap(strategy), *events])
    assert dict(run.phase_progress("p1").issues)["k"] is Severity(recorded)
