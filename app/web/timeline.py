"""A run's phase timeline as SVG: one lane per phase, one bar per attempt, coloured by outcome.

Pure: attempts and the current time in, SVG text out. The output is well-formed XML whatever the
input (no attempts, running attempts without a finish time, equal or reversed times, naive and
aware datetimes mixed, hostile text, thousands of attempts), so it can be inlined into a page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from app.domain.report_markdown import duration as format_duration
from app.domain.report_view import AttemptFacts
from app.store.progress import (
    BUILDER_FAILED,
    CANCELLED,
    CI_RED,
    GATE_FAILED,
    GREEN,
    PUSH_FAILED,
    REJECTED,
    RUNNING,
)

# Outcome -> fill colour; the dashboard's legend and the browser test read the same table.
OUTCOME_COLOURS: dict[str, str] = {
    GREEN: "#1a7f37",
    RUNNING: "#0969da",
    CI_RED: "#cf222e",
    BUILDER_FAILED: "#e16f24",
    GATE_FAILED: "#9a6700",
    PUSH_FAILED: "#8250df",
    REJECTED: "#bf3989",
    CANCELLED: "#6e7781",
}
UNKNOWN_COLOUR = "#afb8c1"

WIDTH = 960
LABEL_WIDTH = 140
RIGHT_PAD = 12
TOP = 8
LANE_HEIGHT = 26
BAR_HEIGHT = 18
AXIS_HEIGHT = 30
MIN_BAR_WIDTH = 3.0
# Bounds that keep a pathological run's page small: later lanes and older bars are summarised.
MAX_LANES = 60
MAX_BARS = 1500
LABEL_CHARS = 18
TITLE_CHARS = 300

# Characters XML 1.0 does not allow at all; escaping cannot make them legal, so they are dropped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class _Bar:
    lane: int
    start: datetime
    end: datetime
    attempt: AttemptFacts


def outcome_colour(outcome: str) -> str:
    """The fill colour of an outcome (a neutral grey for one the timeline does not know)."""
    return OUTCOME_COLOURS.get(outcome, UNKNOWN_COLOUR)


def render_timeline(
    attempts: Iterable[AttemptFacts], now: datetime, phases: Sequence[str] = ()
) -> str:
    """The SVG of a run's attempts; `phases` fixes the lane order (others follow, first seen)."""
    items = list(attempts)
    moment = _utc(now)
    lanes = _lanes(phases, items)
    shown = {phase: index for index, phase in enumerate(lanes[:MAX_LANES])}
    bars = [
        _Bar(shown[a.phase_id], _utc(a.started_at), _end(a, moment), a)
        for a in items
        if a.phase_id in shown
    ]
    bars.sort(key=lambda bar: bar.start)
    dropped = len(items) - len(bars)
    if len(bars) > MAX_BARS:  # keep the latest: they say where the run is now
        dropped += len(bars) - MAX_BARS
        bars = bars[-MAX_BARS:]
    lane_count = max(1, min(len(lanes), MAX_LANES))
    height = TOP + lane_count * LANE_HEIGHT + AXIS_HEIGHT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img" '
        f'width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'aria-label="{_attr(_caption(len(items), len(lanes)))}">'
    ]
    parts.extend(_lane_backgrounds(lanes[:MAX_LANES]))
    if bars:
        first = min(bar.start for bar in bars)
        last = max(bar.end for bar in bars)
        span = max((last - first).total_seconds(), 1.0)
        parts.extend(_bar(bar, first, span) for bar in bars)
        parts.append(_axis(lane_count, first, span))
    else:
        parts.append(
            f'<text class="empty" x="{LABEL_WIDTH + 8}" y="{TOP + LANE_HEIGHT // 2 + 5}" '
            'font-size="13" fill="#57606a">No attempts yet</text>'
        )
    hidden_lanes = len(lanes) - min(len(lanes), MAX_LANES)
    if hidden_lanes or dropped:
        note = f"{dropped} attempts not drawn"
        if hidden_lanes:
            note += f" ({hidden_lanes} more phases)"
        parts.append(
            f'<text class="note" x="{WIDTH - RIGHT_PAD}" y="{height - 4}" text-anchor="end" '
            f'font-size="11" fill="#57606a">{_text(note)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _lanes(phases: Sequence[str], attempts: Sequence[AttemptFacts]) -> list[str]:
    lanes = list(dict.fromkeys(phases))
    known = set(lanes)
    for attempt in attempts:
        if attempt.phase_id not in known:
            known.add(attempt.phase_id)
            lanes.append(attempt.phase_id)
    return lanes


def _utc(moment: datetime) -> datetime:
    # Rows from SQLite come back naive; they are UTC like everything the store writes.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # within hours of year 1 or 9999: keep its own offset
        return moment


def _end(attempt: AttemptFacts, now: datetime) -> datetime:
    start = _utc(attempt.started_at)
    finished = attempt.finished_at
    end = now if finished is None else _utc(finished)
    return max(start, end)  # a running attempt seen before its start, or a skewed clock


def _caption(attempts: int, phases: int) -> str:
    return f"Timeline of {attempts} attempts over {phases} phases"


def _lane_backgrounds(lanes: Sequence[str]) -> list[str]:
    parts = []
    for index, phase in enumerate(lanes):
        y = TOP + index * LANE_HEIGHT
        if index % 2 == 0:
            parts.append(
                f'<rect class="lane" x="0" y="{y}" width="{WIDTH}" height="{LANE_HEIGHT}" '
                'fill="#f6f8fa"/>'
            )
        label = phase if len(phase) <= LABEL_CHARS else phase[: LABEL_CHARS - 1] + "…"
        parts.append(
            f'<text class="phase" x="6" y="{y + LANE_HEIGHT // 2 + 4}" font-size="12" '
            f'fill="#24292f">{_text(label)}<title>{_text(phase)}</title></text>'
        )
    return parts


def _bar(bar: _Bar, first: datetime, span: float) -> str:
    plot = WIDTH - LABEL_WIDTH - RIGHT_PAD
    offset = (bar.start - first).total_seconds() / span * plot
    width = max(MIN_BAR_WIDTH, (bar.end - bar.start).total_seconds() / span * plot)
    x = LABEL_WIDTH + min(offset, plot - width)
    y = TOP + bar.lane * LANE_HEIGHT + (LANE_HEIGHT - BAR_HEIGHT) / 2
    a = bar.attempt
    colour = outcome_colour(a.outcome)
    # Auditor attempts get a dashed outline: same outcome colours, a different hand.
    auditor = a.actor == "auditor"
    stroke = ' stroke="#24292f" stroke-width="1.5" stroke-dasharray="3 2"' if auditor else ""
    title = (
        f"{a.phase_id} · attempt {a.attempt} ({a.actor}) · {a.outcome} · "
        f"{format_duration((bar.end - bar.start).total_seconds())} · {a.tokens} tokens"
    )
    if a.summary:
        title += f" · {a.summary[:TITLE_CHARS]}"
    label = ""
    if width >= 16:
        label = (
            f'<text x="{x + width / 2:.1f}" y="{y + BAR_HEIGHT / 2 + 4:.1f}" font-size="11" '
            f'text-anchor="middle" fill="#ffffff" pointer-events="none">{a.attempt}</text>'
        )
    return (
        f'<rect class="bar" data-outcome="{_attr(a.outcome)}" x="{x:.1f}" y="{y:.1f}" '
        f'width="{width:.1f}" height="{BAR_HEIGHT}" rx="3" fill="{colour}"{stroke}>'
        f"<title>{_text(title)}</title></rect>{label}"
    )


def _axis(lanes: int, first: datetime, span: float) -> str:
    y = TOP + lanes * LANE_HEIGHT
    left, right = LABEL_WIDTH, WIDTH - RIGHT_PAD
    return (
        f'<line class="axis" x1="{left}" y1="{y + 2}" x2="{right}" y2="{y + 2}" '
        'stroke="#8c959f" stroke-width="1"/>'
        f'<text x="{left}" y="{y + 18}" font-size="11" fill="#57606a">'
        f"{first:%Y-%m-%d %H:%M:%S} UTC</text>"
        f'<text x="{right}" y="{y + 18}" font-size="11" fill="#57606a" text-anchor="end">'
        f"+{format_duration(span)}</text>"
    )


def _text(value: str) -> str:
    return escape(_NOT_XML.sub("", value), quote=False)


def _attr(value: str) -> str:
    return escape(_NOT_XML.sub("", value), quote=True)
