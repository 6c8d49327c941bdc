"""The StrategyEngine: ruleset + plan + backlog → a frozen, serialisable strategy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.backlog import AgingRules, Backlog, BacklogEntry
from app.domain.compiler import OperatorCaps, RunIdentity, compile_strategy
from app.domain.issue_record import Severity
from app.domain.plan import parse_plan, select_for_run
from app.domain.ruleset import load_ruleset
from app.domain.strategy import NoCIPolicy, Strategy
from app.domain.taxonomy import (
    AuditorProfile,
    BuilderMode,
    CIProfile,
    Complexity,
    RunScope,
    TaskCategory,
)

ID = RunIdentity("run-1", "acme/widgets", 7, "autopack/issue-7-run-1")
BODY = """
Intro text.

## Tier 1: groundwork
- [ ] Add the settings module
  Create settings.py with defaults.
- [ ] Fix the login token refresh {category=security_auth complexity=high}
- [x] Already done

## Tier 2: docs
- [ ] Write the README section {category=docs complexity=low mode=tweak_light}
"""


def compile_(
    yaml: str | None = None,
    body: str = BODY,
    backlog: Backlog | None = None,
    caps: OperatorCaps | None = None,
) -> Strategy:
    ruleset = load_ruleset(yaml)
    plan = parse_plan("Title", body)
    selection = select_for_run(plan, ruleset.run_scope, ruleset.budgets.run.max_phases)
    return compile_strategy(ruleset, selection, backlog or Backlog(), ID, caps)


def test_defaults_follow_the_playbook() -> None:
    strategy = compile_()
    assert [p.phase_id for p in strategy.phases] == ["T1.P1", "T1.P2", "T2.P1"]  # done one dropped
    settings_phase, login, readme = strategy.phases
    assert settings_phase.task_category is TaskCategory.FEATURE
    assert settings_phase.complexity is Complexity.MEDIUM
    assert settings_phase.builder_mode is BuilderMode.SCAFFOLDING_HEAVY
    assert settings_phase.ci_profile is CIProfile.NORMAL
    assert settings_phase.max_builder_attempts == 3
    assert settings_phase.max_auditor_attempts == 0  # no auditor configured
    assert settings_phase.auto_apply
    assert (settings_phase.gate.max_files, settings_phase.gate.max_lines) == (30, 3000)
    # Named security work: the high-risk row applies.
    assert login.task_category is TaskCategory.SECURITY_AUTH
    assert (login.category_reason, settings_phase.category_reason) == (
        "set in the plan",
        "no rule matched",
    )
    assert login.review_reason
    assert not settings_phase.review_reason
    assert login.ci_profile is CIProfile.STRICT
    assert login.auditor_profile is AuditorProfile.SECURITY_REVIEW
    assert login.max_builder_attempts == 2
    assert not login.auto_apply
    # The plan's own slice wins over classification.
    assert (readme.task_category, readme.complexity, readme.builder_mode) == (
        TaskCategory.DOCS,
        Complexity.LOW,
        BuilderMode.TWEAK_LIGHT,
    )
    assert readme.max_builder_attempts == 2  # tweak_light
    assert (readme.gate.max_files, readme.gate.max_lines) == (2, 200)
    tier1, tier2 = strategy.tiers
    assert tier2.phase_ids == ("T2.P1",)
    assert tier1.phase_ids == ("T1.P1", "T1.P2")
    assert tier1.token_cap == 3 * 2 * 250_000
    assert tier1.ci_run_cap == 4
    assert tier1.minor_tolerance == 4
    assert tier1.major_tolerance is None
    assert strategy.budget.token_cap == 5_000_000
    assert strategy.budget.max_minor_issues == 9
    assert strategy.budget.wall_seconds == 7200
    assert strategy.ci.strict.on_no_ci is NoCIPolicy.FAIL
    assert strategy.ci.normal.required == ("changed",)
    # Strict (high-risk work) reads every check and gets fewer flake re-runs than normal.
    assert strategy.ci.strict.required == ("all",)
    assert (strategy.ci.strict.max_reruns, strategy.ci.normal.max_reruns) == (0, 1)
    assert strategy.ci.profile(login.ci_profile).max_reruns == 0
    assert strategy.branch == ID.branch


def test_safety_critical_tightens_everything() -> None:
    strategy = compile_("safety_profile: safety_critical\nauditor: reviewer\n")
    assert all(p.ci_profile is CIProfile.STRICT for p in strategy.phases)
    assert all(p.max_builder_attempts <= 2 for p in strategy.phases)
    assert all(p.max_auditor_attempts == 1 for p in strategy.phases)
    assert strategy.auditor_backend == "reviewer"
    tier1 = strategy.tiers[0]
    assert tier1.minor_tolerance == 2
    assert tier1.major_tolerance == 0


def test_operator_caps_lower_the_ruleset_never_raise() -> None:
    caps = OperatorCaps(max_tokens_per_run=1000, max_run_minutes=30, auditor_available=False)
    strategy = compile_(
        "auditor: reviewer\nbudgets: {run: {token_cap: 9000000, wall_minutes: 600}}\n", caps=caps
    )
    assert strategy.budget.token_cap == 1000
    assert strategy.budget.wall_seconds == 1800
    assert strategy.auditor_backend is None


def test_single_tier_scope_leaves_the_rest() -> None:
    strategy = compile_("run_scope: single_tier\n")
    assert strategy.run_scope is RunScope.SINGLE_TIER
    assert [t.tier_id for t in strategy.tiers] == ["T1"]
    assert strategy.remaining_tiers == ("T2",)


def test_overrides_and_rules_from_the_ruleset() -> None:
    yaml = """
