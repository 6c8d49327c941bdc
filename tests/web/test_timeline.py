"""The phase timeline SVG: well-formed and bounded whatever the attempts."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from app.store.progress import CI_RED, GREEN, OUTCOMES, RUNNING, AttemptRow
from app.web import timeline
from app.web.timeline import (
    LABEL_WIDTH,
    MAX_BARS,
    MAX_LANES,
    MIN_BAR_WIDTH,
    RIGHT_PAD,
    WIDTH,
    format_duration,
    outcome_colour,
    render_timeline,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

zones = st.one_of(
    st.none(),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
moments = st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(), zones)


def attempt(
    phase: str = "T1.P1",
    number: int = 1,
    start: datetime = T0,
    end: datetime | None = None,
    outcome: str = GREEN,
    actor: str = "builder",
    summary: str = "",
) -> AttemptRow:
    return AttemptRow(
        run_id="r1",
        phase_id=phase,
        attempt=number,
        actor=actor,
        started_at=start,
        finished_at=end,
        outcome=outcome,
        tokens=100,
        commit_sha=None,
        ci_result=None,
        summary=summary,
    )


attempts = st.builds(
    attempt,
    phase=st.text(max_size=30),
    number=st.integers(0, 10**6),
    start=moments,
    end=st.none() | moments,
    outcome=st.sampled_from((*OUTCOMES, "something-new")),
    actor=st.sampled_from(("builder", "auditor", "")),
    summary=st.text(max_size=400),
)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, parsed to prove it is well-formed


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


@settings(max_examples=300, deadline=None)
@given(st.lists(attempts, max_size=40), moments, st.lists(st.text(max_size=20), max_size=5))
def test_any_attempts_give_well_formed_bounded_svg(
    items: list[AttemptRow], now: datetime, phases: list[str]
) -> None:
    root = parse(render_timeline(items, now, phases))
    drawn = bars(root)
    assert len(drawn) == len(items)  # under both caps, every attempt is a bar
    for bar in drawn:
        x, width = float(bar.get("x", "nan")), float(bar.get("width", "nan"))
        assert math.isfinite(x)
        assert math.isfinite(width)
        assert width >= MIN_BAR_WIDTH
        assert x >= LABEL_WIDTH - 0.05
        assert x + width <= WIDTH - RIGHT_PAD + 0.1
        assert bar.get("fill") == outcome_colour(bar.get("data-outcome", ""))
    height = float(root.get("height", "0"))
    for rect in root.iter(f"{SVG}rect"):
        assert float(rect.get("y", "0")) + float(rect.get("height", "0")) <= height


def test_no_attempts_says_so() -> None:
    root = parse(render_timeline([], T0))
    assert bars(root) == []
    assert "No attempts yet" in "".join(root.itertext())


def test_one_running_attempt_reaches_now() -> None:
    svg = render_timeline([attempt(outcome=RUNNING)], T0 + timedelta(minutes=3))
    (bar,) = bars(parse(svg))
    assert bar.get("fill") == timeline.OUTCOME_COLOURS[RUNNING]
    # Alone on the timeline, it spans the whole plot.
    assert float(bar.get("width", "0")) > WIDTH - LABEL_WIDTH - RIGHT_PAD - 1
    assert "+3m 00s" in svg


def test_bars_are_placed_by_time_in_their_phase_lane() -> None:
    items = [
        attempt("T1.P1", 1, T0, T0 + timedelta(minutes=1), CI_RED),
        attempt("T1.P1", 2, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), GREEN),
        attempt("T1.P2", 1, T0 + timedelta(minutes=2), T0 + timedelta(minutes=4), GREEN),
    ]
    first, second, third = bars(parse(render_timeline(items, T0, ["T1.P1", "T1.P2"])))
    assert first.get("fill") == timeline.OUTCOME_COLOURS[CI_RED]
    assert first.get("y") == second.get("y") != third.get("y")
    assert float(first.get("x", "0")) < float(second.get("x", "0")) < float(third.get("x", "0"))
    assert float(third.get("width", "0")) > float(second.get("width", "0"))


def test_equal_times_still_draw_a_visible_bar() -> None:
    (bar,) = bars(parse(render_timeline([attempt(end=T0)], T0)))
    assert float(bar.get("width", "0")) == MIN_BAR_WIDTH


def test_hostile_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>&\x00\x1b'
    svg = render_timeline([attempt(phase=evil, summary=evil, outcome=evil)], T0)
    root = parse(svg)
    assert "<script" not in svg
    assert not list(root.iter(f"{SVG}script"))
    assert '<script>alert("x")</script>&' in "".join(root.itertext())


def test_huge_counts_are_capped_and_said() -> None:
    items = [
        attempt(f"P{n % (MAX_LANES + 40)}", n, T0 + timedelta(seconds=n), None, GREEN)
        for n in range(MAX_BARS * 3)
    ]
    svg = render_timeline(items, T0 + timedelta(hours=2))
    root = parse(svg)
    assert len(bars(root)) == MAX_BARS
    phases = [t for t in root.iter(f"{SVG}text") if t.get("class") == "phase"]
    assert len(phases) == MAX_LANES
    assert "(40 more phases)" in "".join(root.itertext())
    assert len(svg) < 1_000_000


def test_durations() -> None:
    assert [format_duration(s) for s in (-5, 0, 42, 182, 7500, 277200)] == [
        "0s",
        "0s",
        "42s",
        "3m 02s",
        "2h 05m",
        "3d 5h",
    ]
