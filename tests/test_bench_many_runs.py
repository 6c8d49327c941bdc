"""The many-runs benchmark's report arithmetic computes what its tables claim."""

from __future__ import annotations

import asyncio
import math
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from bench.many_runs import (
    CLOCK_TICKS,
    ROOT,
    Kill,
    RunEnd,
    Shape,
    calls_by_kind,
    delays,
    fairness,
    goals,
    idle_polling_seconds,
    lost,
    note_reclaims,
    parse_stat,
    per_run_and_phase,
    repository_finishes,
    spread,
    state_seconds,
    wall_seconds,
)
from tests.fakegithub.core import RequestRecord
from tests.sandboxing import require_bwrap


def test_the_ideal_is_the_builders_time_spread_over_every_slot() -> None:
    shape = Shape(runs=200, repos=20, phases=3, builder_seconds=2, workers=2, concurrency=16)
    assert shape.slots == 32
    assert shape.ideal_seconds == 200 * 3 * 2 / 32  # 37.5


ENDS = [
    RunEnd("acme/a", "DONE_SUCCESS", 10.0),
    RunEnd("acme/a", "DONE_SUCCESS", 30.0),
    RunEnd("acme/b", "DONE_SUCCESS", 20.0),
    RunEnd("acme/c", "DONE_FAILED_ENVIRONMENT", 5.0),
    RunEnd("acme/d", None, None),  # never started
    RunEnd("acme/d", "DONE_SUCCESS", 8.0),
]


def test_lost_counts_every_labelled_issue_without_a_successful_end() -> None:
    assert lost(ENDS) == 2


def test_a_repository_is_done_when_its_last_run_is() -> None:
    # d has a run that never ended: it has no completion time (its run is counted as lost).
    assert repository_finishes(ENDS) == {"acme/a": 30.0, "acme/b": 20.0, "acme/c": 5.0}


def test_fairness_is_the_slowest_repository_over_the_fastest() -> None:
    assert fairness({"acme/a": 30.0, "acme/b": 20.0, "acme/c": 5.0}) == 6.0
    assert fairness({"acme/a": 12.0, "acme/b": 12.0}) == 1.0
    assert math.isnan(fairness({}))


@settings(deadline=None)
@given(st.dictionaries(st.text(min_size=1), st.floats(0.1, 1e4), min_size=1))
def test_fairness_is_never_below_one(finishes: dict[str, float]) -> None:
    event("several repositories" if len(finishes) > 1 else "one repository")
    assert fairness(finishes) >= 1.0
    assert (fairness(finishes) == 1.0) == (len(set(finishes.values())) == 1)


def test_wall_runs_to_the_last_end() -> None:
    assert wall_seconds(ENDS) == 30.0
    assert math.isnan(wall_seconds([RunEnd("acme/a", None, None)]))


def test_totals_per_run_and_per_phase() -> None:
    assert per_run_and_phase(1200, runs=20, phases=3) == (60.0, 20.0)
    assert all(math.isnan(v) for v in per_run_and_phase(5, runs=0, phases=3))


def test_delays_count_a_run_that_never_moved_as_infinitely_late() -> None:
    assert delays(100.0, {"r1": 103.5, "r2": None, "r3": 101.0}) == [1.0, 3.5, math.inf]


def _request(path: str, app: str | None, method: str = "GET") -> RequestRecord:
    return RequestRecord(method, path, "", 200, 1.0, 1, app)


def test_only_installation_token_calls_count_and_jwt_calls_apart() -> None:
    log = [
        _request("/repos/acme/a/git/trees", "autopack", "POST"),
        _request("/repos/acme/a/check-runs/7", "autopack", "PATCH"),
        _request("/repos/acme/b/check-runs/9", "autopack", "PATCH"),
        _request("/repos/acme/a/issues/3/comments", "autopack", "POST"),
        _request("/repos/acme/a/check-runs", "ci", "POST"),  # the CI app's own work
        _request("/app/installations/1/access_tokens", "jwt", "POST"),
        _request("/app/hook/deliveries", "jwt"),
    ]
    kinds, routes, jwt = calls_by_kind(log)
    assert (kinds["git"], kinds["checks"], kinds["issues"], kinds["pulls"]) == (1, 2, 1, 0)
    assert sum(kinds.values()) == 4
    assert routes["PATCH /repos/{r}/check-runs/{n}"] == 2
    assert jwt == {"POST /app/installations/{n}/access_tokens": 1, "GET /app/hook/deliveries": 1}


def test_time_in_a_state_runs_until_the_next_transition_of_the_same_run() -> None:
    transitions = [
        ("r1", "PLAN_BOOTSTRAP -> RUN_CREATED", 0.0),
        ("r1", "RUN_CREATED -> PHASE_EXECUTION", 1.0),
        ("r1", "PHASE_EXECUTION -> CI_RUNNING", 3.5),
        ("r1", "CI_RUNNING -> DONE_SUCCESS", 4.0),
        ("r2", "PLAN_BOOTSTRAP -> RUN_CREATED", 10.0),
        ("r2", "RUN_CREATED -> PHASE_EXECUTION", 10.25),
    ]
    assert state_seconds(transitions) == {
        "RUN_CREATED": [1.0, 0.25],
        "PHASE_EXECUTION": [2.5],
        "CI_RUNNING": [0.5],
    }


