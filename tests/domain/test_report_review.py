"""Reports of a run that needs human review, and of builders that echo secrets."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.issue_record import Severity
from app.domain.report import (
    ReportView,
    annotations_for,
    promotion,
    render_check_summary,
    render_check_text,
    render_check_title,
    render_comment,
    render_pull_body,
    render_run_summary,
)
from app.domain.run_state import PhaseStatus, RunState, RunStatus
from tests.domain.test_report import (
    SNAPSHOTS,
    _done,
    attempt,
    budget_view,
    issue,
    view,
)
from tests.snapshots import assert_snapshot

# Secret-shaped values are assembled at run time so this file never holds one literally.
TOKEN = "gh" + "p_" + "Zz9" * 12
PEM = (
    "-----BEGIN RSA "
    + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEA"
    + "Qw" * 30
    + "\n-----END RSA PRIVATE KEY-----"
)
RENDERERS = {
    "check_title": render_check_title,
    "check_summary": render_check_summary,
    "check_text": render_check_text,
    "comment": render_comment,
    "pull_body": render_pull_body,
    "run_summary": render_run_summary,
}
SECURITY_WHY = "security_auth changes are not pushed without a review (auto_apply off)"
TESTS_WHY = "the gate found test_deleted in tests/test_config.py"


def review_state() -> RunState:
    """Every phase green, p2 pushed without the review it needed (no auditor configured)."""
    done = _done()
    phases = tuple(
        p.evolve(needs_review=(SECURITY_WHY, TESTS_WHY)) if p.phase_id == "p2" else p
        for p in done.phases
    )
    return done.evolve(
        phases=phases, strategy=dataclasses.replace(done.strategy, auditor_backend=None)
    )


def review_view() -> ReportView:
    return view(review_state(), minutes=61)


@pytest.mark.parametrize("renderer", ["check_summary", "comment", "pull_body"])
def test_snapshot(renderer: str) -> None:
    """A run that succeeded but needs a person's review reads as the committed snapshot."""
    assert_snapshot(SNAPSHOTS, f"{renderer}_needs_review", RENDERERS[renderer](review_view()))


def test_a_phase_that_needs_review_keeps_the_run_from_promotion() -> None:
    state = review_state()
    assert state.status is RunStatus.DONE_SUCCESS
    assert promotion(_done()).eligible
    verdict = promotion(state)
    assert not verdict.eligible
    assert verdict.reasons == ("phase p2 needs human review: pushed without the review it needed",)


@pytest.mark.parametrize("renderer", sorted(set(RENDERERS) - {"check_text"}))  # text: attempts
def test_every_report_shows_the_mark(renderer: str) -> None:
    text = RENDERERS[renderer](review_view())
    assert "needs human review" in text.lower()
    if renderer in ("check_summary", "pull_body", "run_summary"):
        assert "security\\_auth changes are not pushed without a review" in text
        assert "test\\_deleted in tests/test\\_config.py" in text


def test_the_pull_request_stays_a_draft_and_says_why() -> None:
    body = render_pull_body(review_view())
    assert "### Stays a draft" in body
    assert "### Ready for review" not in body
    assert "phase p2 needs human review" in body
    comment = render_comment(review_view())
    assert "(draft)" in comment
    assert "Not eligible for promotion" in comment


def test_the_plan_table_marks_the_phase() -> None:
    summary = render_check_summary(review_view())
    (row,) = [line for line in summary.splitlines() if "`p2`" in line and line.startswith("|")]
    assert row.startswith("| ✅ 🙋 |")


# --- redaction -------------------------------------------------------------------------------


def leaky_view() -> ReportView:
    """A failed run whose builder echoed a token and a key into everything it reported."""
    base = budget_view()
    state = base.state
    phases = tuple(
        p.evolve(
            feedback=(*p.feedback, f"Attempt 3: the builder ended failed: used {TOKEN}\n{PEM}"),
            failure_reason=f"gave up with {TOKEN}",
            needs_review=(f"reviewer note {TOKEN}",),
        )
        if p.status is PhaseStatus.FAILED
        else p
        for p in state.phases
    )
    state = state.evolve(phases=phases, terminal_reason=f"The builder said {TOKEN} and stopped.")
    leak = issue(
        f"builder:leak:{TOKEN}",
        "major",
        "p3",
        "builder",
        category="security",
        path="src/widgets/cli.py",
        line=4,
        message=f"found a token {TOKEN} and a key {PEM}",
    )
    marks = tuple(sorted((*state.issues, (leak.issue_key, Severity.MAJOR))))
    state = state.evolve(issues=marks)
    summary = f"Done. Token: {TOKEN}; password = 'correct horse battery'; key:\n{PEM}"
    attempts = (*base.attempts, attempt("p3", 4, "ci_red", 3, 10, summary))
    return dataclasses.replace(base, state=state, issues=(*base.issues, leak), attempts=attempts)


@pytest.mark.parametrize("renderer", list(RENDERERS))
def test_no_report_publishes_a_secret(renderer: str) -> None:
    text = RENDERERS[renderer](leaky_view())
    assert TOKEN not in text
    assert TOKEN[:12] not in text  # not even cut short
    assert "MIIEpAIBAAKCAQEA" not in text
    assert "correct horse battery" not in text


def test_the_redacted_forms_are_shown_instead() -> None:
    text = render_run_summary(leaky_view())
    assert "ghp\\_\\*\\*\\*\\* (40 chars)" in text
    assert "PRIVATE KEY----- (redacted)" in text


def test_annotations_never_hold_a_secret() -> None:
    notes = annotations_for(leaky_view().issues)
    assert notes
    for note in notes:
        assert TOKEN not in note.message + (note.title or "")
        assert "MIIEpAIBAAKCAQEA" not in note.message


@settings(max_examples=200, deadline=None)
@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    renderer=st.sampled_from(sorted(RENDERERS)),
)
def test_a_token_anywhere_in_a_summary_is_never_published(
    before: str, after: str, renderer: str
) -> None:
    base = view(_done(), minutes=5)
    row = attempt("p1", 1, "green", 1, 10, f"{before} {TOKEN} {after}")
    text = RENDERERS[renderer](dataclasses.replace(base, attempts=(row,)))
    assert TOKEN not in text
