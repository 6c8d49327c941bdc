"""Phase issues, the run issue index, tier summaries and promotion eligibility."""

from __future__ import annotations

import json
import random
from collections import Counter
from functools import reduce

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.issues import (
    MAX_EVIDENCE_REFS,
    MAX_REF_CHARS,
    Cleanliness,
    IndexEntry,
    IssueCounts,
    IssueState,
    PhaseIssues,
    Promotion,
    RunIssueIndex,
    TierCaps,
    TierStatus,
    TierSummary,
    promotion_eligibility,
    summarise_tier,
)
from app.domain.taxonomy import SafetyProfile

MINOR, MAJOR = Severity.MINOR, Severity.MAJOR


def rec(
    key: str,
    severity: Severity = MINOR,
    *,
    category: str = "lint",
    source: IssueSource = IssueSource.CI,
    evidence: tuple[str, ...] = (),
    path: str | None = None,
    line: int | None = None,
) -> IssueRecord:
    return IssueRecord(key, severity, category, source, evidence, path, line)


# --- phase level -------------------------------------------------------------------------------

PHASE_CASES = [
    pytest.param((), {}, 0, 0, IssueState.CLEAN, id="no-records"),
    pytest.param((rec("a"),), {}, 1, 0, IssueState.MINOR_ONLY, id="one-minor"),
    pytest.param((rec("a"), rec("a"), rec("a")), {}, 1, 0, IssueState.MINOR_ONLY, id="same-key"),
    pytest.param((rec("a"), rec("b")), {}, 2, 0, IssueState.MINOR_ONLY, id="two-minors"),
    pytest.param((rec("a", MAJOR),), {}, 0, 1, IssueState.HAS_MAJOR, id="one-major"),
    pytest.param((rec("a"), rec("a", MAJOR)), {}, 0, 1, IssueState.HAS_MAJOR, id="major-wins"),
    pytest.param((rec("a"), rec("b")), {"a": MAJOR}, 1, 1, IssueState.HAS_MAJOR, id="aged"),
    pytest.param((rec("a", MAJOR),), {"a": MINOR}, 0, 1, IssueState.HAS_MAJOR, id="no-lowering"),
    pytest.param((rec("a"),), {"zzz": MAJOR}, 1, 0, IssueState.MINOR_ONLY, id="unrelated-key"),
]


@pytest.mark.parametrize(("records", "effective", "minor", "major", "state"), PHASE_CASES)
def test_phase_counts_are_distinct_keys_under_effective_severity(
    records: tuple[IssueRecord, ...],
    effective: dict[str, Severity],
    minor: int,
    major: int,
    state: IssueState,
) -> None:
    phase = PhaseIssues("P1", "T1", records, effective)
    assert (phase.minor_count, phase.major_count) == (minor, major)
    assert phase.issue_state is state
    assert phase.counts == IssueCounts(minor, major)


def test_phase_issues_json_round_trip_and_copies_its_inputs() -> None:
    overrides = {"a": MAJOR}
    phase = PhaseIssues(
        "P1", "T1", (rec("b", evidence=("x",), path="f.py", line=3), rec("a")), overrides
    )
    overrides["b"] = MAJOR  # the caller's dict must not leak into the frozen value
    assert phase.major_count == 1
    data = json.loads(json.dumps(phase.to_json()))
    assert data["issue_state"] == "has_major"
    assert [r["issue_key"] for r in data["records"]] == ["a", "b"]
    again = PhaseIssues.from_json(data)
    assert again.severities() == phase.severities()
    assert again.to_json() == phase.to_json()


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"phase_id": "", "tier_id": "T1"},
        {"phase_id": "P", "tier_id": "T1", "records": {}},
        {"phase_id": "P", "tier_id": "T1", "effective": {"a": "huge"}},
        {"phase_id": "P", "tier_id": "T1", "records": [{"issue_key": "a"}]},
    ],
)
def test_phase_issues_from_json_rejects_bad_shapes(bad: object) -> None:
    with pytest.raises(ValueError, match=r"."):
        PhaseIssues.from_json(bad)  # type: ignore[arg-type]


