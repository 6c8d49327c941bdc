"""CI interpretation: table-driven rules per source, and properties over arbitrary reports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from app.domain.ci import (
    OUTPUT_LIMIT,
    CheckRunView,
    CIState,
    CIVerdict,
    Outcome,
    Reports,
    Rerun,
    StatusView,
    check_outcome,
    decide,
    failure_output,
    flaky,
    interpret,
)
from app.domain.events import CIFinished, CIResult, event_from_json

ME = 1


def run(
    name: str, conclusion: str | None = "success", *, app: int = 2, id: int = 1, **more: Any
) -> CheckRunView:
    status = "completed" if conclusion else "in_progress"
    return CheckRunView(name, app, status, conclusion, id=id, **more)


def status(context: str, state: str = "success", *, id: int = 1, **more: Any) -> StatusView:
    return StatusView(context, state, id=id, **more)


@pytest.mark.parametrize(
    ("runs", "statuses", "kwargs", "state", "failed", "pending"),
    [
        ([], [], {}, CIState.NO_CHECKS, (), ()),
        ([run("autopack", "failure", app=ME)], [], {}, CIState.NO_CHECKS, (), ()),
        ([run("tests"), run("lint")], [], {}, CIState.GREEN, (), ()),
        (
            [run("tests"), run("lint", "neutral"), run("docs", "skipped")],
            [],
            {},
            CIState.GREEN,
            (),
            (),
        ),
        ([run("tests", "failure"), run("lint")], [], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "timed_out")], [], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "cancelled")], [], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "action_required")], [], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "stale")], [], {}, CIState.RED, ("tests",), ()),
        ([run("tests", None), run("lint")], [], {}, CIState.PENDING, (), ("tests",)),
        ([run("tests", None), run("lint", "failure")], [], {}, CIState.RED, ("lint",), ("tests",)),
        # An older failure superseded by a newer success of the same check (a re-run).
        ([run("tests", "failure", id=1), run("tests", id=2)], [], {}, CIState.GREEN, (), ()),
        ([run("tests", id=2), run("tests", "failure", id=1)], [], {}, CIState.GREEN, (), ()),
        # Our own check run never decides.
        ([run("tests"), run("Autopack", "failure", app=ME)], [], {}, CIState.GREEN, (), ()),
        # Ignored checks and statuses.
        (
            [run("tests"), run("codecov/patch", "failure")],
            [status("codecov/project", "failure")],
            {"ignore": ["codecov/*"]},
            CIState.GREEN,
            (),
            (),
        ),
        # Commit statuses: success passes, pending waits, failure and error fail.
        ([], [status("ci/jenkins")], {}, CIState.GREEN, (), ()),
        ([], [status("ci/jenkins", "pending")], {}, CIState.PENDING, (), ("ci/jenkins",)),
        ([], [status("ci/jenkins", "failure")], {}, CIState.RED, ("ci/jenkins",), ()),
        ([], [status("ci/jenkins", "error")], {}, CIState.RED, ("ci/jenkins",), ()),
        ([run("tests")], [status("ci/jenkins", "failure")], {}, CIState.RED, ("ci/jenkins",), ()),
        # The newest status of a context wins, whatever order they come in.
        (
            [],
            [status("ci", "failure", id=1), status("ci", "success", id=2)],
            {},
            CIState.GREEN,
            (),
            (),
        ),
        ([], [status("ci", id=2), status("ci", "pending", id=1)], {}, CIState.GREEN, (), ()),
        # A name reported by both sources stands as the worse one.
        ([run("ci")], [status("ci", "failure")], {}, CIState.RED, ("ci",), ()),
        ([run("ci", "failure")], [status("ci")], {}, CIState.RED, ("ci",), ()),
        ([run("ci")], [status("ci", "pending")], {}, CIState.PENDING, (), ("ci",)),
        # "all": every check and status the base had must report.
        (
            [run("tests")],
            [],
            {"required": ["all"], "expected": ["tests", "e2e"]},
            CIState.PENDING,
            (),
            ("e2e",),
        ),
        (
            [run("tests")],
            [],
            {"required": ["all"], "expected": ["ci/jenkins"]},
            CIState.PENDING,
            (),
            ("ci/jenkins",),
        ),
        (
            [run("tests"), run("e2e")],
            [],
            {"required": ["all"], "expected": ["e2e"]},
            CIState.GREEN,
            (),
            (),
        ),
        (
            [run("tests")],
            [],
            {"required": ["all"], "expected": ["codecov/x"], "ignore": ["codecov/*"]},
            CIState.GREEN,
            (),
            (),
        ),
        ([], [], {"required": ["all"], "expected": ["e2e"]}, CIState.PENDING, (), ("e2e",)),
        # "changed" never waits for the base's names.
        ([run("tests")], [], {"expected": ["e2e"]}, CIState.GREEN, (), ()),
        # Globs: only matching names decide; a named check that never reports keeps it pending.
        (
            [run("tests"), run("lint", "failure")],
            [],
            {"required": ["test*"]},
            CIState.GREEN,
            (),
            (),
        ),
        ([run("lint")], [], {"required": ["tests"]}, CIState.PENDING, (), ("tests",)),
        ([run("lint")], [], {"required": ["test*"]}, CIState.NO_CHECKS, (), ()),
        ([], [status("test/unit")], {"required": ["test*"]}, CIState.GREEN, (), ()),
        # After a re-run request: only a run newer than the floor decides a re-run check.
        (
            [run("tests", "failure", id=5), run("lint", id=4)],
            [],
            {"rerun": Rerun(("tests",), 5)},
            CIState.PENDING,
            (),
            ("tests",),
        ),
        (
            [run("tests", id=5), run("lint", id=4)],
            [],
            {"rerun": Rerun(("tests",), 5)},
            CIState.PENDING,
            (),
            ("tests",),
        ),
        (
            [run("tests", "failure", id=5), run("tests", None, id=6)],
            [],
            {"rerun": Rerun(("tests",), 5)},
            CIState.PENDING,
            (),
            ("tests",),
        ),
        (
            [run("tests", "failure", id=5), run("tests", "failure", id=6)],
            [],
            {"rerun": Rerun(("tests",), 5)},
            CIState.RED,
            ("tests",),
            (),
        ),
        (
            [run("tests", "failure", id=5), run("tests", id=6), run("lint", id=4)],
            [],
            {"rerun": Rerun(("tests",), 5)},
            CIState.GREEN,
            (),
            (),
        ),
        # A name not re-run is judged as it stands.
        (
            [run("tests", "failure", id=5), run("lint", id=4)],
            [],
            {"rerun": Rerun(("other",), 5)},
            CIState.RED,
            ("tests",),
            (),
        ),
    ],
)
def test_interpret(
    runs: list[CheckRunView],
    statuses: list[StatusView],
    kwargs: dict[str, Any],
    state: CIState,
    failed: tuple[str, ...],
    pending: tuple[str, ...],
) -> None:
    verdict = interpret(runs, statuses, own_app_id=ME, **kwargs)
    assert verdict.state is state
    assert verdict.failed == failed
    assert verdict.pending == pending


GREEN = CIVerdict(CIState.GREEN, ("a",))
RED = CIVerdict(CIState.RED, failed=("a",))
RED_WAITING = CIVerdict(CIState.RED, failed=("a",), pending=("b",))
WAITING = CIVerdict(CIState.PENDING, pending=("a",))
NOTHING = CIVerdict(CIState.NO_CHECKS)


@pytest.mark.parametrize(
    ("verdict", "elapsed", "result"),
    [
        (GREEN, 0, CIResult.GREEN),
        (GREEN, 5000, CIResult.GREEN),
        (RED, 0, CIResult.RED),
        (RED_WAITING, 10, None),  # red waits for the rest, so that one re-run covers all
        (RED_WAITING, 3601, CIResult.TIMED_OUT),
        (WAITING, 10, None),
        (WAITING, 3601, CIResult.TIMED_OUT),
        (NOTHING, 10, None),
        (NOTHING, 601, CIResult.NO_CI),
    ],
)
def test_decide(verdict: CIVerdict, elapsed: float, result: CIResult | None) -> None:
    assert decide(verdict, elapsed=elapsed, start_timeout=600, finish_timeout=3600) is result


def test_summary_and_flaky() -> None:
    before = interpret([run("tests", "failure"), run("lint")], own_app_id=ME)
    assert before.summary == "CI red: 1 passed; failed: tests"
    after = interpret(
        [run("tests", "failure", id=1), run("tests", id=3), run("lint")], own_app_id=ME
    )
    assert flaky(before.failed, after) == ("tests",)
    assert CIVerdict(CIState.NO_CHECKS).summary == "no checks reported"
    assert WAITING.summary == "CI pending: 0 passed; waiting for: a"


def test_failure_output_names_what_failed_and_where() -> None:
    reports = Reports.collect(
        [
            run("tests", "failure", title="2 failed", summary="test_a, test_b", text="trace"),
            run("lint", details_url="https://ci/lint"),
        ],
        [status("ci/jenkins", "error", description="agent lost", target_url="https://ci/j/1")],
        own_app_id=ME,
    )
    output = failure_output(reports, ["tests", "ci/jenkins", "lint", "absent"])
    assert output == (
        "### ci/jenkins (commit status: error)\nagent lost\nhttps://ci/j/1\n\n"
        "### tests (check run: failure)\n2 failed\ntest_a, test_b\ntrace"
    )
    assert failure_output(reports, ["lint"]) == ""


def test_failure_output_is_capped_and_keeps_room_for_every_failure() -> None:
    reports = Reports.collect(
        [run("big", "failure", text="x" * 50_000), run("small", "failure", title="small one")],
        own_app_id=ME,
    )
    output = failure_output(reports, ["big", "small"])
    assert len(output) <= OUTPUT_LIMIT
    assert "small one" in output
    assert "… (truncated)" in output


# -- properties ----------------------------------------------------------------------------------

CONCLUSIONS = st.sampled_from(
    [None, "success", "failure", "neutral", "skipped", "timed_out", "cancelled"]
)
STATES = st.sampled_from(["success", "pending", "failure", "error"])
NAMES = st.sampled_from(["a", "b", "c"])


@st.composite
def reports(draw: st.DrawFn) -> tuple[list[CheckRunView], list[StatusView]]:
    """Check runs (ours among them) and statuses with distinct ids, in any order."""
    items = draw(st.lists(st.tuples(NAMES, CONCLUSIONS, st.sampled_from([ME, 2, 3])), max_size=8))
    contexts = draw(st.lists(st.tuples(NAMES, STATES), max_size=6))
    ids = draw(st.permutations(range(len(items) + len(contexts))))
    runs = [
        run(name, conclusion, app=app, id=ids[i]) for i, (name, conclusion, app) in enumerate(items)
    ]
    statuses = [
        status(name, state, id=ids[len(items) + i]) for i, (name, state) in enumerate(contexts)
    ]
    return runs, statuses


@given(reports())
def test_every_reported_name_is_counted_once(found: tuple[list[Any], list[Any]]) -> None:
    runs, statuses = found
    verdict = interpret(runs, statuses, own_app_id=ME)
    groups = verdict.passed + verdict.failed + verdict.pending
    assert len(groups) == len(set(groups))
    others = {r.name for r in runs if r.app_id != ME} | {s.context for s in statuses}
    assert set(groups) == others
    assert (verdict.state is CIState.GREEN) == (
        bool(verdict.passed) and not verdict.failed and not verdict.pending
    )
    assert (verdict.state is CIState.RED) == bool(verdict.failed)
    event(f"state: {verdict.state.value}")


@given(reports(), NAMES, st.sampled_from(["failure", "error"]))
def test_a_failing_status_always_makes_ci_red(
    found: tuple[list[Any], list[Any]], name: str, state: str
) -> None:
    runs, statuses = found
    newest = 1 + max([r.id for r in runs] + [s.id for s in statuses], default=0)
    verdict = interpret(runs, [*statuses, status(name, state, id=newest)], own_app_id=ME)
    assert verdict.state is CIState.RED
    assert name in verdict.failed


@given(reports(), st.sets(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1))
def test_with_all_required_a_missing_base_name_is_never_green(
    found: tuple[list[Any], list[Any]], expected: set[str]
) -> None:
    runs, statuses = found
    reported = {r.name for r in runs if r.app_id != ME} | {s.context for s in statuses}
    verdict = interpret(runs, statuses, own_app_id=ME, required=["all"], expected=expected)
    missing = expected - reported
    event("a base name is missing" if missing else "every base name reported")
    if missing:
        assert verdict.state is not CIState.GREEN
        assert missing <= set(verdict.pending)


@st.composite
def reruns(draw: st.DrawFn) -> tuple[list[CheckRunView], Rerun, bool]:
    """The runs of one re-run check "t": old ones up to the floor, maybe newer ones above it."""
    floor = draw(st.integers(1, 100))
    old = draw(st.lists(st.tuples(st.integers(1, floor), CONCLUSIONS), min_size=1, max_size=4))
    newer = draw(st.lists(st.tuples(st.integers(floor + 1, floor + 50), CONCLUSIONS), max_size=3))
    runs = [run("t", conclusion, id=id) for id, conclusion in old + newer]
    return runs, Rerun(("t",), floor), bool(newer)


@given(reruns())
@example(([run("t", "failure", id=5)], Rerun(("t",), 5), False))
@example(([run("t", "success", id=3)], Rerun(("t",), 5), False))
@example(([run("t", "failure", id=5), run("t", "success", id=6)], Rerun(("t",), 5), True))
def test_a_rerun_check_waits_for_a_run_newer_than_the_request(
    case: tuple[list[CheckRunView], Rerun, bool],
) -> None:
    runs, rerun, has_newer = case
    outcome = Reports.collect(runs, own_app_id=ME).outcome("t", rerun)
    if not has_newer:
        event("only runs from before the request")
        assert outcome is Outcome.PENDING  # old results are no evidence, whatever they say
    else:
        newest = max(runs, key=lambda r: r.id)
        event(f"a newer run: {check_outcome(newest).value}")
        assert outcome is check_outcome(newest)


@given(
    st.sampled_from([GREEN, RED, RED_WAITING, WAITING, NOTHING]),
    st.floats(0, 10_000, allow_nan=False),
)
def test_decide_only_calls_green_what_is_green(verdict: CIVerdict, elapsed: float) -> None:
    result = decide(verdict, elapsed=elapsed, start_timeout=600, finish_timeout=3600)
    event(f"{verdict.state.value} -> {result}")
    assert (result is CIResult.GREEN) == (verdict.state is CIState.GREEN)
    if result is CIResult.NO_CI:
        assert verdict.state is CIState.NO_CHECKS
        assert elapsed > 600
    if result is None:
        assert elapsed <= 3600


@given(
    st.lists(
        st.tuples(NAMES, st.text(max_size=3000), st.text(max_size=3000)), min_size=1, max_size=6
    ),
    st.integers(1, 20_000),
)
def test_failure_output_never_exceeds_its_limit(
    items: list[tuple[str, str, str]], limit: int
) -> None:
    runs = [
        run(name, "failure", id=i, summary=summary, text=text)
        for i, (name, summary, text) in enumerate(items)
    ]
    output = failure_output(
        Reports.collect(runs, own_app_id=ME), {name for name, *_ in items}, limit
    )
    assert len(output) <= limit
    assert output  # something is always said about a failure


def test_a_verdict_stored_before_output_existed_still_reads() -> None:
    stored = {"type": "CIFinished", "phase_id": "p1", "sha": "abc", "result": "red", "rerun": 1}
    event = event_from_json(stored)
    assert isinstance(event, CIFinished)
    assert (event.result, event.output) == (CIResult.RED, "")
    with_output = CIFinished("p1", "abc", CIResult.RED, output="trace")
    assert event_from_json(with_output.to_json()) == with_output
