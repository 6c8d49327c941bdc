"""How the dashboard's pages are rendered: the Jinja2 environment and its filters.

Autoescaping is on for every template, so a value that reaches a page is escaped unless it is
explicitly marked safe; the only such values are the SVG built here (budget bars) and in
`timeline.py` (the phase timeline), both of which escape what they embed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from app.domain.report_markdown import duration as format_duration
from app.store import progress


def environment() -> jinja2.Environment:
    """The Jinja2 environment: package templates, autoescape everywhere, strict undefined."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("app.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        status_class=status_class,
        when=when,
        number=number,
        budget_bar=budget_bar,
        took=took,
    )
    return env


_SUCCESS = {"DONE_SUCCESS", progress.GREEN, "complete", "success"}
_FAILURE = {
    "failed",
    progress.CI_RED,
    progress.BUILDER_FAILED,
    progress.GATE_FAILED,
    progress.PUSH_FAILED,
    progress.REJECTED,
}


def status_class(value: str) -> str:
    """The CSS class of a run, phase or attempt status, or an issue severity."""
    if value in _SUCCESS:
        return "success"
    if value in _FAILURE or value.startswith("DONE_FAILED"):
        return "failed"
    if value in ("major", "minor"):
        return value
    if value in ("pending", "skipped", progress.CANCELLED):
        return ""
    return "running"


def when(value: str | None) -> str:
    """An ISO 8601 time as `YYYY-MM-DD HH:MM:SS UTC`; a dash for none."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def number(value: object) -> str:
    """An integer with thousands separators; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,.0f}"


def budget_bar(budget: Mapping[str, Any]) -> Markup:
    """A budget (`{"used", "cap", "exhausted"}`) as an SVG bar: green, amber near, red at cap."""
    used, cap = float(budget["used"]), budget["cap"]
    if cap is None:
        share, colour = 0.0, "#afb8c1"
    else:
        share = 1.0 if cap <= 0 else min(1.0, max(0.0, used / float(cap)))
        colour = "#cf222e" if budget["exhausted"] else "#bf8700" if share >= 0.8 else "#1a7f37"
    label = "no cap" if cap is None else f"{share:.0%} of the cap used"
    return Markup(
        '<svg class="budget-bar" width="100%" height="8" viewBox="0 0 100 8" '
        'preserveAspectRatio="none" role="img" aria-label="{label}">'
        '<rect width="100" height="8" rx="2" fill="#eaeef2"/>'
        '<rect width="{width:.1f}" height="8" rx="2" fill="{colour}"/></svg>'
    ).format(label=label, width=share * 100, colour=colour)


def took(attempt: Mapping[str, Any], now: datetime) -> str:
    """How long an attempt took, or has been running."""
    started = _moment(attempt["started_at"]) or now
    finished = _moment(attempt["finished_at"])
    text = format_duration(((finished or now) - started).total_seconds())
    return text if finished is not None else f"{text} so far"


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AttemptView:
    """An attempt of the read model's JSON, typed again for the timeline."""

    phase_id: str
    attempt: int
    actor: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    tokens: int
    summary: str
    commit_sha: str | None = None
    ci_result: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttemptView:
        """The view of one `attempt_json` dict."""
        started = _moment(data["started_at"])
        if started is None:  # the read model always has one: a broken invariant, not data
            raise ValueError(f"attempt {data['phase_id']}#{data['attempt']} has no start time")
        return cls(
            phase_id=str(data["phase_id"]),
            attempt=int(data["attempt"]),
            actor=str(data["actor"]),
            started_at=started,
            finished_at=_moment(data["finished_at"]),
            outcome=str(data["outcome"]),
            tokens=int(data["tokens"]),
            summary=str(data["summary"]),
            commit_sha=data.get("commit_sha"),
            ci_result=data.get("ci_result"),
        )
