"""The playbook's vocabulary: task categories, complexity, builder modes, profiles and scopes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TaskCategory(StrEnum):
    """What kind of work a phase is; the high-risk ones get strict defaults."""

    FEATURE = "feature"
    BUGFIX = "bugfix"
    TESTS = "tests"
    DOCS = "docs"
    REFACTOR = "refactor"
    DEBT_CLEANUP = "debt_cleanup"
    CROSS_CUTTING_REFACTOR = "cross_cutting_refactor"
    INDEX_REGISTRY_MAINTENANCE = "index_registry_maintenance"
    SCHEMA_CHANGE = "schema_change"
    BULK_OPERATION = "bulk_operation"
    SECURITY_AUTH = "security_auth"


class Complexity(StrEnum):
    """How hard a phase is expected to be."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class BuilderMode(StrEnum):
    """How the builder is asked to work (and what the gate allows it to change)."""

    TWEAK_LIGHT = "tweak_light"
    SCAFFOLDING_HEAVY = "scaffolding_heavy"
    REFACTOR_HEAVY = "refactor_heavy"
    SCHEMA_HEAVY = "schema_heavy"


class CIProfile(StrEnum):
    """Which checks must pass and how failures are retried."""

    NORMAL = "normal"
    STRICT = "strict"


class AuditorProfile(StrEnum):
    """The reviewer instructions used when the auditor is called."""

    SCHEMA_REVIEW = "schema_review"
    SECURITY_REVIEW = "security_review"
    ORCHESTRATOR_REVIEW = "orchestrator_review"
    DEBT_CLEANUP_REVIEW = "debt_cleanup_review"


class RunScope(StrEnum):
    """One run does every tier (`multi_tier`) or one tier per run (`single_tier`)."""

    MULTI_TIER = "multi_tier"
    SINGLE_TIER = "single_tier"


class SafetyProfile(StrEnum):
    """`safety_critical` tightens CI, budgets and issue tolerance."""

    NORMAL = "normal"
    SAFETY_CRITICAL = "safety_critical"


@dataclass(frozen=True)
class HighRiskDefaults:
    """The playbook's defaults for one high-risk category."""

    issue_category: str
    complexity: Complexity
    builder_mode: BuilderMode
    ci_profile: CIProfile
    auditor_profile: AuditorProfile
    max_builder_attempts: int
    auto_apply: bool


# The playbook's high-risk table: severity major, complexity high, strict CI, few attempts,
# auditor preferred. A repository's ruleset may override any of these.
HIGH_RISK: dict[TaskCategory, HighRiskDefaults] = {
    TaskCategory.CROSS_CUTTING_REFACTOR: HighRiskDefaults(
        "cross_cutting_refactor",
        Complexity.HIGH,
        BuilderMode.REFACTOR_HEAVY,
        CIProfile.STRICT,
        AuditorProfile.ORCHESTRATOR_REVIEW,
        2,
        True,
    ),
    TaskCategory.INDEX_REGISTRY_MAINTENANCE: HighRiskDefaults(
        "index_registry_change",
        Complexity.HIGH,
        BuilderMode.TWEAK_LIGHT,
        CIProfile.STRICT,
        AuditorProfile.ORCHESTRATOR_REVIEW,
        2,
        True,
    ),
    TaskCategory.SCHEMA_CHANGE: HighRiskDefaults(
        "schema_contract_change",
        Complexity.HIGH,
        BuilderMode.SCHEMA_HEAVY,
        CIProfile.STRICT,
        AuditorProfile.SCHEMA_REVIEW,
        2,
        False,
    ),
    TaskCategory.BULK_OPERATION: HighRiskDefaults(
        "bulk_multi_file_operation",
        Complexity.HIGH,
        BuilderMode.REFACTOR_HEAVY,
        CIProfile.STRICT,
        AuditorProfile.ORCHESTRATOR_REVIEW,
        2,
        True,
    ),
    TaskCategory.SECURITY_AUTH: HighRiskDefaults(
        "security_auth_change",
        Complexity.HIGH,
        BuilderMode.TWEAK_LIGHT,
        CIProfile.STRICT,
        AuditorProfile.SECURITY_REVIEW,
        2,
        False,
    ),
}


def issue_categories(category: TaskCategory) -> tuple[str, ...]:
    """The issue categories that belong to a kind of work: its own name, and for a high-risk
    category the playbook's issue category too (`security_auth` -> `security_auth_change`)."""
    row = HIGH_RISK.get(category)
    return (category.value,) if row is None else (category.value, row.issue_category)


def task_category_of(issue_category: str) -> TaskCategory | None:
    """The task category an issue category belongs to (None for `lint`, `ci`, ...)."""
    for category in TaskCategory:
        if issue_category in issue_categories(category):
            return category
    return None