categories:
  rules:
    - {category: schema_change, keywords: [settings]}
  overrides:
    schema_change: {ci_profile: normal, max_builder_attempts: 1}
gate: {modes: {schema_heavy: {max_files: 5, max_lines: 50}}}
"""
    first = compile_(yaml).phases[0]
    assert first.task_category is TaskCategory.SCHEMA_CHANGE
    assert first.ci_profile is CIProfile.NORMAL
    assert first.max_builder_attempts == 1
    assert first.builder_mode is BuilderMode.SCHEMA_HEAVY
    assert (first.gate.max_files, first.gate.max_lines) == (5, 50)


def aged(key: str, category: str) -> BacklogEntry:
    return BacklogEntry(
        key, category, Severity.MINOR, 5, 6, 9, "run-a", "run-e", "2026-11-01T00:00:00Z"
    )


def test_aged_issues_become_major_and_get_a_cleanup_phase() -> None:
    backlog = Backlog((aged("lint:unused", "style"), aged("gate:x", "security_auth_change")))
    strategy = compile_(backlog=backlog)
    assert strategy.effective_severity == {"lint:unused": Severity.MAJOR, "gate:x": Severity.MAJOR}
    debt = strategy.phase("T2.DEBT")
    assert debt.is_debt_cleanup
    assert set(debt.debt_issue_keys) == {"lint:unused", "gate:x"}
    assert debt.incident_token_cap == 100_000
    assert not debt.auto_apply  # one of them is a high-risk category
    # Last in the run: no phase that was asked for builds on what the cleanup leaves.
    assert strategy.phases[-1] == debt
    assert strategy.tier("T2").phase_ids == ("T2.P1", "T2.DEBT")
    assert (
        compile_("aging: {debt_cleanup: {enabled: false}}", backlog=backlog).phases[-1].phase_id
        == "T2.P1"
    )
    # The repository's thresholds travel with the strategy (and so to the backlog at the end).
    assert strategy.aging == AgingRules(3, 2)
    own = compile_("aging: {minor_to_major_after_runs: 9, minor_to_major_after_tiers: 9}")
    assert own.aging == AgingRules(9, 9)
    assert Strategy.from_json(own.to_json()).aging == AgingRules(9, 9)


def test_a_phase_the_plan_puts_in_debt_cleanup_was_asked_for() -> None:
    (phase,) = compile_(body="- [ ] Tidy the old helpers {category=debt_cleanup}\n").phases
    assert phase.task_category is TaskCategory.DEBT_CLEANUP
    assert not phase.is_debt_cleanup  # only the phase the strategy inserts is best-effort


ROUTING = """
builders: {default: strong, tweak_light: cheap, debt_cleanup: janitor}
"""
ROUTING_CASES = [
    # (id, ruleset, plan item, the profile its phase runs)
    ("no routing: the one builder", "builder: claude", "- [ ] Add it", "claude"),
    ("builders.default", ROUTING, "- [ ] Add it", "strong"),
    ("a routed mode", ROUTING, "- [ ] Fix a typo {mode=tweak_light}", "cheap"),
    ("a mode routed by complexity", ROUTING, "- [ ] Note it {complexity=low}", "cheap"),
    ("an unrouted mode falls back", ROUTING, "- [ ] Split it {mode=refactor_heavy}", "strong"),
    ("builder as the fallback", "builder: claude\nbuilders: {schema_heavy: big}",
     "- [ ] Move it {mode=scaffolding_heavy}", "claude"),
    ("builder and builders.default agree", "builder: strong\nbuilders: {default: strong}",
     "- [ ] Add it", "strong"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("yaml", "item", "profile"), [pytest.param(*case[1:], id=case[0]) for case in ROUTING_CASES]
)
def test_each_phase_runs_the_profile_its_mode_is_routed_to(
    yaml: str, item: str, profile: str
) -> None:
    strategy = compile_(yaml, body=item + "\n")
    (phase,) = strategy.phases
    assert phase.builder_profile == profile
    assert strategy.builder_for(phase.phase_id) == profile
    assert Strategy.from_json(strategy.to_json()).phases[0].builder_profile == profile


def test_the_debt_cleanup_phase_has_a_route_of_its_own() -> None:
    backlog = Backlog((aged("lint:unused", "style"),))
    routed = compile_(ROUTING, backlog=backlog)
    assert routed.phase("T2.DEBT").builder_profile == "janitor"
    by_mode = compile_("builders: {scaffolding_heavy: mid}", backlog=backlog)
    assert by_mode.phase("T2.DEBT").builder_profile == "mid"  # its mode's route, without one
    assert compile_(backlog=backlog).phase("T2.DEBT").builder_profile == "default"


def test_a_strategy_stored_before_routing_runs_every_phase_on_its_one_profile() -> None:
    data = compile_("builder: claude").to_json()
    for phase in data["phases"]:
        del phase["builder_profile"], phase["reported_issues_major"]
    del data["aging"], data["major_issue_categories"]
    stored = Strategy.from_json(data)
    assert {phase.builder_profile for phase in stored.phases} == {"claude"}
    assert (stored.aging, stored.major_issue_categories) == (AgingRules(), ())


def test_high_risk_work_makes_its_issues_major_unless_the_ruleset_says_otherwise() -> None:
    strategy = compile_()
    settings_phase, login, readme = strategy.phases
    assert login.reported_issues_major  # security_auth: the playbook's default-major row
    assert not settings_phase.reported_issues_major
    assert not readme.reported_issues_major
    assert {"security_auth_change", "schema_contract_change", "bulk_multi_file_operation",
            "index_registry_change", "cross_cutting_refactor"} <= set(
        strategy.major_issue_categories
    )  # fmt: skip
    assert "docs" not in strategy.major_issue_categories
    relaxed = compile_(
        "categories: {overrides: {security_auth: {issue_severity: minor}, "
        "docs: {issue_severity: major}}}"
    )
    assert not relaxed.phases[1].reported_issues_major
    assert relaxed.phases[2].reported_issues_major
    assert "security_auth_change" not in relaxed.major_issue_categories
    assert "docs" in relaxed.major_issue_categories


def test_no_checklist_is_one_phase() -> None:
    strategy = compile_(body="Just do the thing with the database schema.")
    assert len(strategy.phases) == 1
    # The body is the description: too weak to make it high-risk; the docs keyword is not.
    assert strategy.phases[0].task_category is TaskCategory.FEATURE
    docs = compile_(body="Describe the database schema in the docs.")
    assert docs.phases[0].task_category is TaskCategory.DOCS


ITEM = st.text(alphabet=st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=30)


@settings(max_examples=60)
@given(
    st.lists(st.lists(ITEM, min_size=1, max_size=4), min_size=1, max_size=4),
    st.sampled_from([None, "run_scope: single_tier", "safety_profile: safety_critical"]),
)
def test_deterministic_and_round_trips(tiers: list[list[str]], yaml: str | None) -> None:
    body = "\n".join(
        f"## Tier {n}\n" + "\n".join(f"- [ ] {item.strip() or 'x'}" for item in items)
        for n, items in enumerate(tiers, 1)
    )
    strategy = compile_(yaml, body)
    assert compile_(yaml, body) == strategy
    assert Strategy.from_json(strategy.to_json()) == strategy
    assert all(p.max_builder_attempts >= 1 for p in strategy.phases)
    assert {p.tier_id for p in strategy.phases} == {t.tier_id for t in strategy.tiers}


def test_test_integrity_settings_and_what_each_phase_asks_for() -> None:
    body = """\
