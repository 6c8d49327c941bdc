"""The dashboard's template filters: the cases real runs rarely show."""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2
import pytest

from app.web.templating import AttemptView, budget_bar, environment, number, status_class, took

NOW = datetime(2025, 3, 1, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "css"),
    [
        ("DONE_SUCCESS", "success"),
        ("green", "success"),
        ("DONE_FAILED_BUDGET_EXHAUSTED", "failed"),
        ("ci_red", "failed"),
        ("gate_failed", "failed"),
        ("PHASE_EXECUTION", "running"),
        ("running", "running"),
        ("minor", "minor"),
        ("pending", ""),
        ("cancelled", ""),
    ],
)
def test_status_classes(value: str, css: str) -> None:
    assert status_class(value) == css


@pytest.mark.parametrize(
    ("budget", "width", "colour"),
    [
        ({"used": 10, "cap": 100, "exhausted": False}, "10.0", "#1a7f37"),
        ({"used": 85, "cap": 100, "exhausted": False}, "85.0", "#bf8700"),
        ({"used": 150, "cap": 100, "exhausted": True}, "100.0", "#cf222e"),
        ({"used": 5, "cap": 0, "exhausted": True}, "100.0", "#cf222e"),
        ({"used": 5, "cap": None, "exhausted": False}, "0.0", "#afb8c1"),
    ],
)
def test_budget_bars(budget: dict[str, object], width: str, colour: str) -> None:
    svg = str(budget_bar(budget))
    assert f'<rect width="{width}" height="8" rx="2" fill="{colour}"/>' in svg


def test_took_says_when_an_attempt_is_still_running() -> None:
    started = "2025-03-01T12:00:00+00:00"
    assert took({"started_at": started, "finished_at": None}, NOW) == "30s so far"
    finished = {"started_at": started, "finished_at": "2025-03-01T12:02:05+00:00"}
    assert took(finished, NOW) == "2m 05s"


def test_numbers() -> None:
    assert [number(v) for v in (1234567, 0, 2.4, True, None)] == [
        "1,234,567",
        "0",
        "2",
        "True",
        "None",
    ]


def test_attempt_view_reads_the_read_models_json() -> None:
    view = AttemptView.from_json(
        {
            "phase_id": "T1.P1",
            "attempt": 2,
            "actor": "auditor",
            "started_at": "2025-03-01T12:00:00",  # naive: read as UTC
            "finished_at": None,
            "outcome": "running",
            "tokens": 5,
            "summary": "",
            "commit_sha": None,
        }
    )
    assert view.started_at == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert view.finished_at is None


def test_every_template_loads_and_undefined_values_fail_loudly() -> None:
    env = environment()
    for name in ("runs", "run", "backlog", "budget", "login", "error"):
        env.get_template(f"{name}.html")
    with pytest.raises(jinja2.UndefinedError, match="message"):
        env.get_template("error.html").render(signed_in=False, heading="x")