# --- run level ---------------------------------------------------------------------------------


def test_index_records_first_last_tiers_phases_and_occurrences() -> None:
    index = (
        RunIssueIndex()
        .add(0, "T1", "P1", [rec("a", evidence=("log1",))])
        .add(1, "T1", "P2", [rec("a", evidence=("log2",)), rec("b", MAJOR)])
        .add(3, "T2", "P4", [rec("a", path="x.py", line=7)])
    )
    a = index.get("a")
    assert a is not None
    assert (a.first_phase_index, a.last_phase_index) == (0, 3)
    assert a.tiers == ("T1", "T2")
    assert a.phases == ("P1", "P2", "P4")
    assert a.occurrence_count == 3
    assert a.evidence_refs == ("log1", "log2", "x.py:7")
    assert index.counts() == IssueCounts(minor=1, major=1)
    assert index.counts("T1") == IssueCounts(minor=1, major=1)
    assert index.counts("T2") == IssueCounts(minor=1, major=0)
    assert index.counts("T9") == IssueCounts()
    assert index.keys == ("a", "b")
    assert len(index) == 2
    assert "b" in index
    assert index.tier_ids == ("T1", "T2")


def test_index_add_returns_a_new_value() -> None:
    empty = RunIssueIndex()
    one = empty.add(0, "T1", "P1", [rec("a")])
    assert len(empty) == 0
    assert len(one) == 1


def test_index_effective_override_raises_and_is_kept() -> None:
    index = (
        RunIssueIndex().add(0, "T1", "P1", [rec("a")], {"a": MAJOR}).add(1, "T1", "P2", [rec("a")])
    )
    entry = index.get("a")
    assert entry is not None
    assert (entry.base_severity, entry.effective_severity) == (MINOR, MAJOR)
    assert index.counts() == IssueCounts(minor=0, major=1)


def test_index_source_and_category_come_from_the_earliest_sighting() -> None:
    late = rec("a", category="flaky", source=IssueSource.CI)
    early = rec("a", category="probe_failed", source=IssueSource.PROBE)
    index = RunIssueIndex().add(5, "T2", "P6", [late]).add(2, "T1", "P3", [early])
    entry = index.get("a")
    assert entry is not None
    assert (entry.source, entry.category) == (IssueSource.PROBE, "probe_failed")


