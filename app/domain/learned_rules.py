"""Learned rules: the ruleset change that would have kept an aged issue from coming back.

Pure, and only a suggestion: Autopack never edits a repository's ruleset. At the end of a run,
every issue this run saw (or failed to clean up) that has aged past the repository's thresholds
(a minor issue that now counts as major) gets one suggestion, from the first rule that applies:

1. its category names a kind of work (a task category, or a high-risk issue category such as
   `schema_contract_change`): an override for that category, `auto_apply: false` (reviewed
   before it is pushed) and `ci_profile: strict` (every check decides), those of the two not
   already in force;
2. it points at a file: that file in `gate.protected_paths`, after those the ruleset has;
3. anything else (a flaky check, a recurring failure): a higher minor tolerance, aging thresholds
   this issue's age does not exceed, for a repository that lives with it.

Each snippet is YAML a maintainer can paste into `.github/autopack.yml`; it is valid against the
ruleset schema on its own (a test loads every one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from app.domain.backlog import AgingRules, Backlog, BacklogEntry, effective_severity
from app.domain.gate import GatePolicy
from app.domain.issue_record import Severity
from app.domain.paths import matches_any
from app.domain.strategy import Strategy
from app.domain.taxonomy import (
    HIGH_RISK,
    CIProfile,
    SafetyProfile,
    TaskCategory,
    task_category_of,
)

MAX_SUGGESTIONS = 20
_GLOB_CHARACTERS = frozenset("*?[]!\\")
MAX_GLOB_CHARS = 200


@dataclass(frozen=True)
class RuleSuggestion:
    """One suggested ruleset change: what it changes, why, and the snippet to paste."""

    issue_key: str
    setting: str  # the ruleset key it changes, e.g. "gate.protected_paths"
    why: str
    snippet: str  # YAML, valid as a whole `.github/autopack.yml`


def suggest_rules(
    backlog: Backlog, run_id: str, strategy: Strategy, paths: Mapping[str, str]
) -> tuple[RuleSuggestion, ...]:
    """A suggestion for each aged issue the run `run_id` saw, oldest first (at most 20).

    `backlog` is the backlog after the run; `paths` the file each issue points at, if any.
    """
    aged = [
        entry
        for entry in backlog.entries
        if entry.last_seen_run == run_id
        and entry.base_severity is Severity.MINOR
        and effective_severity(entry, backlog.aging) is Severity.MAJOR
    ]
    aged.sort(key=lambda e: (-e.age_in_runs, -e.age_in_tiers, e.issue_key))
    out = []
    for entry in aged[:MAX_SUGGESTIONS]:
        out.append(
            _category_override(entry, strategy)
            or _protected_path(entry, strategy, paths.get(entry.issue_key))
            or _tolerate_longer(entry, backlog.aging)
        )
    return tuple(out)


def _category_override(entry: BacklogEntry, strategy: Strategy) -> RuleSuggestion | None:
    category = task_category_of(entry.category)
    if category is None:
        return None
    auto_apply, ci_profile = _in_force(strategy, category)
    change: dict[str, Any] = {}
    if auto_apply:
        change["auto_apply"] = False
    if ci_profile is not CIProfile.STRICT:
        change["ci_profile"] = CIProfile.STRICT.value
    if not change:
        return None
    what = " and ".join(
        text
        for key, text in (
            ("auto_apply", "reviewed before it is pushed"),
            ("ci_profile", "judged by every check"),
        )
        if key in change
    )
    return RuleSuggestion(
        entry.issue_key,
        f"categories.overrides.{category.value}",
        f"every {category.value} change is {what}, so this issue is caught before it lands",
        _dump({"categories": {"overrides": {category.value: change}}}),
    )


def _in_force(strategy: Strategy, category: TaskCategory) -> tuple[bool, CIProfile]:
    """(auto_apply, ci_profile) of the category's phases as this run had them."""
    phase = next((p for p in strategy.phases if p.task_category is category), None)
    if phase is not None:
        return phase.auto_apply, phase.ci_profile
    row = HIGH_RISK.get(category)
    critical = strategy.safety_profile is SafetyProfile.SAFETY_CRITICAL
    profile = CIProfile.STRICT if critical else row.ci_profile if row else CIProfile.NORMAL
    return (row.auto_apply if row else True), profile


def _protected_path(
    entry: BacklogEntry, strategy: Strategy, path: str | None
) -> RuleSuggestion | None:
    if not path or len(path) >= MAX_GLOB_CHARS or _GLOB_CHARACTERS & set(path):
        return None  # a path that would read as a glob is left to the maintainer
    if not path.isprintable():
        return None  # YAML folds line breaks such as U+0085 into spaces: another path
    extras = strategy.phases[0].gate.protected_globs if strategy.phases else ()
    policy = GatePolicy(protected_globs=extras)
    if matches_any(policy.protected, path) is not None:
        return None
    anchored = "/" + path.lstrip("/")  # this file, not every file of that name
    return RuleSuggestion(
        entry.issue_key,
        "gate.protected_paths",
        f"no builder changes {path} again (a change to it ends the run as a policy "
        "violation), so this issue cannot come back from there",
        _dump({"gate": {"protected_paths": [*extras, anchored]}}),
    )


def _tolerate_longer(entry: BacklogEntry, aging: AgingRules) -> RuleSuggestion:
    change = {}
    if entry.age_in_runs > aging.minor_to_major_after_runs:
        change["minor_to_major_after_runs"] = entry.age_in_runs
    if entry.age_in_tiers > aging.minor_to_major_after_tiers:
        change["minor_to_major_after_tiers"] = entry.age_in_tiers
    return RuleSuggestion(
        entry.issue_key,
        "aging",
        "if the repository lives with this issue, minor issues are tolerated as long as this one "
        "has been around, so it stays minor and no debt-cleanup phase is spent on it",
        _dump({"aging": change}),
    )


def _dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