- [ ] Remove the obsolete legacy tests
- [ ] Quarantine the flaky network test {allow=test_skipped}
- [ ] Add the settings module
  Do not remove any tests.
"""
    yaml = "gate: {test_integrity: {test_paths: [checks/**], disabled: [ci_loosened]}}\n"
    removal, skip, plain = compile_(yaml, body=body).phases
    assert removal.gate.integrity_allowed == ("assertion_removed", "test_deleted")
    assert skip.gate.integrity_allowed == ("test_skipped",)
    assert plain.gate.integrity_allowed == ()
    assert plain.gate.test_paths == ("checks/**",)
    assert plain.gate.integrity_disabled == ("ci_loosened",)
    in_force = {rule.value for rule in removal.gate.policy().integrity.rules}
    assert in_force == {"test_skipped", "coverage_lowered"}
    assert Strategy.from_json(compile_(yaml, body=body).to_json()).phases[0] == removal


def test_a_strategy_stored_before_test_integrity_reads_with_every_rule_on() -> None:
    data = compile_().to_json()
    for phase in data["phases"]:
        for key in ("test_paths", "ci_paths", "integrity_disabled", "integrity_allowed"):
            del phase["gate"][key]
        del phase["category_reason"]
    phase = Strategy.from_json(data).phases[0]
    assert len(phase.gate.policy().integrity.rules) == 5
    assert phase.gate.policy().integrity.test_paths
