"""Learned rules: for an issue that aged past its thresholds, the ruleset change that would have
kept it from coming back, as a snippet valid against the ruleset schema (never applied)."""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import yaml as yaml_module
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.backlog import AgingRules, Backlog, BacklogEntry, effective_severity
from app.domain.compiler import RunIdentity, compile_strategy
from app.domain.events import (
    BranchReady,
    BuilderFinished,
    BuilderOutcome,
    Event,
    Finding,
    PhasesQueued,
    StrategyReady,
)
from app.domain.gate import GatePolicy
from app.domain.issue_record import Severity
from app.domain.learned_rules import MAX_SUGGESTIONS, RuleSuggestion, suggest_rules
from app.domain.machine import advance, start_run
from app.domain.paths import matches_any
from app.domain.plan import parse_plan, select_for_run
from app.domain.report_backlog import backlog_after_run, render_backlog_issue
from app.domain.ruleset import Ruleset, load_ruleset
from app.domain.run_state import PhaseStatus, RunState, RunStatus
from app.domain.strategy import Strategy
from app.domain.taxonomy import CIProfile, TaskCategory, task_category_of
from app.store.progress import IssueRow
from tests.domain.machine_fixtures import green_phase

RUN = "acme-widgets-7-4"
NOW = "2026-12-01T10:00:00+00:00"
PLAN = """\
- [ ] Add the settings module
- [ ] Describe it {category=docs}
- [ ] Add the sessions table {category=schema_change}
"""


def compiled(yaml: str | None = None, plan: str = PLAN, backlog: Backlog | None = None) -> Strategy:
    return compiled_with(load_ruleset(yaml), plan, backlog)


def compiled_with(ruleset: Ruleset, plan: str, backlog: Backlog | None = None) -> Strategy:
    selection = select_for_run(parse_plan("Title", plan), ruleset.run_scope, 25)
    identity = RunIdentity(RUN, "acme/widgets", 7, "autopack/issue-7-run-4")
    return compile_strategy(ruleset, selection, backlog or Backlog(), identity)


def aged(
    key: str, category: str, runs: int = 4, tiers: int = 1, last_run: str = RUN
) -> BacklogEntry:
    return BacklogEntry(key, category, Severity.MINOR, runs, tiers, runs, "r1", last_run, NOW)


def only(suggestions: tuple[RuleSuggestion, ...]) -> RuleSuggestion:
    (suggestion,) = suggestions
    return suggestion


# --- which rule, table-driven --------------------------------------------------------------------

