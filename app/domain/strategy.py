"""The frozen per-run strategy: every decision the supervisor will need, fixed at RUN_CREATED.

Pure values only. `compile_strategy` (ruleset + plan + backlog → Strategy) builds it; the machine
reads it and never changes it, so a run's behaviour can be explained from `strategy.json` alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.domain.backlog import AgingRules
from app.domain.gate import GatePolicy
from app.domain.issue_record import Severity
from app.domain.taxonomy import (
    AuditorProfile,
    BuilderMode,
    CIProfile,
    Complexity,
    RunScope,
    SafetyProfile,
    TaskCategory,
)
from app.domain.test_integrity import (
    DEFAULT_CI_PATHS,
    DEFAULT_TEST_PATHS,
    IntegrityPolicy,
    IntegrityRule,
)


class NoCIPolicy(StrEnum):
    """What happens when no CI reports within the start timeout."""

    PASS_WITH_MAJOR = "pass_with_major"  # noqa: S105 (a policy name)
    FAIL = "fail"


@dataclass(frozen=True)
class CIProfileSettings:
    """Which checks decide, and how many re-runs a failure gets."""

    # "changed" (the checks that ran on the change), "all", or check-name globs.
    required: tuple[str, ...] = ("changed",)
    max_reruns: int = 1
    on_no_ci: NoCIPolicy = NoCIPolicy.PASS_WITH_MAJOR


@dataclass(frozen=True)
class CISettings:
    """CI interpretation for the whole run."""

    start_timeout_seconds: int = 600
    finish_timeout_seconds: int = 3600
    ignore_checks: tuple[str, ...] = ()
    normal: CIProfileSettings = CIProfileSettings()
    # Strict reads every check and allows no flake re-run: a red check is a failed attempt.
    strict: CIProfileSettings = CIProfileSettings(
        required=("all",), max_reruns=0, on_no_ci=NoCIPolicy.FAIL
    )

    def profile(self, name: CIProfile) -> CIProfileSettings:
        """Settings of one profile."""
        return self.strict if name is CIProfile.STRICT else self.normal


@dataclass(frozen=True)
class GateSettings:
    """The serialisable part of the gate policy a phase runs under."""

    max_files: int
    max_lines: int
    protected_globs: tuple[str, ...] = ()
    allow_workflow_changes: bool = False
    allow_binary: bool = False
    max_file_bytes: int = 1024 * 1024
    test_paths: tuple[str, ...] = DEFAULT_TEST_PATHS
    ci_paths: tuple[str, ...] = DEFAULT_CI_PATHS
    # Test-integrity rules the ruleset switched off, and those the phase's task asks for.
    integrity_disabled: tuple[str, ...] = ()
    integrity_allowed: tuple[str, ...] = ()

    def policy(self) -> GatePolicy:
        """The gate's own policy value."""
        off = {*self.integrity_disabled, *self.integrity_allowed}
        return GatePolicy(
            max_files=self.max_files,
            max_lines=self.max_lines,
            protected_globs=self.protected_globs,
            allow_workflow_changes=self.allow_workflow_changes,
            allow_binary=self.allow_binary,
            max_file_bytes=self.max_file_bytes,
            integrity=IntegrityPolicy(
                self.test_paths,
                self.ci_paths,
                frozenset(rule for rule in IntegrityRule if rule.value not in off),
            ),
        )


@dataclass(frozen=True)
class PhaseStrategy:
    """Everything decided about one phase."""

    phase_id: str
    tier_id: str
    title: str
    description: str
    task_category: TaskCategory
    complexity: Complexity
    builder_mode: BuilderMode
    ci_profile: CIProfile
    auditor_profile: AuditorProfile
    max_builder_attempts: int
    max_auditor_attempts: int
    incident_token_cap: int
    wall_seconds: int
    auto_apply: bool
    gate: GateSettings
    debt_issue_keys: tuple[str, ...] = ()
    category_reason: str = ""  # what gave the category, for people ("set in the plan", …)
    builder_profile: str = ""  # the operator profile that builds it (routed by mode)
    # Issues its builder or auditor report count as major (high-risk work, the playbook's table).
    reported_issues_major: bool = False

    @property
    def review_reason(self) -> str:
        """Why every change of this phase needs a review before it is pushed ('' if none)."""
        if self.auto_apply:
            return ""
        return f"{self.task_category} changes are not pushed without a review (auto_apply off)"

    @property
    def is_debt_cleanup(self) -> bool:
        """True for a phase the strategy inserted to work off aged issues (not for a phase the
        plan itself put in the debt_cleanup category: that one was asked for)."""
        return bool(self.debt_issue_keys)


@dataclass(frozen=True)
class TierStrategy:
    """A tier's phases and caps. `major_tolerance` None means majors do not fail the tier."""

    tier_id: str
    title: str
    phase_ids: tuple[str, ...]
    token_cap: int
    ci_run_cap: int
    minor_tolerance: int
    major_tolerance: int | None


