"""The per-repository backlog: aging, resolution, effective severity and debt candidates."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from app.domain.backlog import (
    AgingRules,
    Backlog,
    BacklogEntry,
    debt_candidates,
    effective_overrides,
    effective_severity,
    update_backlog,
)
from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.issues import RunIssueIndex

MINOR, MAJOR = Severity.MINOR, Severity.MAJOR
RANK = {MINOR: 0, MAJOR: 1}  # StrEnum compares as text, so compare ranks
NOW = "2024-05-01T12:00:00+00:00"
LATER = "2024-05-02T08:30:00+00:00"


def rec(key: str, severity: Severity = MINOR, category: str = "lint") -> IssueRecord:
    return IssueRecord(key, severity, category, IssueSource.CI, ())


def index_of(*records: IssueRecord, tier: str = "T1") -> RunIssueIndex:
    return RunIssueIndex().add(0, tier, "P1", records)


def sightings(*seen: tuple[str, str]) -> RunIssueIndex:
    """A run's index from (issue_key, tier_id) sightings, each in a phase of its own."""
    index = RunIssueIndex()
    for number, (key, tier) in enumerate(seen):
        index = index.add(number, tier, f"{tier}.P{number}", [rec(key)])
    return index


def entry(
    key: str = "k",
    severity: Severity = MINOR,
    runs: int = 1,
    tiers: int = 1,
    occurrences: int = 1,
) -> BacklogEntry:
    return BacklogEntry(key, "lint", severity, runs, tiers, occurrences, "r1", "r1", NOW)


# --- effective severity (table) -------------------------------------------------------------

RULES = AgingRules(minor_to_major_after_runs=3, minor_to_major_after_tiers=2)

AGING_CASES = [
    pytest.param(MINOR, 1, 1, MINOR, id="young"),
    pytest.param(MINOR, 3, 2, MINOR, id="at-both-thresholds"),
    pytest.param(MINOR, 4, 0, MAJOR, id="older-than-3-runs"),
    pytest.param(MINOR, 1, 3, MAJOR, id="older-than-2-tiers"),
    pytest.param(MAJOR, 0, 0, MAJOR, id="major-stays-major"),
    pytest.param(MAJOR, 9, 9, MAJOR, id="old-major"),
]


@pytest.mark.parametrize(("base", "runs", "tiers", "expected"), AGING_CASES)
def test_effective_severity(base: Severity, runs: int, tiers: int, expected: Severity) -> None:
    assert effective_severity(entry(severity=base, runs=runs, tiers=tiers), RULES) is expected


def test_aging_rules_are_configurable_and_validated() -> None:
    assert effective_severity(entry(runs=2, tiers=0), AgingRules(1, 5)) is MAJOR
    assert effective_severity(entry(runs=2, tiers=0), AgingRules(2, 5)) is MINOR
    with pytest.raises(ValueError, match="thresholds"):
        AgingRules(-1, 2)


def test_effective_overrides_name_only_aged_minors() -> None:
    backlog = Backlog((entry("old", runs=5), entry("young"), entry("maj", MAJOR, runs=9)))
    assert effective_overrides(backlog, RULES) == {"old": MAJOR}


# --- update_backlog ---------------------------------------------------------------------------


def test_a_new_issue_enters_with_age_one_run_and_the_tiers_it_was_seen_in() -> None:
    index = index_of(rec("a"), rec("a"), rec("b", MAJOR, "gate"))
    backlog = update_backlog(Backlog(), index, "r1", now_iso=NOW)
    a = backlog.get("a")
    assert a == BacklogEntry("a", "lint", MINOR, 1, 1, 2, "r1", "r1", NOW, 0)
    b = backlog.get("b")
    assert b is not None
    assert (b.category, b.base_severity) == ("gate", MAJOR)
    assert backlog.last_run == "r1"


def test_a_returning_issue_ages_and_keeps_its_first_run() -> None:
    first = update_backlog(Backlog(), sightings(("a", "T1"), ("a", "T2")), "r1", NOW)
    second = update_backlog(first, index_of(rec("a", MAJOR), rec("a"), tier="T3"), "r2", LATER)
    a = second.get("a")
    assert a is not None
    assert (a.age_in_runs, a.age_in_tiers, a.occurrence_count) == (2, 3, 4)
    assert (a.first_seen_run, a.last_seen_run, a.last_seen_at) == ("r1", "r2", LATER)
    assert a.base_severity is MAJOR  # a key that got worse stays worse