@settings(deadline=None)
@given(st.lists(st.lists(st.floats(0, 100), min_size=1, max_size=8), min_size=1, max_size=5))
def test_the_states_of_a_run_add_up_to_its_first_to_last_transition(
    gaps_per_run: list[list[float]],
) -> None:
    transitions, spans = [], 0.0
    for run, gaps in enumerate(gaps_per_run):
        at = 0.0
        transitions.append((f"r{run}", "PLAN_BOOTSTRAP -> S0", at))
        for n, gap in enumerate(gaps, start=1):
            at += gap
            transitions.append((f"r{run}", f"S{n - 1} -> S{n}", at))
        spans += at
    event(f"{len(gaps_per_run)} runs")
    spent = state_seconds(transitions)
    assert math.isclose(sum(map(sum, spent.values())), spans, abs_tol=1e-6)
    assert sum(map(len, spent.values())) == sum(map(len, gaps_per_run))


def test_spread_is_median_nearest_rank_p95_and_max() -> None:
    assert spread(list(range(1, 101))) == (50.5, 95, 100)
    assert spread([3.0]) == (3.0, 3.0, 3.0)
    assert all(math.isnan(v) for v in spread([]))


def test_goals_are_judged_on_the_figures_given() -> None:
    shape = Shape(runs=200, repos=20, phases=3, builder_seconds=2, workers=2, concurrency=16)
    met = goals(
        shape, wall=56.0, lost_runs=0, resume=[3.0, 14.9], calls_per_run=40, ms_per_phase=50
    )
    assert [g.met for g in met] == [True] * 5
    assert met[0].figure == "1.49 x ideal"
    missed = goals(
        shape, wall=57.0, lost_runs=1, resume=[math.inf], calls_per_run=40.5, ms_per_phase=51
    )
    assert [g.met for g in missed] == [False] * 5
    assert len(goals(shape, 56.0, 0, None, 40, 50)) == 4  # no kill: no resume goal


def test_a_proc_stat_line_gives_own_and_reaped_children_cpu() -> None:
    # pid (comm with spaces) state ppid ... utime stime cutime cstime ...
    fields = ["S", *["0"] * 10, "150", "50", "30", "10", *["0"] * 30]
    cpu = parse_stat("4242 (autopack worker) " + " ".join(fields))
    assert cpu.own == 200 / CLOCK_TICKS
    assert cpu.children == 40 / CLOCK_TICKS


def test_a_held_run_counts_as_leased_again_only_under_a_live_new_owner() -> None:
    kill = Kill(
        datetime.fromtimestamp(1000, UTC), "vm:1:", "vm:2:", reclaimed=dict.fromkeys("abcd")
    )
    at = datetime.fromtimestamp  # leases of 10 s: a lease ending at 1012.5 began at 1002.5
    rows = [
        ("a", False, "vm:1:3", at(1008, UTC)),  # still the dead worker's lease
        ("b", False, "vm:2:0", at(1012.5, UTC)),  # the restarted worker
        ("c", False, "vm:7:5", at(1013, UTC)),  # another worker
        ("d", False, "vm:2:1", at(1001, UTC)),  # a lease that already ended
    ]
    note_reclaims(kill, rows, now=1004.0, lease=10.0)
    assert kill.reclaimed == {"a": None, "b": 1002.5, "c": 1003.0, "d": None}
    assert kill.taken_by == {"restarted": 1, "other": 1}
    later = [("b", False, "vm:7:1", at(1020, UTC))]  # seen once: a later owner changes nothing
    note_reclaims(kill, later, now=1011.0, lease=10.0)
    assert kill.reclaimed["b"] == 1002.5


@pytest.mark.postgres
async def test_a_small_benchmark_runs_end_to_end(postgres_url: str) -> None:
    # Two runs on one repository, real `autopack web` and two `autopack worker` processes,
    # sandboxed builders: the whole path from labelling to the report (no kill, so that the
    # outcome does not depend on which worker happens to hold a run).
    require_bwrap()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "many_runs.py"),
        *("--runs", "2", "--repos", "1", "--builder-seconds", "0.2", "--concurrency", "2"),
        *("--kill-at", "0", "--timeout", "120", "--postgres", postgres_url),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await process.communicate())[0].decode()
    assert process.returncode == 0, output
    summary = output.splitlines()[2].split("|")
    assert [cell.strip() for cell in summary[1:4]] == ["2 x 3", "1", "2 x 2"]
    assert summary[8].strip() == "0", output  # lost
    assert float(summary[11]) > 0  # API calls per run were counted
    assert "* 0 runs lost: met (0 lost)" in output
    assert "{'DONE_SUCCESS': 2}" in output


def test_idle_polling_is_the_waiting_rate_over_the_free_share_of_the_slots() -> None:
    # 2 workers polling at 50 ms/s while idle, 100 s, slots busy 3/4 of the time: 2.5 s.
    assert idle_polling_seconds(50.0, workers=2, wall=100.0, busy_share=0.75) == 2.5
    assert idle_polling_seconds(50.0, workers=2, wall=100.0, busy_share=1.0) == 0.0