CASES = [
    # (id, the aged issue's category, the file it points at, the ruleset, the setting suggested,
    #  the snippet)
    ("a task category: review and strict CI", "docs", None, None,
     "categories.overrides.docs",
     "categories:\n  overrides:\n    docs:\n      auto_apply: false\n      ci_profile: strict\n"),
    ("a high-risk issue category names its task", "schema_contract_change", None,
     "categories: {overrides: {schema_change: {issue_severity: minor, ci_profile: normal}}}",
     "categories.overrides.schema_change",
     "categories:\n  overrides:\n    schema_change:\n      ci_profile: strict\n"),
    ("only what is not in force yet", "feature", None,
     "categories: {overrides: {feature: {ci_profile: strict}}}",
     "categories.overrides.feature",
     "categories:\n  overrides:\n    feature:\n      auto_apply: false\n"),
    ("both in force: the file instead", "security_auth", "src/auth/session.py", None,
     "gate.protected_paths", "gate:\n  protected_paths:\n  - /src/auth/session.py\n"),
    ("a file, after the protected paths there are", "code_quality", "src/app.py",
     "gate: {protected_paths: ['deploy/**']}",
     "gate.protected_paths", "gate:\n  protected_paths:\n  - deploy/**\n  - /src/app.py\n"),
    ("a file already protected: tolerate it", "code_quality", "deploy/run.sh",
     "gate: {protected_paths: ['deploy/**']}", "aging",
     "aging:\n  minor_to_major_after_runs: 4\n"),
    ("a path that reads as a glob: tolerate it", "code_quality", "src/[id].py", None, "aging",
     "aging:\n  minor_to_major_after_runs: 4\n"),
    ("nothing to go by: tolerate it", "ci", None, None, "aging",
     "aging:\n  minor_to_major_after_runs: 4\n"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("category", "path", "yaml", "setting", "snippet"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_the_first_rule_that_applies(
    category: str, path: str | None, yaml: str | None, setting: str, snippet: str
) -> None:
    strategy = compiled(yaml)
    backlog = Backlog((aged("k", category),))
    suggestion = only(suggest_rules(backlog, RUN, strategy, {"k": path} if path else {}))
    assert (suggestion.issue_key, suggestion.setting) == ("k", setting)
    assert suggestion.snippet == snippet
    assert suggestion.why
    assert load_ruleset(suggestion.snippet)  # valid against the schema on its own


def test_tolerating_it_raises_only_the_thresholds_it_passed() -> None:
    backlog = Backlog((aged("k", "ci", runs=2, tiers=7),), aging=AgingRules(3, 2))
    suggestion = only(suggest_rules(backlog, RUN, compiled(), {}))
    assert suggestion.snippet == "aging:\n  minor_to_major_after_tiers: 7\n"


def test_only_aged_minors_this_run_saw_get_a_suggestion() -> None:
    backlog = Backlog(
        (
            aged("old-but-not-seen-now", "ci", last_run="earlier-run"),
            aged("young", "ci", runs=1),
            BacklogEntry("major", "ci", Severity.MAJOR, 9, 9, 9, "r1", RUN, NOW),
            aged("aged", "ci", runs=5),
            aged("older", "ci", runs=8),
        )
    )
    suggestions = suggest_rules(backlog, RUN, compiled(), {})
    assert [s.issue_key for s in suggestions] == ["older", "aged"]  # oldest first


def test_at_most_twenty_suggestions() -> None:
    backlog = Backlog(tuple(aged(f"k{n:02}", "ci", runs=4 + n) for n in range(30)))
    suggestions = suggest_rules(backlog, RUN, compiled(), {})
    assert len(suggestions) == MAX_SUGGESTIONS
    assert suggestions[0].issue_key == "k29"


# --- every snippet is valid and would have prevented it (hypothesis) -----------------------------

CATEGORIES = st.sampled_from(
    [
        *(category.value for category in TaskCategory),
        "security_auth_change",
        "schema_contract_change",
        "index_registry_change",
        "ci",
        "builder",
        "code_quality",
    ]
)
PATHS = st.none() | st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=60
)
RULESETS = st.sampled_from(
    [
        None,
        "safety_profile: safety_critical",
        "gate: {protected_paths: ['deploy/**', 'src/secret*']}",
        "categories: {overrides: {feature: {auto_apply: false, ci_profile: strict}}}",
        "aging: {minor_to_major_after_runs: 5, minor_to_major_after_tiers: 1}",
    ]
)


@settings(max_examples=300, deadline=None)
# U+0085 is a line break to YAML: dumped unescaped, it loads back as a space (another path).
@hypothesis.example(
    category="schema_change", path="db/a\x85b.sql", yaml=None, by_runs=False, over=1, other=0
)
@given(
    category=CATEGORIES,
    path=PATHS,
    yaml=RULESETS,
    by_runs=st.booleans(),
    over=st.integers(1, 6),
    other=st.integers(0, 12),
)
def test_every_snippet_loads_and_would_have_prevented_the_issue(
    category: str, path: str | None, yaml: str | None, by_runs: bool, over: int, other: int
) -> None:
    strategy = compiled(yaml)
    limits = strategy.aging
    # Aged by construction: past one threshold (runs or tiers), anything on the other.
    runs = limits.minor_to_major_after_runs + over if by_runs else other
    tiers = other if by_runs else limits.minor_to_major_after_tiers + over
    entry = aged("k", category, runs=runs, tiers=tiers)
    backlog = Backlog((entry,), aging=limits)
    suggestion = only(suggest_rules(backlog, RUN, strategy, {"k": path} if path else {}))
    merged = pasted(yaml, suggestion.snippet)
    hypothesis.event(suggestion.setting.split(".")[0])
    if suggestion.setting.startswith("categories."):
        task = task_category_of(category)
        assert task is not None
        # Every change of that kind is reviewed before it is pushed and judged by every check.
        (phase,) = compiled_with(merged, f"- [ ] Work {{category={task}}}\n").phases
        assert phase.review_reason
        assert phase.ci_profile is CIProfile.STRICT
    elif suggestion.setting == "gate.protected_paths":
        assert path is not None
        policy = GatePolicy(protected_globs=merged.gate.protected_paths)
        assert matches_any(policy.protected, path) is not None  # no builder changes it again
        assert set(load_ruleset(yaml).gate.protected_paths) <= set(merged.gate.protected_paths)
    else:
        assert suggestion.setting == "aging"
        aging = AgingRules(
            merged.aging.minor_to_major_after_runs, merged.aging.minor_to_major_after_tiers
        )
        assert effective_severity(entry, aging) is Severity.MINOR  # it would not have aged


def pasted(yaml: str | None, snippet: str) -> Ruleset:
    """The repository's ruleset with a snippet merged in, as a maintainer would (mappings
    merged key by key, the snippet's values winning), loaded as the file it makes."""

    def merge(base: Any, change: Any) -> Any:
        if isinstance(base, dict) and isinstance(change, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in change.items()}}
        return change

    merged = merge(yaml_module.safe_load(yaml or "") or {}, yaml_module.safe_load(snippet))
    return load_ruleset(yaml_module.safe_dump(merged))


# --- the end of a run folded into the backlog ----------------------------------------------------


def drive(strategy: Strategy, events: list[Event]) -> RunState:
    run, _ = start_run(RUN)
    for event in [StrategyReady(strategy), BranchReady("sha0"), PhasesQueued(), *events]:
        run, _ = advance(run, event)
    return run


def test_a_failed_cleanup_leaves_its_issues_open_and_aged_and_suggests_a_rule() -> None:
    before = Backlog((aged("lint:unused", "ci", runs=4, last_run="earlier-run"),))
    yaml = "aging: {minor_to_major_after_runs: 3, minor_to_major_after_tiers: 9}"
    strategy = compiled(yaml, plan="- [ ] Add the settings module\n", backlog=before)
    assert strategy.phases[-1].phase_id == "T1.DEBT"
    failed = [
        BuilderFinished("T1.DEBT", attempt, BuilderOutcome.FAILED, 10, failure_reason="no")
        for attempt in (1, 2)
    ]
    run = drive(strategy, [*green_phase("T1.P1"), *failed])
    assert run.status is RunStatus.DONE_SUCCESS
    assert run.phase_progress("T1.DEBT").status is PhaseStatus.FAILED
    update = backlog_after_run(before, run, {}, NOW)
    entry = update.backlog.get("lint:unused")
    assert entry is not None
    assert (entry.age_in_runs, entry.age_in_tiers, entry.last_seen_run) == (5, 2, RUN)
    assert update.backlog.aging == AgingRules(3, 9)  # the repository's, kept with it
    assert [s.issue_key for s in update.suggestions] == ["lint:unused"]
    assert backlog_after_run(update.backlog, run, {}, NOW) == update  # the same run again
    body = render_backlog_issue("acme/widgets", update.backlog, NOW, update.suggestions)
    assert "## 💡 Suggested ruleset changes (1)" in body
    assert "```yaml\naging:\n  minor_to_major_after_runs: 5\n```" in body
    assert "a minor issue seen in more than 3 runs or more than 9 tiers" in body


def test_issues_a_run_saw_age_by_their_tiers_and_point_at_their_files() -> None:
    strategy = compiled(plan="## Tier 1\n- [ ] A [x]\n## Tier 2\n- [ ] B\n## Tier 3\n- [ ] C\n")
    found = (Finding("builder:todo", Severity.MINOR, "code_quality", "src/a.py", 2),)
    events: list[Event] = [
        BuilderFinished("T1.P1", 1, BuilderOutcome.OK, 10, found),
        *green_phase("T1.P1")[1:],
        *green_phase("T2.P1"),
        *green_phase("T3.P1"),
    ]
    run = drive(strategy, events)
    assert run.status is RunStatus.DONE_SUCCESS
    before = Backlog((aged("builder:todo", "code_quality", runs=3, last_run="earlier-run"),))
    row = IssueRow(
        RUN, "builder:todo", "minor", "code_quality", "T1.P1", "T1", "builder", "src/a.py", 2,
        None, "a TODO is left",
    )  # fmt: skip
    update = backlog_after_run(before, run, {"builder:todo": row}, NOW)
    entry = update.backlog.get("builder:todo")
    assert entry is not None
    assert (entry.age_in_runs, entry.age_in_tiers) == (4, 2)  # one tier of three, not three
    (suggestion,) = update.suggestions
    assert suggestion.setting == "gate.protected_paths"
    assert "/src/a.py" in suggestion.snippet