def test_an_unseen_issue_is_dropped_after_resolve_after_runs_consecutive_runs() -> None:
    b1 = update_backlog(Backlog(), index_of(rec("a"), rec("b")), "r1", NOW)
    b2 = update_backlog(b1, index_of(rec("b")), "r2", NOW)
    a = b2.get("a")
    assert a is not None
    assert (a.age_in_runs, a.unseen_runs) == (1, 1)  # not seen: does not age
    b3 = update_backlog(b2, index_of(rec("b")), "r3", NOW)
    assert "a" not in b3
    assert "b" in b3


def test_seeing_an_issue_again_resets_its_unseen_streak() -> None:
    b1 = update_backlog(Backlog(), index_of(rec("a")), "r1", NOW)
    b2 = update_backlog(b1, RunIssueIndex(), "r2", NOW)
    b3 = update_backlog(b2, index_of(rec("a")), "r3", NOW)
    b4 = update_backlog(b3, RunIssueIndex(), "r4", NOW)
    a = b4.get("a")
    assert a is not None
    assert (a.age_in_runs, a.unseen_runs) == (2, 1)


def test_resolve_after_runs_is_a_parameter() -> None:
    b1 = update_backlog(Backlog(), index_of(rec("a")), "r1", NOW)
    assert "a" not in update_backlog(b1, RunIssueIndex(), "r2", NOW, resolve_after_runs=1)
    b = b1
    for run in ("r2", "r3", "r4"):
        b = update_backlog(b, RunIssueIndex(), run, NOW, resolve_after_runs=4)
    assert "a" in b
    assert "a" not in update_backlog(b, RunIssueIndex(), "r5", NOW, resolve_after_runs=4)


def test_applying_the_same_run_twice_changes_nothing() -> None:
    b1 = update_backlog(Backlog(), index_of(rec("a")), "r1", NOW)
    b2 = update_backlog(b1, index_of(rec("a")), "r2", NOW)
    assert update_backlog(b2, index_of(rec("a")), "r2", LATER) is b2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"run_id": ""}, "run_id"),
        ({"now_iso": "yesterday"}, "ISO"),
        ({"resolve_after_runs": 0}, "resolve_after_runs"),
    ],
)
def test_update_backlog_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"run_id": "r1", "now_iso": NOW, **kwargs}
    with pytest.raises(ValueError, match=message):
        update_backlog(Backlog(), index_of(rec("a")), **args)  # type: ignore[arg-type]


# --- debt candidates and top keys -------------------------------------------------------------


def test_debt_candidates_are_aged_minors_oldest_first_and_bounded() -> None:
    backlog = Backlog(
        (
            entry("young", runs=1, tiers=1),
            entry("by-tiers", runs=1, tiers=5),
            entry("oldest", runs=9, tiers=0),
            entry("old", runs=4, tiers=0),
            entry("old-too", runs=4, tiers=0, occurrences=7),
            entry("major", MAJOR, runs=20),
        )
    )
    picked = debt_candidates(backlog, RULES, max_issues=10)
    assert [e.issue_key for e in picked] == ["oldest", "old-too", "old", "by-tiers"]
    assert [e.issue_key for e in debt_candidates(backlog, RULES, 2)] == ["oldest", "old-too"]
    assert debt_candidates(backlog, RULES, 0) == ()


def test_top_keys_by_runs_tiers_and_occurrences() -> None:
    backlog = Backlog(
        (entry("a", runs=3, tiers=1, occurrences=1), entry("b", runs=1, tiers=4, occurrences=9))
    )
    assert [e.issue_key for e in backlog.top("runs", 5)] == ["a", "b"]
    assert [e.issue_key for e in backlog.top("tiers", 1)] == ["b"]
    assert [e.issue_key for e in backlog.top("occurrences", 2)] == ["b", "a"]


# --- JSON ---------------------------------------------------------------------------------------


