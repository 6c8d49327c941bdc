"""The effects the machine asks the worker to carry out; results come back as events.

Each effect has an idempotency `key`, unique within a run, so a worker that crashed half-way can
recognise one already done. `to_json()` adds the "type" tag and the key; `effect_from_json` reads
any of them back. Effects that write a ref name it: `ref_written(effect)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from app.domain.dataclass_codec import decode_fields, encode_fields
from app.domain.run_state import AuditReason, RunStatus
from app.domain.taxonomy import AuditorProfile, CIProfile


class _Effect:
    """JSON with a "type" tag and the idempotency key for every effect class."""

    @property
    def key(self) -> str:
        """The idempotency key (unique within a run)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types, with "type" and "key"."""
        return {"type": type(self).__name__, "key": self.key, **encode_fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Inverse of `to_json` for this class; ValueError on a bad shape or tag."""
        if data.get("type") != cls.__name__:
            raise ValueError(f"expected an effect of type {cls.__name__}")
        return decode_fields(cls, {k: v for k, v in data.items() if k not in ("type", "key")})


@dataclass(frozen=True)
class BudgetsLeft:
    """What an attempt may still spend: told to the builder or auditor."""

    tokens: int
    builder_attempts: int
    auditor_attempts: int
    seconds: int


@dataclass(frozen=True)
class CompileStrategy(_Effect):
    """Load the ruleset, plan and backlog; compile and freeze the strategy."""

    @property
    def key(self) -> str:
        """The idempotency key."""
        return "compile"


@dataclass(frozen=True)
class CreateBranch(_Effect):
    """Create the integration branch (from the default branch head)."""

    branch: str
    from_default: bool = True

    @property
    def key(self) -> str:
        """The idempotency key."""
        return "branch"


@dataclass(frozen=True)
class QueuePhases(_Effect):
    """Store the phases and tiers of the strategy."""

    @property
    def key(self) -> str:
        """The idempotency key."""
        return "queue"


@dataclass(frozen=True)
class RunBuilder(_Effect):
    """Run one builder attempt on the phase."""

    phase_id: str
    attempt: int
    budgets_left: BudgetsLeft
    feedback: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The idempotency key."""
        return f"builder:{self.phase_id}:{self.attempt}"


@dataclass(frozen=True)
class EvaluateGate(_Effect):
    """Gate the attempt's change (`auditor_patch`: the change is the auditor's patch)."""

    phase_id: str
    attempt: int
    auditor_patch: bool = False

    @property
    def key(self) -> str:
        """The idempotency key."""
        return f"gate:{self.phase_id}:{self.attempt}"


@dataclass(frozen=True)
class PushChange(_Effect):
    """Commit the gated change on the integration branch, expecting it at `expected_head`."""

    branch: str
    phase_id: str
    attempt: int
    expected_head: str | None

    @property
    def key(self) -> str:
        """The idempotency key (also the commit's Autopack-Attempt trailer)."""
        return f"push:{self.phase_id}:{self.attempt}"


@dataclass(frozen=True)
class WaitForCI(_Effect):
    """Wait for CI on `sha` (start/finish timers; check runs or polling bring the result)."""

    sha: str
    phase_id: str
    ci_profile: CIProfile
    rerun: int = 0

    @property
    def key(self) -> str:
        """The idempotency key."""
        return f"ci:{self.phase_id}:{self.sha}:{self.rerun}"


@dataclass(frozen=True)
class RerunCI(_Effect):
    """Re-request the failed checks on `sha` (re-run number `rerun`)."""

    sha: str
    phase_id: str
    checks: tuple[str, ...]
    rerun: int

    @property
    def key(self) -> str:
        """The idempotency key."""
        return f"rerun:{self.phase_id}:{self.sha}:{self.rerun}"


@dataclass(frozen=True)
class RunAuditor(_Effect):
    """Call the auditor: review an attempt before push, or work on a failing phase."""

    phase_id: str
    attempt: int
    auditor_profile: AuditorProfile
    reason: AuditReason
    budgets_left: BudgetsLeft
    feedback: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The idempotency key."""
        kind = "review" if self.reason is AuditReason.PRE_PUSH_REVIEW else "auditor"
        return f"{kind}:{self.phase_id}:{self.attempt}"


@dataclass(frozen=True)
class CreateSnapshot(_Effect):
    """Tag the phase's green commit."""

    phase_id: str
    commit_sha: str
    tag: str

    @property
    def key(self) -> str:
        """The idempotency key."""
        return f"snapshot:{self.phase_id}"


@dataclass(frozen=True)
class WriteArtefacts(_Effect):
    """Write the run artefacts (committed on `branch` when it is set)."""

    final: bool
    branch: str | None = None

    @property
    def key(self) -> str:
        """The idempotency key."""
        return "artefacts:final" if self.final else "artefacts:initial"


@dataclass(frozen=True)
class Report(_Effect):
    """Bring the check run and the issue comment up to date (`seq`: the state reported)."""

    status: RunStatus
    seq: int

    @property
    def key(self) -> str:
        """The idempotency key."""
        return f"report:{self.seq}"


@dataclass(frozen=True)
class CancelInFlight(_Effect):
    """Stop whatever builder, auditor or timer is still running for the run."""

    @property
    def key(self) -> str:
        """The idempotency key."""
        return "cancel"


@dataclass(frozen=True)
class Finish(_Effect):
    """Close the run: final status and its one-sentence reason."""

    status: RunStatus
    reason: str

    @property
    def key(self) -> str:
        """The idempotency key."""
        return "finish"


Effect = (
    CompileStrategy
    | CreateBranch
    | QueuePhases
    | RunBuilder
    | EvaluateGate
    | PushChange
    | WaitForCI
    | RerunCI
    | RunAuditor
    | CreateSnapshot
    | WriteArtefacts
    | Report
    | CancelInFlight
    | Finish
)

EFFECT_TYPES: dict[str, type[Effect]] = {
    cls.__name__: cls
    for cls in (
        CompileStrategy,
        CreateBranch,
        QueuePhases,
        RunBuilder,
        EvaluateGate,
        PushChange,
        WaitForCI,
        RerunCI,
        RunAuditor,
        CreateSnapshot,
        WriteArtefacts,
        Report,
        CancelInFlight,
        Finish,
    )
}


# Effects older versions saved that no longer exist: a pending one is dropped when a run loads.
# ResetWorkspace: every builder and auditor attempt now starts from the branch head by itself.
RETIRED_EFFECT_TYPES = frozenset({"ResetWorkspace"})


def effect_from_json(data: dict[str, Any]) -> Effect:
    """Any effect from its `to_json()` output; ValueError on an unknown type or bad shape."""
    cls = EFFECT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown effect type {data.get('type')!r}")
    return cls.from_json(data)


def ref_written(effect: Effect) -> str | None:
    """The branch or tag an effect writes on GitHub, or None if it writes no ref."""
    if isinstance(effect, CreateBranch | PushChange):
        return effect.branch
    if isinstance(effect, WriteArtefacts):
        return effect.branch
    if isinstance(effect, CreateSnapshot):
        return effect.tag
    return None


def snapshot_tag(run_id: str, phase_id: str) -> str:
    """The snapshot tag of a phase: autopack/<run>/<phase>."""
    return f"autopack/{run_id}/{phase_id}"
