"""The state of one run as the machine sees it: status, progress per phase and tier, budgets used.

Frozen values; `evolve(**changes)` returns a new one; `to_json`/`from_json` store it in the
database.
Issue bookkeeping is kept simple here (distinct keys with their worst severity per phase and run);
the richer run index lives in `issues.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from app.domain.dataclass_codec import decode_fields, encode_fields
from app.domain.issue_record import Severity
from app.domain.strategy import Strategy

MAX_FEEDBACK = 8
MAX_FEEDBACK_CHARS = 1000

# (issue_key, worst severity seen), sorted by key.
IssueMarks = tuple[tuple[str, Severity], ...]


class RunStatus(StrEnum):
    """The run states of DESIGN.md (pinned names)."""

    PLAN_BOOTSTRAP = "PLAN_BOOTSTRAP"
    RUN_CREATED = "RUN_CREATED"
    PHASE_QUEUEING = "PHASE_QUEUEING"
    PHASE_EXECUTION = "PHASE_EXECUTION"
    GATE = "GATE"
    CI_RUNNING = "CI_RUNNING"
    SNAPSHOT_CREATED = "SNAPSHOT_CREATED"
    DONE_SUCCESS = "DONE_SUCCESS"
    DONE_FAILED_BUDGET_EXHAUSTED = "DONE_FAILED_BUDGET_EXHAUSTED"
    DONE_FAILED_POLICY_VIOLATION = "DONE_FAILED_POLICY_VIOLATION"
    DONE_FAILED_REQUIRES_HUMAN_REVIEW = "DONE_FAILED_REQUIRES_HUMAN_REVIEW"
    DONE_FAILED_ENVIRONMENT = "DONE_FAILED_ENVIRONMENT"
    DONE_FAILED_CANCELLED = "DONE_FAILED_CANCELLED"

    @property
    def is_terminal(self) -> bool:
        """True for the DONE_* states."""
        return self.value.startswith("DONE_")


class PhaseStatus(StrEnum):
    """Where one phase stands."""

    PENDING = "pending"
    RUNNING = "running"
    GREEN = "green"
    FAILED = "failed"
    SKIPPED = "skipped"


class TierStatus(StrEnum):
    """Where one tier stands (the playbook's complete/failed/skipped, plus the two before)."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    SKIPPED = "skipped"


class AwaitKind(StrEnum):
    """What kind of result the machine waits for."""

    STRATEGY = "strategy"
    BRANCH = "branch"
    QUEUE = "queue"
    BUILDER = "builder"
    GATE = "gate"
    REVIEW = "review"  # the auditor's pre-push review of a builder attempt
    AUDITOR = "auditor"  # an escalation: the auditor works on the phase itself
    PUSH = "push"
    CI = "ci"
    SNAPSHOT = "snapshot"


class AuditReason(StrEnum):
    """Why the auditor is called."""

    PRE_PUSH_REVIEW = "pre_push_review"
    BUILDER_FAILURES = "builder_failures"
    CI_FAILURES = "ci_failures"


@dataclass(frozen=True)
class Awaiting:
    """Exactly the one result the machine accepts next; any other is stale and ignored.

    `attempt` numbers builder and auditor attempts of a phase in one sequence, so every commit,
    key and trailer of an attempt is unique. `auditor_patch` marks an attempt that is the
    auditor's patch.
    """

    kind: AwaitKind
    phase_id: str = ""
    attempt: int = 0
    sha: str = ""
    rerun: int = 0
    auditor_patch: bool = False
    reason: AuditReason | None = None  # why the auditor in flight (or whose patch) was called
    # Why the change being pushed needed a review it did not get (no auditor): marked on the
    # phase once the push lands, so an attempt lost before it marks nothing.
    unreviewed: tuple[str, ...] = ()

    def label(self) -> tuple[str | int, ...]:
        """A short tuple for logs, e.g. ("ci", sha, 1)."""
        if self.kind is AwaitKind.CI:
            return (self.kind.value, self.sha, self.rerun)
        if self.phase_id:
            return (self.kind.value, self.phase_id, self.attempt)
        return (self.kind.value,)


@dataclass(frozen=True)
class PhaseProgress:
    """One phase's progress and spend."""

    phase_id: str
    tier_id: str
    status: PhaseStatus = PhaseStatus.PENDING
    builder_attempts: int = 0
    auditor_attempts: int = 0  # escalations only; pre-push reviews belong to their builder attempt
    tokens: int = 0
    ci_runs: int = 0
    reruns_used: int = 0  # re-runs of the CI of the current commit
    last_commit: str | None = None
    failed_checks: tuple[str, ...] = ()  # the last red result of the current commit
    feedback: tuple[str, ...] = ()
    issues: IssueMarks = ()
    failure_reason: str = ""
    # Why a person must review what this phase pushed (it needed a review and had no auditor).
    needs_review: tuple[str, ...] = ()

    @property
    def attempts(self) -> int:
        """Builder plus auditor attempts so far (the last attempt number)."""
        return self.builder_attempts + self.auditor_attempts

    def evolve(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def with_feedback(self, entry: str) -> Self:
        """Append one feedback entry, keeping the newest MAX_FEEDBACK, each cut to size."""
        entry = entry if len(entry) <= MAX_FEEDBACK_CHARS else entry[: MAX_FEEDBACK_CHARS - 1] + "…"
        return self.evolve(feedback=(*self.feedback, entry)[-MAX_FEEDBACK:])


@dataclass(frozen=True)
class TierProgress:
    """One tier's progress, spend and cap flags."""

    tier_id: str
    status: TierStatus = TierStatus.PENDING
    tokens: int = 0
    ci_runs: int = 0
    token_cap_hit: bool = False
    ci_cap_hit: bool = False
    minor_cap_hit: bool = False
    major_cap_hit: bool = False

    @property
    def clean(self) -> bool:
        """`clean` in the playbook's sense: complete and no cap hit."""
        flags = (self.token_cap_hit, self.ci_cap_hit, self.minor_cap_hit, self.major_cap_hit)
        return self.status is TierStatus.COMPLETE and not any(flags)

    def evolve(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunState:
    """Everything the machine knows about one run."""

    run_id: str
    status: RunStatus = RunStatus.PLAN_BOOTSTRAP
    strategy: Strategy | None = None
    phase_index: int = -1
    phases: tuple[PhaseProgress, ...] = ()
    tiers: tuple[TierProgress, ...] = ()
    tokens: int = 0
    head_sha: str | None = None
    awaiting: Awaiting | None = Awaiting(AwaitKind.STRATEGY)
    issues: IssueMarks = ()
    artefacts_pending: bool = False
    terminal_reason: str = ""
    seq: int = 0

    def evolve(self, **changes: Any) -> Self:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @property
    def current_phase(self) -> PhaseProgress | None:
        """The phase being worked on, if any."""
        if 0 <= self.phase_index < len(self.phases):
            return self.phases[self.phase_index]
        return None

    def phase_progress(self, phase_id: str) -> PhaseProgress:
        """One phase's progress (KeyError if unknown)."""
        for phase in self.phases:
            if phase.phase_id == phase_id:
                return phase
        raise KeyError(phase_id)

    def tier_progress(self, tier_id: str) -> TierProgress:
        """One tier's progress (KeyError if unknown)."""
        for tier in self.tiers:
            if tier.tier_id == tier_id:
                return tier
        raise KeyError(tier_id)

    def with_phase(self, phase: PhaseProgress) -> Self:
        """Replace one phase's progress."""
        phases = tuple(phase if p.phase_id == phase.phase_id else p for p in self.phases)
        return self.evolve(phases=phases)

    def with_tier(self, tier: TierProgress) -> Self:
        """Replace one tier's progress."""
        tiers = tuple(tier if t.tier_id == tier.tier_id else t for t in self.tiers)
        return self.evolve(tiers=tiers)

    @property
    def needs_review(self) -> tuple[tuple[str, str], ...]:
        """(phase_id, reason) for everything pushed that a person must review; the run is then
        not eligible for promotion."""
        return tuple((p.phase_id, reason) for p in self.phases for reason in p.needs_review)

    @property
    def minor_count(self) -> int:
        """Distinct issue keys in the run whose worst severity is minor."""
        return sum(1 for _, severity in self.issues if severity is Severity.MINOR)

    def tier_issue_counts(self, tier_id: str) -> tuple[int, int]:
        """(distinct minor, distinct major) issue keys over one tier's phases."""
        marks = merge_marks((), (m for p in self.phases if p.tier_id == tier_id for m in p.issues))
        majors = sum(1 for _, severity in marks if severity is Severity.MAJOR)
        return len(marks) - majors, majors

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only (the strategy as strategy.json)."""
        return encode_fields(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        """Inverse of `to_json`; ValueError on a bad shape."""
        return decode_fields(cls, data)


def merge_marks(marks: IssueMarks, new: Iterable[tuple[str, Severity]]) -> IssueMarks:
    """Add issue keys, keeping each key once with its worst severity, sorted by key."""
    merged = dict(marks)
    for key, severity in new:
        if merged.get(key) is not Severity.MAJOR:
            merged[key] = severity
    return tuple(sorted(merged.items()))
