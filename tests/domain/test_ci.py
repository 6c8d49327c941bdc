"""CI interpretation, table-driven."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.ci import CheckRunView, CIState, CIVerdict, flaky, interpret

ME = 1


def run(
    name: str, conclusion: str | None = "success", *, app: int = 2, id: int = 1
) -> CheckRunView:
    status = "completed" if conclusion else "in_progress"
    return CheckRunView(name, app, status, conclusion, id=id)


@pytest.mark.parametrize(
    ("runs", "kwargs", "state", "failed", "pending"),
    [
        ([], {}, CIState.NO_CHECKS, (), ()),
        ([run("autopack", "failure", app=ME)], {}, CIState.NO_CHECKS, (), ()),
        ([run("tests"), run("lint")], {}, CIState.GREEN, (), ()),
        ([run("tests"), run("lint", "neutral"), run("docs", "skipped")], {}, CIState.GREEN, (), ()),
        ([run("tests", "failure"), run("lint")], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "timed_out")], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "cancelled")], {}, CIState.RED, ("tests",), ()),
        ([run("tests", "action_required")], {}, CIState.RED, ("tests",), ()),
        ([run("tests", None), run("lint")], {}, CIState.PENDING, (), ("tests",)),
        ([run("tests", None), run("lint", "failure")], {}, CIState.RED, ("lint",), ("tests",)),
        # An older failure superseded by a newer success of the same check (a re-run).
        ([run("tests", "failure", id=1), run("tests", id=2)], {}, CIState.GREEN, (), ()),
        ([run("tests", id=2), run("tests", "failure", id=1)], {}, CIState.GREEN, (), ()),
        # Our own check run never decides.
        ([run("tests"), run("Autopack", "failure", app=ME)], {}, CIState.GREEN, (), ()),
        # Ignored checks.
        (
            [run("tests"), run("codecov/patch", "failure")],
            {"ignore": ["codecov/*"]},
            CIState.GREEN,
            (),
            (),
        ),
        # "all": every check the base had must report.
        (
            [run("tests")],
            {"required": ["all"], "expected": ["tests", "e2e"]},
            CIState.PENDING,
            (),
            ("e2e",),
        ),
        (
            [run("tests"), run("e2e")],
            {"required": ["all"], "expected": ["e2e"]},
            CIState.GREEN,
            (),
            (),
        ),
        # Globs: only matching checks decide; a named check that never reports keeps it pending.
        ([run("tests"), run("lint", "failure")], {"required": ["test*"]}, CIState.GREEN, (), ()),
        ([run("lint")], {"required": ["tests"]}, CIState.PENDING, (), ("tests",)),
        ([run("lint")], {"required": ["test*"]}, CIState.NO_CHECKS, (), ()),
    ],
)
def test_interpret(
    runs: list[CheckRunView],
    kwargs: dict[str, object],
    state: CIState,
    failed: tuple[str, ...],
    pending: tuple[str, ...],
) -> None:
    verdict = interpret(runs, own_app_id=ME, **kwargs)  # type: ignore[arg-type]
    assert verdict.state is state
    assert verdict.failed == failed
    assert verdict.pending == pending


def test_summary_and_flaky() -> None:
    before = interpret([run("tests", "failure"), run("lint")], own_app_id=ME)
    assert before.summary == "CI red: 1 passed; failed: tests"
    after = interpret(
        [run("tests", "failure", id=1), run("tests", id=3), run("lint")], own_app_id=ME
    )
    assert flaky(before.failed, after) == ("tests",)
    assert CIVerdict(CIState.NO_CHECKS).summary == "no checks reported"


CONCLUSIONS = st.sampled_from(
    [None, "success", "failure", "neutral", "skipped", "timed_out", "cancelled"]
)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), CONCLUSIONS, st.sampled_from([ME, 2, 3])),
        max_size=8,
    )
)
def test_properties(items: list[tuple[str, str | None, int]]) -> None:
    runs = [run(name, conclusion, app=app, id=i) for i, (name, conclusion, app) in enumerate(items)]
    verdict = interpret(runs, own_app_id=ME)
    groups = verdict.passed + verdict.failed + verdict.pending
    assert len(groups) == len(set(groups))  # every check counted once
    assert (verdict.state is CIState.GREEN) == (
        bool(verdict.passed) and not verdict.failed and not verdict.pending
    )
    assert (verdict.state is CIState.RED) == bool(verdict.failed)
    others = {name for name, _, app in items if app != ME}
    assert set(groups) == others