def test_backlog_json_round_trip_and_validation() -> None:
    backlog = update_backlog(Backlog(), index_of(rec("a"), rec("b", MAJOR)), "r1", NOW)
    data = json.loads(json.dumps(backlog.to_json()))
    assert Backlog.from_json(data) == backlog
    good = data["entries"][0]
    bad_cases: list[tuple[object, str]] = [
        ([], "JSON object"),
        ({**data, "version": 7}, "version"),
        ({**data, "entries": None}, "entries"),
        ({**data, "last_run": ""}, "last_run"),
        ({**data, "entries": [{**good, "age_in_runs": -1}]}, "age_in_runs"),
        ({**data, "entries": [{**good, "last_seen_at": "soon"}]}, "ISO"),
        ({**data, "entries": [{**good, "base_severity": "fatal"}]}, "base_severity"),
        ({**data, "entries": [good, good]}, "duplicate"),
    ]
    for bad, message in bad_cases:
        with pytest.raises(ValueError, match=message):
            Backlog.from_json(bad)  # type: ignore[arg-type]


# --- aging by the tiers an issue was seen in (table) --------------------------------------------

OPEN = entry("a", runs=1, tiers=2, occurrences=3)
TIER_CASES = [
    # (id, backlog before, sightings in the run, still open after a failed cleanup,
    #  (age_in_runs, age_in_tiers, occurrence_count) after)
    ("seen once in a run of three tiers", (), [("a", "T1")], {}, (1, 1, 1)),
    ("seen in two of three tiers", (), [("a", "T1"), ("a", "T3")], {}, (1, 2, 2)),
    ("seen twice in one tier", (), [("a", "T2"), ("a", "T2")], {}, (1, 1, 2)),
    ("returning, seen in one tier", (OPEN,), [("a", "T2")], {}, (2, 3, 4)),
    ("returning, seen in three tiers", (OPEN,), [("a", "T1"), ("a", "T2"), ("a", "T3")], {},
     (2, 5, 6)),
    ("cleanup failed, not seen", (OPEN,), [], {"a": "T2"}, (2, 3, 3)),
    ("cleanup failed, seen in another tier", (OPEN,), [("a", "T1")], {"a": "T2"}, (2, 4, 4)),
    ("cleanup failed, seen in its tier", (OPEN,), [("a", "T2")], {"a": "T2"}, (2, 3, 4)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("before", "seen", "still_open", "ages"),
    [pytest.param(*case[1:], id=case[0]) for case in TIER_CASES],
)
def test_an_issue_ages_by_the_tiers_it_was_seen_in(
    before: tuple[BacklogEntry, ...],
    seen: list[tuple[str, str]],
    still_open: dict[str, str],
    ages: tuple[int, int, int],
) -> None:
    backlog = update_backlog(Backlog(before), sightings(*seen), "r2", NOW, still_open=still_open)
    a = backlog.get("a")
    assert a is not None
    assert (a.age_in_runs, a.age_in_tiers, a.occurrence_count) == ages
    assert (a.last_seen_run, a.unseen_runs) == ("r2", 0)


def test_a_key_left_open_by_a_cleanup_that_is_not_in_the_backlog_is_ignored() -> None:
    backlog = update_backlog(Backlog(), RunIssueIndex(), "r1", NOW, still_open={"gone": "T1"})
    assert len(backlog) == 0


def test_the_repository_thresholds_are_kept_with_the_backlog() -> None:
    own = AgingRules(minor_to_major_after_runs=5, minor_to_major_after_tiers=7)
    first = update_backlog(Backlog(), index_of(rec("a")), "r1", NOW, aging=own)
    assert first.aging == own
    assert update_backlog(first, index_of(rec("a")), "r2", NOW).aging == own  # kept
    assert Backlog.from_json(json.loads(json.dumps(first.to_json()))).aging == own
    # A backlog stored before thresholds were kept reads with the defaults.
    old = {key: value for key, value in first.to_json().items() if key != "aging"}
    assert Backlog.from_json(old).aging == AgingRules()
    for bad in ([], {"minor_to_major_after_runs": 1}, {"minor_to_major_after_runs": -1}):
        with pytest.raises(ValueError, match=r"aging|minor_to_major"):
            Backlog.from_json({**first.to_json(), "aging": bad})


# --- properties (hypothesis) ------------------------------------------------------------------

KEYS = ["k0", "k1", "k2", "k3"]
TIERS = ["T1", "T2", "T3"]
Sighting = tuple[str, Severity, str]
runs_st = st.lists(
    st.lists(
        st.tuples(st.sampled_from(KEYS), st.sampled_from(Severity), st.sampled_from(TIERS)),
        max_size=6,
    ),
    max_size=8,
)


def index_for(seen: list[Sighting]) -> RunIssueIndex:
    index = RunIssueIndex()
    for number, (key, severity, tier) in enumerate(seen):
        index = index.add(number, tier, f"P{number}", [rec(key, severity)])
    return index


def apply_runs(runs: list[list[Sighting]], backlog: Backlog | None = None) -> list[Backlog]:
    """Every backlog state, starting with the empty one, after each run in turn."""
    states = [backlog or Backlog()]
    for i, seen in enumerate(runs):
        states.append(update_backlog(states[-1], index_for(seen), f"r{i}", NOW))
    return states


@settings(max_examples=150, deadline=None)
@given(runs=runs_st)
def test_ages_never_decrease_while_an_issue_keeps_appearing(runs: list[list[Sighting]]) -> None:
    states = apply_runs(runs)
    for i, seen in enumerate(runs):
        before, after = states[i], states[i + 1]
        for key in {k for k, _, _ in seen}:
            tiers = len({tier for k, _, tier in seen if k == key})
            event(f"seen in {tiers} tier(s) of a run")
            now = after.get(key)
            assert now is not None
            old = before.get(key)
            if old is None:
                assert (now.age_in_runs, now.age_in_tiers) == (1, tiers)
            else:
                event("a returning issue")
                assert now.age_in_runs == old.age_in_runs + 1
                assert now.age_in_tiers == old.age_in_tiers + tiers
                assert now.occurrence_count > old.occurrence_count
                assert RANK[effective_severity(now, RULES)] >= RANK[effective_severity(old, RULES)]
        # Keys not seen never age, and are either kept with a longer unseen streak or dropped.
        for old in before.entries:
            if old.issue_key not in {k for k, _, _ in seen}:
                now = after.get(old.issue_key)
                assert now is None or (
                    (now.age_in_runs, now.unseen_runs) == (old.age_in_runs, old.unseen_runs + 1)
                )


@settings(max_examples=150, deadline=None)
@given(runs=runs_st)
def test_an_issue_never_ages_by_more_tiers_than_it_was_seen_in(
    runs: list[list[Sighting]],
) -> None:
    states = apply_runs(runs)
    counted_most = 0
    for key in KEYS:
        final = states[-1].get(key)
        if final is None:
            continue
        # Every tier counted is a tier of some run that saw it (at most three per run).
        counted = sum(len({tier for k, _, tier in seen if k == key}) for seen in runs)
        counted_most = max(counted_most, counted)
        assert final.age_in_tiers <= counted
        assert final.age_in_tiers <= 3 * final.age_in_runs
    target(float(counted_most))


ages = st.integers(0, 10)


@settings(max_examples=200, deadline=None)
@given(
    runs=ages,
    tiers=ages,
    more_runs=ages,
    more_tiers=ages,
    base=st.sampled_from(Severity),
    rules=st.builds(AgingRules, ages, ages),
)
def test_effective_severity_is_monotone_in_age(
    runs: int, tiers: int, more_runs: int, more_tiers: int, base: Severity, rules: AgingRules
) -> None:
    young = entry(severity=base, runs=runs, tiers=tiers)
    old = dataclasses.replace(young, age_in_runs=runs + more_runs, age_in_tiers=tiers + more_tiers)
    assert RANK[effective_severity(young, rules)] <= RANK[effective_severity(old, rules)]
    assert RANK[effective_severity(young, rules)] >= RANK[base]


@settings(max_examples=100, deadline=None)
@given(runs=runs_st)
def test_update_is_deterministic_and_independent_of_input_order(
    runs: list[list[Sighting]],
) -> None:
    first = apply_runs(runs)
    again = apply_runs(runs)
    assert first == again
    assert [b.to_json() for b in first] == [b.to_json() for b in again]
    # The same run with its records in reverse order gives the same backlog.
    assert apply_runs([list(reversed(seen)) for seen in runs]) == first


@settings(max_examples=100, deadline=None)
@given(runs=runs_st)
def test_backlog_json_round_trip_property(runs: list[list[Sighting]]) -> None:
    for backlog in apply_runs(runs):
        assert Backlog.from_json(json.loads(json.dumps(backlog.to_json()))) == backlog
