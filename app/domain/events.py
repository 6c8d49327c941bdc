"""The events the worker feeds back into the machine: results of effects, timers, and operators.

Frozen values; `to_json()` adds a "type" tag and `event_from_json` reads any of them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from app.domain.dataclass_codec import decode_fields, encode_fields
from app.domain.gate import Decision
from app.domain.issue_record import Severity
from app.domain.strategy import Strategy


class BuilderOutcome(StrEnum):
    """How a builder attempt ended (anything but ok is a failed attempt)."""

    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    NO_CHANGE = "no_change"
    ERROR = "error"


class CIResult(StrEnum):
    """What the required checks on a pushed commit said."""

    GREEN = "green"
    RED = "red"
    NO_CI = "no_ci"
    TIMED_OUT = "timed_out"


class AuditorVerdict(StrEnum):
    """The auditor's answer."""

    APPROVE = "approve"
    REJECT = "reject"
    PATCH = "patch"


@dataclass(frozen=True)
class Finding:
    """One issue reported with a result: (issue_key, severity, category)."""

    issue_key: str
    severity: Severity
    category: str
    path: str | None = None  # evidence, for people: never part of what the machine decides
    line: int | None = None
    message: str = ""


class _Event:
    """JSON with a "type" tag for every event class."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, with a "type" tag."""
        return {"type": type(self).__name__, **encode_fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_json` for this class; ValueError on a bad shape or tag."""
        if data.get("type") != cls.__name__:
            raise ValueError(f"expected an event of type {cls.__name__}")
        return decode_fields(cls, {k: v for k, v in data.items() if k != "type"})


@dataclass(frozen=True)
class StrategyReady(_Event):
    """The strategy was compiled and frozen (`planner_tokens`: what writing the plan cost)."""

    strategy: Strategy
    planner_tokens: int = 0


@dataclass(frozen=True)
class StrategyRejected(_Event):
    """The ruleset or plan is invalid: the run does not start."""

    reason: str


@dataclass(frozen=True)
class BranchReady(_Event):
    """The integration branch exists at `head_sha`."""

    head_sha: str


@dataclass(frozen=True)
class PhasesQueued(_Event):
    """Phases and tiers are stored."""


@dataclass(frozen=True)
class BuilderFinished(_Event):
    """A builder attempt ended."""

    phase_id: str
    attempt: int
    outcome: BuilderOutcome
    tokens_used: int = 0
    issues: tuple[Finding, ...] = ()
    summary: str = ""
    failure_reason: str = ""


@dataclass(frozen=True)
class GateEvaluated(_Event):
    """The gate judged an attempt's change."""

    phase_id: str
    attempt: int
    decision: Decision
    findings: tuple[Finding, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class Pushed(_Event):
    """The attempt's change is a commit on the integration branch."""

    phase_id: str
    attempt: int
    commit_sha: str


@dataclass(frozen=True)
class PushRejected(_Event):
    """The integration branch moved under us (or the write path refused): environment failure."""

    phase_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class AttemptLost(_Event):
    """The attempt's unpushed change is gone (its worker stopped and the work tree with it)."""

    phase_id: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class CIFinished(_Event):
    """CI on a pushed commit reached a result; `rerun` is 0 for the first run, n for re-run n."""

    phase_id: str
    sha: str
    result: CIResult
    failed_checks: tuple[str, ...] = ()
    flaky_checks: tuple[str, ...] = ()
    summary: str = ""
    rerun: int = 0
    # What the failing checks and statuses said (capped, see domain/ci.py), for the auditor and
    # the incident pack; absent in events stored before it existed.
    output: str = ""


@dataclass(frozen=True)
class AuditorFinished(_Event):
    """An auditor call (review or escalation) ended."""

    phase_id: str
    attempt: int
    verdict: AuditorVerdict
    tokens_used: int = 0
    issues: tuple[Finding, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class SnapshotCreated(_Event):
    """The phase's snapshot tag exists."""

    phase_id: str
    ref: str


@dataclass(frozen=True)
class ArtefactsWritten(_Event):
    """Run artefacts were written; `head_sha` is the branch head if they were committed."""

    head_sha: str | None = None


@dataclass(frozen=True)
class Cancelled(_Event):
    """An operator cancelled the run."""

    by: str
    reason: str = ""


@dataclass(frozen=True)
class RunTimedOut(_Event):
    """The run's wall-clock budget is spent."""


@dataclass(frozen=True)
class PhaseTimedOut(_Event):
    """An attempt's wall-clock budget is spent."""

    phase_id: str
    attempt: int


@dataclass(frozen=True)
class EnvironmentFailed(_Event):
    """GitHub, the workspace or another dependency failed after retries."""

    reason: str


Event = (
    StrategyReady
    | StrategyRejected
    | BranchReady
    | PhasesQueued
    | BuilderFinished
    | GateEvaluated
    | Pushed
    | PushRejected
    | AttemptLost
    | CIFinished
    | AuditorFinished
    | SnapshotCreated
    | ArtefactsWritten
    | Cancelled
    | RunTimedOut
    | PhaseTimedOut
    | EnvironmentFailed
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        StrategyReady,
        StrategyRejected,
        BranchReady,
        PhasesQueued,
        BuilderFinished,
        GateEvaluated,
        Pushed,
        PushRejected,
        AttemptLost,
        CIFinished,
        AuditorFinished,
        SnapshotCreated,
        ArtefactsWritten,
        Cancelled,
        RunTimedOut,
        PhaseTimedOut,
        EnvironmentFailed,
    )
}


def event_from_json(data: dict[str, Any]) -> Event:
    """Any event from its `to_json()` output; ValueError on an unknown type or bad shape."""
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    return cls.from_json(data)