def test_index_evidence_is_bounded() -> None:
    records = [rec("a", evidence=(f"e{i:03}" + "x" * MAX_REF_CHARS,)) for i in range(50)]
    entry = RunIssueIndex().add(0, "T1", "P1", records).get("a")
    assert entry is not None
    assert len(entry.evidence_refs) == MAX_EVIDENCE_REFS
    assert all(len(r) == MAX_REF_CHARS for r in entry.evidence_refs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, "T1", "P1"), "phase_index"),
        ((0, "", "P1"), "tier_id"),
        ((0, "T1", ""), "phase_id"),
    ],
)
def test_index_add_rejects_bad_arguments(args: tuple[int, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunIssueIndex().add(*args, [rec("a")])


def test_index_rejects_duplicate_keys_and_bad_entries() -> None:
    entry = RunIssueIndex().add(0, "T1", "P1", [rec("a")]).entries[0]
    with pytest.raises(ValueError, match="duplicate"):
        RunIssueIndex((entry, entry))
    with pytest.raises(ValueError, match="effective_severity"):
        IndexEntry("a", MAJOR, MINOR, IssueSource.CI, "c", 0, 0, ("T1",), ("P1",), 1)
    with pytest.raises(ValueError, match="first_phase_index"):
        IndexEntry("a", MINOR, MINOR, IssueSource.CI, "c", 2, 1, ("T1",), ("P1",), 1)
    with pytest.raises(ValueError, match="different keys"):
        entry.combine(RunIssueIndex().add(0, "T1", "P1", [rec("b")]).entries[0])


def test_index_json_is_the_run_artefact_shape() -> None:
    index = (
        RunIssueIndex()
        .add(0, "T1", "P1", [rec("a"), rec("b", MAJOR)])
        .add(1, "T2", "P2", [rec("a")])
    )
    data = json.loads(json.dumps(index.to_json()))
    assert data["version"] == 1
    assert (data["minor_count"], data["major_count"]) == (1, 1)
    assert data["tiers"] == {
        "T1": {"minor_count": 1, "major_count": 1},
        "T2": {"minor_count": 1, "major_count": 0},
    }
    assert RunIssueIndex.from_json(data) == index


GOOD_ENTRY = RunIssueIndex().add(0, "T", "P", [rec("a")]).entries[0].to_json()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "JSON object"),
        ({"version": 2, "entries": []}, "version"),
        ({"version": 1}, "entries"),
        ({"version": 1, "entries": [{"issue_key": "a"}]}, "severity"),
        ({"version": 1, "entries": [{**GOOD_ENTRY, "occurrence_count": 0}]}, "occurrence"),
        ({"version": 1, "entries": [{**GOOD_ENTRY, "tiers": "T"}]}, "tiers"),
        ({"version": 1, "entries": [{**GOOD_ENTRY, "first_phase_index": True}]}, "first_phase"),
        ({"version": 1, "entries": [{**GOOD_ENTRY, "source": "oracle"}]}, "source"),
        ({"version": 1, "entries": [GOOD_ENTRY, GOOD_ENTRY]}, "duplicate"),
    ],
)
def test_index_from_json_rejects_bad_shapes(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunIssueIndex.from_json(bad)  # type: ignore[arg-type]


# Hypothesis: a phase is (phase_index, tier_id, phase_id, records, overrides).
keys = st.sampled_from(["k0", "k1", "k2", "k3", "k4", "k5"])
records_st = st.builds(
    rec,
    keys,
    st.sampled_from(Severity),
    category=st.sampled_from(["lint", "flaky", "gate"]),
    source=st.sampled_from(IssueSource),
    evidence=st.lists(st.text("abc", min_size=1, max_size=3), max_size=3).map(tuple),
)
phases_st = st.lists(
    st.tuples(
        st.integers(0, 20),
        st.sampled_from(["T1", "T2", "T3"]),
        st.sampled_from(["P1", "P2", "P3", "P4"]),
        st.lists(records_st, max_size=6),
        st.dictionaries(keys, st.sampled_from(Severity), max_size=2),
    ),
    max_size=8,
)
Phase = tuple[int, str, str, list[IssueRecord], dict[str, Severity]]


def build(phases: list[Phase]) -> RunIssueIndex:
    return reduce(lambda idx, p: idx.add(*p), phases, RunIssueIndex())


@settings(max_examples=200, deadline=None)
@given(phases=phases_st)
def test_index_counts_distinct_keys_and_every_sighting(phases: list[Phase]) -> None:
    index = build(phases)
    all_records = [r for p in phases for r in p[3]]
    assert set(index.keys) == {r.issue_key for r in all_records}
    assert index.counts().total == len({r.issue_key for r in all_records})
    sightings = Counter(r.issue_key for r in all_records)
    for entry in index.entries:
        assert entry.occurrence_count == sightings[entry.issue_key]
        seen_in = [p for p in phases if any(r.issue_key == entry.issue_key for r in p[3])]
        assert entry.first_phase_index == min(p[0] for p in seen_in)
        assert entry.last_phase_index == max(p[0] for p in seen_in)
        assert set(entry.tiers) == {p[1] for p in seen_in}
        assert set(entry.phases) == {p[2] for p in seen_in}
        base_major = any(
            r.severity is MAJOR for p in seen_in for r in p[3] if r.issue_key == entry.issue_key
        )
        assert (entry.base_severity is MAJOR) == base_major
        assert entry.effective_severity is MAJOR or not base_major
    for tier in index.tier_ids:
        tier_keys = {r.issue_key for p in phases if p[1] == tier for r in p[3]}
        assert index.counts(tier).total == len(tier_keys)


@settings(max_examples=200, deadline=None)
@given(phases=phases_st, seed=st.integers(0, 2**32))
def test_index_is_independent_of_the_order_phases_are_added(phases: list[Phase], seed: int) -> None:
    shuffled = list(phases)
    random.Random(seed).shuffle(shuffled)
    assert build(shuffled) == build(phases)
    assert build(shuffled).to_json() == build(phases).to_json()


@settings(max_examples=150, deadline=None)
@given(left=phases_st, right=phases_st)
def test_index_merge_is_commutative_and_equals_adding_everything(
    left: list[Phase], right: list[Phase]
) -> None:
    a, b = build(left), build(right)
    assert a.merge(b) == b.merge(a) == build(left + right)


@settings(max_examples=150, deadline=None)
@given(phases=phases_st)
def test_index_json_round_trip(phases: list[Phase]) -> None:
    index = build(phases)
    assert RunIssueIndex.from_json(json.loads(json.dumps(index.to_json()))) == index


# --- tier summary ------------------------------------------------------------------------------

# Index for tier T2: 3 distinct minors (one seen twice) and 1 major; T1 has one other minor.
TIER_INDEX = (
    RunIssueIndex()
    .add(0, "T1", "P1", [rec("t1-only")])
    .add(1, "T2", "P2", [rec("m1"), rec("m2"), rec("m1")])
    .add(2, "T2", "P3", [rec("m3"), rec("M1", MAJOR)])
)

T, F = True, False
TOKEN_MSG, CI_MSG = "the tier token cap was reached", "the tier CI run cap was reached"
MINOR_MSG, MAJOR_MSG = "3 minor issues, tolerance 2", "1 major issue, tolerance 0"

# id, status, caps, token cap hit, ci cap hit, minor cap hit, major cap hit, reasons
# (clean exactly when no reasons are expected).
TIER_CASES = [
    pytest.param("complete", TierCaps(3, None), F, F, F, F, (), id="clean-at-tolerance"),
    pytest.param("complete", TierCaps(3, 1), F, F, F, F, (), id="major-within"),
    pytest.param("complete", TierCaps(2, None), F, F, T, F, (MINOR_MSG,), id="minor-over"),
    pytest.param("complete", TierCaps(3, 0), F, F, F, T, (MAJOR_MSG,), id="major-over"),
    pytest.param("complete", TierCaps(9), T, F, F, F, (TOKEN_MSG,), id="token-cap"),
    pytest.param("complete", TierCaps(9), F, T, F, F, (CI_MSG,), id="ci-cap"),
    pytest.param("failed", TierCaps(9), F, F, F, F, ("the tier failed",), id="failed"),
    pytest.param(TierStatus.SKIPPED, TierCaps(9), F, F, F, F, ("the tier was skipped",), id="skip"),
    pytest.param(
        "failed",
        TierCaps(2, 0),
        T,
        T,
        T,
        T,
        ("the tier failed", MINOR_MSG, MAJOR_MSG, TOKEN_MSG, CI_MSG),
        id="everything",
    ),
]


@pytest.mark.parametrize(
    ("status", "caps", "token", "ci", "minor_hit", "major_hit", "reasons"), TIER_CASES
)
def test_summarise_tier(
    status: str,
    caps: TierCaps,
    token: bool,
    ci: bool,
    minor_hit: bool,
    major_hit: bool,
    reasons: tuple[str, ...],
) -> None:
    summary = summarise_tier("T2", status, TIER_INDEX, caps, token_cap_hit=token, ci_cap_hit=ci)
    assert (summary.minor_count, summary.major_count) == (3, 1)
    cleanliness = "not_clean" if reasons else "clean"
    assert summary.cleanliness is Cleanliness(cleanliness)
    assert (summary.minor_cap_hit, summary.major_cap_hit) == (minor_hit, major_hit)
    assert (summary.token_cap_hit, summary.ci_cap_hit) == (token, ci)
    assert summary.reasons == reasons
    assert summary.promotion_blocked is (cleanliness == "not_clean")
    assert TierSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary


def test_summarise_tier_counts_only_that_tier() -> None:
    summary = summarise_tier("T1", "complete", TIER_INDEX, TierCaps(1, 0))
    assert (summary.minor_count, summary.major_count, summary.cleanliness) == (
        1,
        0,
        Cleanliness.CLEAN,
    )


def test_summarise_tier_rejects_unknown_status() -> None:
    with pytest.raises(ValueError, match="done"):
        summarise_tier("T1", "done", TIER_INDEX, TierCaps(1))


@pytest.mark.parametrize(
    ("phases", "profile", "caps"),
    [
        (3, SafetyProfile.NORMAL, TierCaps(6, None)),
        (3, SafetyProfile.SAFETY_CRITICAL, TierCaps(3, 0)),
        (0, SafetyProfile.NORMAL, TierCaps(0, None)),
    ],
)
def test_tier_caps_playbook_defaults(phases: int, profile: SafetyProfile, caps: TierCaps) -> None:
    assert TierCaps.for_tier(phases, profile) == caps


def test_tier_caps_reject_negative_tolerances() -> None:
    with pytest.raises(ValueError, match="tolerances"):
        TierCaps(-1)
    with pytest.raises(ValueError, match="tolerances"):
        TierCaps(1, -1)


def test_tier_summary_from_json_rejects_bad_shapes() -> None:
    good = summarise_tier("T1", "complete", TIER_INDEX, TierCaps(1)).to_json()
    for patch in (
        {"status": "done"},
        {"token_cap_hit": "no"},
        {"minor_count": -1},
        {"reasons": "x"},
    ):
        with pytest.raises(ValueError, match=r"."):
            TierSummary.from_json({**good, **patch})


# --- promotion ---------------------------------------------------------------------------------

CLEAN_T1 = summarise_tier("T1", "complete", TIER_INDEX, TierCaps(5))
DIRTY_T2 = summarise_tier("T2", "complete", TIER_INDEX, TierCaps(2))
FAILED_T3 = summarise_tier("T3", "failed", TIER_INDEX, TierCaps(5))
BARE_NOT_CLEAN = TierSummary(
    "T4", TierStatus.COMPLETE, 0, 0, False, False, False, False, Cleanliness.NOT_CLEAN
)

PROMOTION_CASES = [
    pytest.param("DONE_SUCCESS", [CLEAN_T1], False, True, (), id="eligible"),
    pytest.param("DONE_SUCCESS", [], False, True, (), id="no-tiers"),
    pytest.param(
        "DONE_SUCCESS",
        [CLEAN_T1, DIRTY_T2],
        False,
        False,
        ("tier T2 is not clean: 3 minor issues, tolerance 2",),
        id="dirty-tier",
    ),
    pytest.param(
        "DONE_FAILED_ENVIRONMENT",
        [CLEAN_T1],
        False,
        False,
        ("the run ended in DONE_FAILED_ENVIRONMENT, not DONE_SUCCESS",),
        id="failed-run",
    ),
    pytest.param(
        "DONE_SUCCESS",
        [CLEAN_T1],
        True,
        False,
        ("a run budget was exhausted",),
        id="budget",
    ),
    pytest.param(
        "DONE_SUCCESS", [BARE_NOT_CLEAN], False, False, ("tier T4 is not clean",), id="no-detail"
    ),
    pytest.param(
        "DONE_FAILED_BUDGET_EXHAUSTED",
        [DIRTY_T2, FAILED_T3],
        True,
        False,
        (
            "the run ended in DONE_FAILED_BUDGET_EXHAUSTED, not DONE_SUCCESS",
            "a run budget was exhausted",
            "tier T2 is not clean: 3 minor issues, tolerance 2",
            "tier T3 is not clean: the tier failed",
        ),
        id="everything",
    ),
]


@pytest.mark.parametrize(("state", "tiers", "budget", "eligible", "reasons"), PROMOTION_CASES)
def test_promotion_eligibility(
    state: str, tiers: list[TierSummary], budget: bool, eligible: bool, reasons: tuple[str, ...]
) -> None:
    verdict = promotion_eligibility(state, tiers, budget)
    assert verdict == Promotion(eligible, reasons)
    assert verdict.to_json() == {"eligible": eligible, "reasons": list(reasons)}