@dataclass(frozen=True)
class ProbeCommand:
    """A probe the repository names; it runs only where the operator allows probes."""

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class RunBudget:
    """Run-wide caps; reaching one ends the run as DONE_FAILED_BUDGET_EXHAUSTED."""

    token_cap: int = 5_000_000
    max_phases: int = 25
    max_minor_issues: int = 75
    wall_seconds: int = 120 * 60


@dataclass(frozen=True)
class Strategy:
    """The frozen strategy of one run."""

    run_id: str
    repository: str
    issue_number: int
    branch: str
    run_scope: RunScope
    safety_profile: SafetyProfile
    builder_profile: str
    auditor_backend: str | None
    budget: RunBudget
    ci: CISettings
    tiers: tuple[TierStrategy, ...]
    phases: tuple[PhaseStrategy, ...]
    # issue_key -> effective severity, from the backlog's aging at RUN_CREATED.
    effective_severity: dict[str, Severity] = field(default_factory=dict)
    remaining_tiers: tuple[str, ...] = ()
    plan_warnings: tuple[str, ...] = ()
    commit_artefacts: bool = True
    probes: tuple[ProbeCommand, ...] = ()
    # The repository's aging thresholds, kept with its backlog when the run ends.
    aging: AgingRules = field(default_factory=AgingRules)
    # Issue categories whose issues count as major whatever they were reported as.
    major_issue_categories: tuple[str, ...] = ()

    def phase(self, phase_id: str) -> PhaseStrategy:
        """One phase by id (KeyError if unknown)."""
        for phase in self.phases:
            if phase.phase_id == phase_id:
                return phase
        raise KeyError(phase_id)

    def builder_for(self, phase_id: str) -> str:
        """The builder profile that works on one phase (routed by its mode, else the run's)."""
        return self.phase(phase_id).builder_profile or self.builder_profile

    def tier(self, tier_id: str) -> TierStrategy:
        """One tier by id (KeyError if unknown)."""
        for tier in self.tiers:
            if tier.tier_id == tier_id:
                return tier
        raise KeyError(tier_id)

    def to_json(self) -> dict[str, Any]:
        """strategy.json: plain JSON types only."""
        data: dict[str, Any] = dataclasses.asdict(self)
        return _jsonable(data)  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Strategy:
        """Inverse of `to_json`."""
        ci = data["ci"]
        return cls(
            run_id=data["run_id"],
            repository=data["repository"],
            issue_number=data["issue_number"],
            branch=data["branch"],
            run_scope=RunScope(data["run_scope"]),
            safety_profile=SafetyProfile(data["safety_profile"]),
            builder_profile=data["builder_profile"],
            auditor_backend=data["auditor_backend"],
            budget=RunBudget(**data["budget"]),
            ci=CISettings(
                start_timeout_seconds=ci["start_timeout_seconds"],
                finish_timeout_seconds=ci["finish_timeout_seconds"],
                ignore_checks=tuple(ci["ignore_checks"]),
                normal=_ci_profile(ci["normal"]),
                strict=_ci_profile(ci["strict"]),
            ),
            tiers=tuple(
                TierStrategy(**{**tier, "phase_ids": tuple(tier["phase_ids"])})
                for tier in data["tiers"]
            ),
            phases=tuple(_phase(phase, data["builder_profile"]) for phase in data["phases"]),
            effective_severity={k: Severity(v) for k, v in data["effective_severity"].items()},
            remaining_tiers=tuple(data["remaining_tiers"]),
            plan_warnings=tuple(data["plan_warnings"]),
            commit_artefacts=data["commit_artefacts"],
            probes=tuple(
                ProbeCommand(item["name"], tuple(item["argv"])) for item in data.get("probes", ())
            ),
            # Strategies stored before these keys existed get the defaults.
            aging=AgingRules(**data.get("aging", {})),
            major_issue_categories=tuple(data.get("major_issue_categories", ())),
        )


def _ci_profile(data: dict[str, Any]) -> CIProfileSettings:
    return CIProfileSettings(
        required=tuple(data["required"]),
        max_reruns=data["max_reruns"],
        on_no_ci=NoCIPolicy(data["on_no_ci"]),
    )


def _phase(data: dict[str, Any], builder_profile: str) -> PhaseStrategy:
    return PhaseStrategy(
        **{
            "builder_profile": builder_profile,  # stored before routing: the run's one profile
            **data,
            "task_category": TaskCategory(data["task_category"]),
            "complexity": Complexity(data["complexity"]),
            "builder_mode": BuilderMode(data["builder_mode"]),
            "ci_profile": CIProfile(data["ci_profile"]),
            "auditor_profile": AuditorProfile(data["auditor_profile"]),
            "gate": _gate(data["gate"]),
            "debt_issue_keys": tuple(data["debt_issue_keys"]),
        }
    )


def _gate(data: dict[str, Any]) -> GateSettings:
    # Lists back to tuples; keys added later keep their defaults for strategies stored before.
    fields: dict[str, Any] = {
        key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
    }
    return GateSettings(**fields)


def _jsonable(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
