"""Plan parsing, rendering, splitting and run selection."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.plan import (
    MAX_BODY_BYTES,
    MAX_TITLE_CHARS,
    UNTITLED,
    Plan,
    PlanPhase,
    PlanTier,
    parse_plan,
    render_plan,
    select_for_run,
    split_plan,
)
from app.domain.taxonomy import BuilderMode, Complexity, RunScope, TaskCategory
from app.domain.test_integrity import IntegrityRule

BODY = """\
We need a small service.

## Tier 1: Foundations
Keep it boring.

- [ ] Add the table {category=schema_change complexity=high mode=schema_heavy}
  Create `runs`.

  ```sql
  CREATE TABLE runs (id int);
  ```
- [x] Write the README
* [ ] Add login {category=security_auth}
Trailing tier notes.

## tier 2 — The rest
- [ ] Wire it up
"""


def test_full_example() -> None:
    plan = parse_plan("Service", BODY)
    assert plan.warnings == ()
    assert plan.preamble == "We need a small service."
    t1, t2 = plan.tiers
    assert (t1.tier_id, t1.title, t1.notes) == (
        "T1",
        "Foundations",
        "Keep it boring.\n\nTrailing tier notes.",
    )
    assert [p.phase_id for p in t1.phases] == ["T1.P1", "T1.P2", "T1.P3"]
    table = t1.phases[0]
    assert table.title == "Add the table"
    assert table.description == "Create `runs`.\n\n```sql\nCREATE TABLE runs (id int);\n```"
    assert (table.category, table.complexity, table.mode) == (
        TaskCategory.SCHEMA_CHANGE,
        Complexity.HIGH,
        BuilderMode.SCHEMA_HEAVY,
    )
    assert [p.done for p in t1.phases] == [False, True, False]
    assert t1.phases[2].category is TaskCategory.SECURITY_AUTH
    assert (t2.tier_id, t2.title, [p.phase_id for p in t2.phases]) == ("T2", "The rest", ["T2.P1"])


def test_crlf_is_the_same_as_lf() -> None:
    assert parse_plan("x", BODY.replace("\n", "\r\n")) == parse_plan("x", BODY)


@pytest.mark.parametrize(
    ("heading", "title"),
    [
        ("## Tier 1: Foundations", "Foundations"),
        ("## TIER 2 - Wiring", "Wiring"),
        ("## tier 3. Dots", "Dots"),
        ("## Tier 4) Paren", "Paren"),
        ("## Tier 5 \u2014 Em dash", "Em dash"),
        ("## Tier", ""),
        ("## Tier A: letters", "A: letters"),
        ("## Tier1: glued", "glued"),
        ("   ## Tier 1: indented three", "indented three"),
        ("## Tier 1: C#", "C#"),
    ],
)
def test_tier_headings(heading: str, title: str) -> None:
    plan = parse_plan("x", f"{heading}\n- [ ] a\n")
    assert [t.title for t in plan.tiers] == [title]


@pytest.mark.parametrize(
    "heading",
    ["# Tier 1", "### Tier 1", "## Tiers of work", "## Notes", "##Tier 1", "    ## Tier 1"],
)
def test_not_tier_headings(heading: str) -> None:
    plan = parse_plan("x", f"- [ ] a\nnote\n{heading}\n- [ ] b\n")
    assert len(plan.tiers) == 1
    assert heading.strip() in plan.tiers[0].notes
    assert [p.title for p in plan.tiers[0].phases] == ["a", "b"]


@pytest.mark.parametrize(
    ("line", "title", "done"),
    [
        ("- [ ] plain", "plain", False),
        ("* [ ] star", "star", False),
        ("+ [ ] plus", "plus", False),
        ("- [x] checked", "checked", True),
        ("- [X] upper", "upper", True),
        ("- [ ]\ttab", "tab", False),
        ("- [ ]   spaced   ", "spaced", False),
        ("- [ ] braces {x} stay", "braces {x} stay", False),
        ("- [ ] trailing {not attrs}", "trailing {not attrs}", False),
        ("- [ ] empty attrs {}", "empty attrs", False),
    ],
)
def test_items(line: str, title: str, done: bool) -> None:
    phase = parse_plan("x", line).tiers[0].phases[0]
    assert (phase.title, phase.done) == (title, done)


@pytest.mark.parametrize("line", ["- [] no", "-[ ] no", "- [y] no", "1. [ ] no", "- [ ]no"])
def test_not_items_means_one_phase_from_the_issue(line: str) -> None:
    plan = parse_plan("The issue", line)
    assert plan.tiers == (PlanTier("T1", phases=(PlanPhase("T1.P1", "The issue", line),)),)


def test_no_checklist_is_one_phase_with_the_whole_body() -> None:
    body = "  Do this.\n\n## Tier 1: but no items\n```\n- [ ] in a fence\n```\n"
    plan = parse_plan("  Make\nit   so ", body)
    (phase,) = plan.phases
    assert (phase.phase_id, phase.title) == ("T1.P1", "Make it so")
    assert phase.description == body.strip("\n")  # "## Tier" is not indented: nothing to strip
    assert parse_plan("", None).phases[0].title == UNTITLED


def test_attributes_warnings_ignore_bad_values() -> None:
    plan = parse_plan(
        "x", "- [ ] a {category=docs complexity=huge colour=red mode=tweak_light, loose}\n"
    )
    phase = plan.phases[0]
    assert (phase.category, phase.complexity, phase.mode) == (
        TaskCategory.DOCS,
        None,
        BuilderMode.TWEAK_LIGHT,
    )
    assert len(plan.warnings) == 3
    assert all(w.startswith("T1.P1: ignored") for w in plan.warnings)
    for warning, word in zip(plan.warnings, ["huge", "colour", "loose"], strict=True):
        assert word in warning


def test_attributes_are_case_insensitive_and_quotes_allowed() -> None:
    phase = parse_plan("x", "- [ ] a {Category=\"Docs\" MODE='tweak_light'}").phases[0]
    assert (phase.category, phase.mode) == (TaskCategory.DOCS, BuilderMode.TWEAK_LIGHT)


def test_items_before_any_tier_form_an_implicit_first_tier() -> None:
    plan = parse_plan("x", "Intro\n- [ ] a\nnote\n## Tier: Later\n- [ ] b\n")
    assert plan.preamble == "Intro"
    assert [(t.tier_id, t.title, t.notes) for t in plan.tiers] == [
        ("T1", "", "note"),
        ("T2", "Later", ""),
    ]
    assert [p.phase_id for p in plan.phases] == ["T1.P1", "T2.P1"]


def test_description_keeps_code_blocks_and_relative_indent() -> None:
    body = (
        "- [ ] a\n    one\n      two\n\n    ```\nnot indented inside fence\n"
        "- [ ] not an item\n    ```\nnotes\n"
    )
    phase = parse_plan("x", body).phases[0]
    assert phase.description == (
        "    one\n      two\n\n    ```\nnot indented inside fence\n- [ ] not an item\n    ```"
    )
    assert parse_plan("x", body).tiers[0].notes == "notes"


def test_fenced_headings_in_notes_are_notes() -> None:
    plan = parse_plan("x", "## Tier 1\n~~~\n## Tier 2\n- [ ] no\n~~~\n- [ ] yes\n")
    assert len(plan.tiers) == 1
    assert [p.title for p in plan.phases] == ["yes"]
    assert "## Tier 2" in plan.tiers[0].notes


def test_unclosed_fence_is_closed_with_a_warning() -> None:
    plan = parse_plan("x", "- [ ] a\n  ```py\n  code\n## Tier 2\n- [ ] b\n")
    assert plan.phases[0].description == "  ```py\n  code\n## Tier 2\n- [ ] b\n\n  ```"
    assert len(plan.phases) == 1
    assert any("never closed" in w for w in plan.warnings)
    assert parse_plan("x", render_plan(plan)).tiers == plan.tiers


def test_empty_item_title_gets_a_placeholder() -> None:
    plan = parse_plan("x", "- [ ]\n- [ ] {category=docs}\n")
    assert [p.title for p in plan.phases] == [UNTITLED, UNTITLED]
    assert plan.phases[1].category is TaskCategory.DOCS
    assert len(plan.warnings) == 2


def test_long_titles_are_capped() -> None:
    plan = parse_plan("x", f"## Tier 1: {'t' * 500}\n- [ ] {'p' * 500}\n")
    assert len(plan.tiers[0].title) == MAX_TITLE_CHARS
    assert len(plan.phases[0].title) == MAX_TITLE_CHARS
    assert len(plan.warnings) == 2
    assert len(parse_plan("i" * 10_000, "").phases[0].title) == MAX_TITLE_CHARS


@pytest.mark.parametrize(
    "body",
    [
        "- [ ] a\n" * 200_000,
        "x" * 1_000_000,
        "\ud800" * 100_000,
        "```\n" * 50_000,
        "## Tier\n" * 100_000,
        "é" * 40_000,
    ],
    ids=["many-items", "one-long-line", "surrogates", "fences", "headings", "multibyte"],
)
def test_huge_inputs_are_capped_with_a_warning(body: str) -> None:
    plan = parse_plan("t\ud800", body)
    assert any(str(MAX_BODY_BYTES) in w for w in plan.warnings)
    assert len(render_plan(plan).encode("utf-8", "replace")) < 3 * MAX_BODY_BYTES


# Markdown-ish fragments so arbitrary bodies hit the interesting branches often.
FRAGMENTS = st.sampled_from(
    ["\n", "\r\n", "\r", "- [ ] ", "* [x] ", "+ [X]", "## Tier ", "## ", "##", "```", "~~~",
     "  ", "    ", "\t", "{", "}", "category=docs", "mode=bogus", "=", " ", "a", "Tier", "1",
     ":", "#", "\u2028", "\x00", "\x85", "é", "\ud800"]
)  # fmt: skip
BODIES = st.lists(FRAGMENTS | st.text(max_size=4), max_size=60).map("".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(title=st.text(max_size=30), body=BODIES | st.text(max_size=200) | st.none())
def test_parse_never_raises_and_render_is_faithful(title: str, body: str | None) -> None:
    plan = parse_plan(title, body)
    assert plan.phases, "every plan has at least one phase"
    again = parse_plan(title, render_plan(plan))
    assert (again.preamble, again.tiers) == (plan.preamble, plan.tiers)
    assert again.warnings == ()
    assert Plan.from_json(plan.to_json()) == plan


# Canonical plans: stripped single-line titles, descriptions with no common indent.
FIRST = st.sampled_from("abcXYZ019")
LINE = st.builds(
    lambda first, rest: (first + rest).rstrip(),
    FIRST,
    st.text(st.sampled_from("ab9 .,;!?'\"()-_`{}=#"), max_size=20),
)
TITLE = st.builds(
    lambda first, rest: (first + rest).rstrip(),
    FIRST,
    st.text(st.sampled_from("ab9 .,;!?()-_{}=#"), max_size=30),
)


@st.composite
def blocks(draw: st.DrawFn, indented: bool) -> str:
    lines = draw(st.lists(LINE | st.just(""), max_size=5))
    if draw(st.booleans()):
        code = draw(st.lists(st.text(st.sampled_from("ab -[]#x"), max_size=8), max_size=3))
        lines += ["```", *[c.rstrip() for c in code], "```"]
    if indented and lines:
        lines = [("    " + line if line and draw(st.booleans()) else line) for line in lines]
        lines.append(draw(LINE))
    return "\n".join(lines).strip("\n")


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    tiers = []
    for t in range(1, draw(st.integers(1, 4)) + 1):
        phases = tuple(
            PlanPhase(
                f"T{t}.P{p}",
                draw(TITLE),
                draw(blocks(indented=True)),
                draw(st.none() | st.sampled_from(TaskCategory)),
                draw(st.none() | st.sampled_from(Complexity)),
                draw(st.none() | st.sampled_from(BuilderMode)),
                draw(st.booleans()),
                _in_order(draw(st.frozensets(st.sampled_from(IntegrityRule)))),
            )
            for p in range(1, draw(st.integers(1, 4)) + 1)
        )
        title = draw(st.just("") | TITLE)
        tiers.append(PlanTier(f"T{t}", title, draw(blocks(indented=False)), phases))
    return Plan(tuple(tiers), (), draw(blocks(indented=False)))


def _in_order(rules: frozenset[IntegrityRule]) -> tuple[IntegrityRule, ...]:
    return tuple(rule for rule in IntegrityRule if rule in rules)


@settings(max_examples=150)
@given(plan=plans())
def test_render_then_parse_is_identity(plan: Plan) -> None:
    assert parse_plan("ignored", render_plan(plan)) == plan
    assert Plan.from_json(plan.to_json()) == plan


def test_allow_names_test_integrity_rules_joined_with_plus() -> None:
    body = (
        "- [ ] Remove the v1 tests {allow=test_deleted+assertion_removed category=tests}\n"
        "- [ ] Quarantine it {allow=TEST_SKIPPED}\n"
        "- [ ] Nope {allow=tests+test_skipped}\n"
    )
    plan = parse_plan("x", body)
    first, second, third = plan.phases
    assert first.allow == (IntegrityRule.TEST_DELETED, IntegrityRule.ASSERTION_REMOVED)
    assert first.category is TaskCategory.TESTS
    assert second.allow == (IntegrityRule.TEST_SKIPPED,)
    assert third.allow == ()  # one unknown name: the whole value is ignored, with a warning
    (warning,) = plan.warnings
    assert warning.startswith("T1.P3: ignored allow='tests+test_skipped'; expected some of")
    assert "{category=tests allow=test_deleted+assertion_removed}" in render_plan(plan)


def _plan(*sizes: int, done: frozenset[str] = frozenset()) -> Plan:
    tiers = []
    for t, size in enumerate(sizes, 1):
        ids = [f"T{t}.P{p}" for p in range(1, size + 1)]
        tiers.append(
            PlanTier(f"T{t}", f"tier {t}", "", tuple(PlanPhase(i, i, done=i in done) for i in ids))
        )
    return Plan(tuple(tiers))


def _shape(plans: list[Plan]) -> list[list[str]]:
    return [[f"{t.tier_id}:{len(t.phases)}" for t in plan.tiers] for plan in plans]


@pytest.mark.parametrize(
    ("sizes", "max_phases", "shape"),
    [
        ((3, 2), 25, [["T1:3", "T2:2"]]),
        ((3, 2), 5, [["T1:3", "T2:2"]]),
        ((3, 2), 4, [["T1:3"], ["T2:2"]]),
        ((2, 2, 2), 4, [["T1:2", "T2:2"], ["T3:2"]]),
        ((7,), 3, [["T1:3"], ["T1:3"], ["T1:1"]]),
        ((1, 5, 1), 2, [["T1:1"], ["T2:2"], ["T2:2"], ["T2:1", "T3:1"]]),
        ((0, 1), 1, [["T2:1"]]),
    ],
)
def test_split_plan(sizes: tuple[int, ...], max_phases: int, shape: list[list[str]]) -> None:
    assert _shape(split_plan(_plan(*sizes), max_phases)) == shape


def test_split_counts_only_phases_to_do() -> None:
    plan = _plan(3, 2, done=frozenset({"T1.P1", "T1.P2", "T2.P1", "T2.P2"}))
    assert _shape(split_plan(plan, 1)) == [["T1:3"]]
    assert split_plan(_plan(2, done=frozenset({"T1.P1", "T1.P2"})), 5) == []
    with pytest.raises(ValueError, match="max_phases"):
        split_plan(plan, 0)


@given(sizes=st.lists(st.integers(0, 8), max_size=6), max_phases=st.integers(1, 10))
def test_split_keeps_every_phase_once_within_the_cap(sizes: list[int], max_phases: int) -> None:
    plan = _plan(*sizes)
    runs = split_plan(plan, max_phases)
    assert [p for run in runs for p in run.phases] == list(plan.phases)
    assert all(1 <= run.undone_count <= max_phases for run in runs)
    for run in runs:  # a tier is cut only when it alone is over the cap
        cut = [
            t for t in run.tiers if len(t.phases) < len(plan.tiers[int(t.tier_id[1:]) - 1].phases)
        ]
        assert not cut or sizes[int(cut[0].tier_id[1:]) - 1] > max_phases


def test_select_single_tier() -> None:
    plan = _plan(2, 3, 1, done=frozenset({"T1.P1", "T1.P2"}))
    selection = select_for_run(plan, RunScope.SINGLE_TIER, 25)
    assert [t.tier_id for t in selection.plan_for_this_run.tiers] == ["T2"]
    assert selection.remaining_tier_ids == ("T3",)
    assert selection.note.startswith("This run does T2 (tier 2): 3 phases.")
    assert selection.note.endswith("next `autopack:run` label: T3.")


def test_select_single_tier_larger_than_the_cap_does_a_chunk() -> None:
    selection = select_for_run(_plan(5, 1), "single_tier", 2)
    assert _shape([selection.plan_for_this_run]) == [["T1:2"]]
    assert selection.remaining_tier_ids == ("T1", "T2")


def test_select_multi_tier() -> None:
    selection = select_for_run(_plan(2, 2, 2), "multi_tier", 4)
    assert _shape([selection.plan_for_this_run]) == [["T1:2", "T2:2"]]
    assert selection.remaining_tier_ids == ("T3",)
    everything = select_for_run(_plan(2, 2), RunScope.MULTI_TIER, 25)
    assert everything.remaining_tier_ids == ()
    assert "every remaining phase" in everything.note


def test_select_with_nothing_to_do() -> None:
    selection = select_for_run(_plan(1, done=frozenset({"T1.P1"})), "multi_tier", 25)
    assert selection.plan_for_this_run.tiers == ()
    assert selection.remaining_tier_ids == ()
    assert "Nothing to do" in selection.note


def test_select_rejects_unknown_scope() -> None:
    with pytest.raises(ValueError, match="bogus"):
        select_for_run(_plan(1), "bogus", 25)
