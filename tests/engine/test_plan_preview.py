"""The `/autopack plan` answer: classification, phases that will need review, test changes."""

from __future__ import annotations

from app.domain.backlog import Backlog
from app.domain.compiler import OperatorCaps, RunIdentity, compile_strategy
from app.domain.plan import parse_plan, select_for_run
from app.domain.ruleset import load_ruleset
from app.engine.planning import Planned, render_plan_preview

BODY = """\
- [ ] Add the settings module
- [ ] Fix the login token refresh {category=security_auth complexity=high}
- [ ] Add a database migration for users
  Uses OAuth under the hood.
- [ ] Quarantine the flaky upload test
- [ ] Rework the cache {allow=coverage_lowered}
"""


def preview(ruleset: str, auditor: bool) -> str:
    rules = load_ruleset(ruleset)
    selection = select_for_run(parse_plan("t", BODY), rules.run_scope, 25)
    identity = RunIdentity("r-1", "acme/widgets", 1, "autopack/issue-1-run-1")
    caps = OperatorCaps(auditor_available=auditor)
    strategy = compile_strategy(rules, selection, Backlog(), identity, caps)
    return render_plan_preview(Planned(strategy, "", "t", "main"))


def test_without_an_auditor_every_phase_that_needs_review_is_named_with_why() -> None:
    text = preview("builder: default\n", auditor=False)
    assert "| security_auth / high / tweak_light | set in the plan |" in text
    assert "| schema_change / high / schema_heavy | the title mentions “database migration” |" in (
        text
    )
    warnings = [line for line in text.splitlines() if line.startswith("- ⚠️")]
    assert [w.split(":")[0] for w in warnings] == [
        "- ⚠️ T1.P2 Fix the login token refresh",
        "- ⚠️ T1.P3 Add a database migration for users",
    ]
    assert "schema_change changes are not pushed without a review" in warnings[1]
    assert "**no auditor is configured**, so each is pushed and marked" in text
    assert "any phase whose change weakens the tests" in text
    assert "- T1.P4: `test_skipped`" in text
    assert "- T1.P5: `coverage_lowered`" in text


def test_with_an_auditor_it_says_who_reviews() -> None:
    text = preview("builder: default\nauditor: reviewer\n", auditor=True)
    assert "**Needs review before push:** the auditor `reviewer` reviews each" in text
    assert "no auditor is configured" not in text
    assert "weakens the tests" not in text


def test_a_plan_with_nothing_to_review_warns_about_nothing() -> None:
    rules = load_ruleset("builder: default\nauditor: reviewer\n")
    selection = select_for_run(
        parse_plan("t", "- [ ] Add the settings module\n"), rules.run_scope, 5
    )
    identity = RunIdentity("r-1", "acme/widgets", 1, "autopack/issue-1-run-1")
    strategy = compile_strategy(rules, selection, Backlog(), identity, OperatorCaps())
    text = render_plan_preview(Planned(strategy, "", "t", "main"))
    assert "Needs review" not in text
    assert "Test changes" not in text
