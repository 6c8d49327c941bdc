"""The reports a maintainer reads: snapshot tests of realistic runs, and properties for any input.

Snapshots are committed under tests/domain/snapshots/; `UPDATE_SNAPSHOTS=1` rewrites them (then
read the diff as a maintainer would). The properties check every renderer's size limit, that it
never raises, and that untrusted text cannot break tables, inject HTML or start blocks.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from app.domain import report_markdown as md
from app.domain.backlog import AgingRules, Backlog, BacklogEntry
from app.domain.issue_record import Severity
from app.domain.learned_rules import suggest_rules
from app.domain.report import (
    ReportView,
    annotations_for,
    render_check_summary,
    render_check_text,
    render_check_title,
    render_comment,
    render_pull_body,
    render_run_summary,
    render_summary,
    run_marker,
    web_root,
)
from app.domain.report_backlog import backlog_marker, render_backlog_issue
from app.domain.run_state import (
    Awaiting,
    AwaitKind,
    PhaseProgress,
    PhaseStatus,
    RunState,
    RunStatus,
    TierProgress,
    TierStatus,
)
from app.domain.strategy import (
    CISettings,
    GateSettings,
    PhaseStrategy,
    RunBudget,
    Strategy,
    TierStrategy,
)
from app.domain.taxonomy import (
    AuditorProfile,
    BuilderMode,
    CIProfile,
    Complexity,
    RunScope,
    SafetyProfile,
    TaskCategory,
)
from app.store.progress import AttemptRow, IssueRow
from tests.snapshots import assert_snapshot as snapshot

SNAPSHOTS = Path(__file__).parent / "snapshots"
REPO = "octo/widgets"
NOW_ISO = "2024-05-03T08:00:00+00:00"
RUN_ID = "octo-widgets-7-2"
BRANCH = "autopack/issue-7-run-2"
STARTED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
HOSTILE = (
    "Fix | pipes\n# INJECTED heading <img src=x onerror=alert(1)> @octocat #1 **bold** "
    "[click](https://evil.example) $\\color{red}{x}$ `tick` &amp; \\| \u202eevil"
)


# --- realistic runs ----------------------------------------------------------------------------


def phase(
    phase_id: str,
    tier_id: str,
    title: str,
    category: TaskCategory = TaskCategory.FEATURE,
    complexity: Complexity = Complexity.MEDIUM,
    mode: BuilderMode = BuilderMode.SCAFFOLDING_HEAVY,
    ci: CIProfile = CIProfile.NORMAL,
) -> PhaseStrategy:
    """One phase of a plan, with the compiler's usual caps."""
    return PhaseStrategy(
        phase_id=phase_id,
        tier_id=tier_id,
        title=title,
        description="",
        task_category=category,
        complexity=complexity,
        builder_mode=mode,
        ci_profile=ci,
        auditor_profile=AuditorProfile.ORCHESTRATOR_REVIEW,
        max_builder_attempts=3,
        max_auditor_attempts=1,
        incident_token_cap=400_000,
        wall_seconds=1800,
        auto_apply=True,
        gate=GateSettings(max_files=30, max_lines=3000),
    )


def widgets_strategy(**changes: object) -> Strategy:
    """A two-tier plan: a parser, then the CLI that uses it."""
    phases = (
        phase("p1", "t1", "Add the config parser", complexity=Complexity.LOW),
        phase("p2", "t1", "Validate config values", category=TaskCategory.BUGFIX),
        phase("p3", "t2", "Wire the parser into the CLI", mode=BuilderMode.REFACTOR_HEAVY),
        phase("p4", "t2", "Document the new options", TaskCategory.DOCS, Complexity.LOW),
    )
    strategy = Strategy(
        run_id=RUN_ID,
        repository=REPO,
        issue_number=7,
        branch=BRANCH,
        run_scope=RunScope.MULTI_TIER,
        safety_profile=SafetyProfile.NORMAL,
        builder_profile="default",
        auditor_backend="auditor",
        budget=RunBudget(token_cap=5_000_000),
        ci=CISettings(),
        tiers=(
            TierStrategy("t1", "Parser", ("p1", "p2"), 2_400_000, 4, 4, None),
            TierStrategy("t2", "CLI", ("p3", "p4"), 2_400_000, 4, 4, None),
        ),
        phases=phases,
    )
    return dataclasses.replace(strategy, **changes)


def progress(
    phase_id: str, tier_id: str, status: PhaseStatus = PhaseStatus.PENDING, **changes: object
) -> PhaseProgress:
    """One phase's progress."""
    return PhaseProgress(phase_id, tier_id, status).evolve(**changes)


def issue(
    key: str, severity: str, phase_id: str, source: str = "gate", **changes: object
) -> IssueRow:
    """An issue row as the driver writes it."""
    row = IssueRow(
        run_id=RUN_ID,
        issue_key=key,
        severity=severity,
        category=key.split(":", 1)[0],
        phase_id=phase_id,
        tier_id="t1" if phase_id in ("p1", "p2") else "t2",
        source=source,
        path=None,
        line=None,
        commit_sha=None,
        message="",
    )
    return dataclasses.replace(row, **changes)


def attempt(
    phase_id: str,
    number: int,
    outcome: str,
    minutes: float | None,
    tokens: int,
    summary: str,
    **changes: object,
) -> AttemptRow:
    """An attempt row; `minutes` None while it runs."""
    started = STARTED + timedelta(minutes=10 * number)
    finished = None if minutes is None else started + timedelta(minutes=minutes)
    row = AttemptRow(
        run_id=RUN_ID,
        phase_id=phase_id,
        attempt=number,
        actor="builder",
        started_at=started,
        finished_at=finished,
        outcome=outcome,
        tokens=tokens,
        commit_sha=None,
        ci_result=None,
        summary=summary,
    )
    return dataclasses.replace(row, **changes)


SHA1 = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
SHA2 = "b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1"
SHA3 = "c3c3c3c3d4d4d4d4e5e5e5e5f6f6f6f6a7a7a7a7"
LINT = issue(
    "gate:style:long-line:src/widgets/config.py",
    "minor",
    "p1",
    category="style",
    path="src/widgets/config.py",
    line=88,
    commit_sha=SHA1,
    message="Line 88 is 131 characters long (limit 100).",
)
FLAKE = issue(
    "ci:flaky:tests (3.11)", "minor", "p2", "ci", category="flaky", message="Passed on re-run."
)


def view(state: RunState, *, minutes: float = 42, **changes: object) -> ReportView:
    """A report view of the widgets run."""
    base = ReportView(
        state=state,
        repository=REPO,
        issue_number=7,
        run_number=2,
        title="Support a config file",
        branch=BRANCH,
        html_url="https://github.com",
        started_at=STARTED.timestamp(),
        now=STARTED.timestamp() + minutes * 60,
        pull_number=12,
        check_run_url="https://github.com/octo/widgets/runs/555",
        artefacts_path=f".autonomous_runs/{RUN_ID}/",
    )
    return dataclasses.replace(base, **changes)


def running_view() -> ReportView:
    """Tier 1 half done: p2's second attempt waits for CI after a red first one."""
    state = RunState(
        run_id=RUN_ID,
        status=RunStatus.CI_RUNNING,
        strategy=widgets_strategy(),
        phase_index=1,
        phases=(
            progress(
                "p1",
                "t1",
                PhaseStatus.GREEN,
                builder_attempts=1,
                tokens=180_000,
                ci_runs=1,
                last_commit=SHA1,
                issues=((LINT.issue_key, Severity.MINOR),),
            ),
            progress(
                "p2",
                "t1",
                PhaseStatus.RUNNING,
                builder_attempts=2,
                tokens=410_000,
                ci_runs=1,
                last_commit=SHA2,
                failed_checks=("tests (3.11)",),
            ),
            progress("p3", "t2"),
            progress("p4", "t2"),
        ),
        tiers=(
            TierProgress("t1", TierStatus.RUNNING, tokens=590_000, ci_runs=2),
            TierProgress("t2"),
        ),
        tokens=590_000,
        head_sha=SHA2,
        awaiting=Awaiting(AwaitKind.CI, "p2", 2, sha=SHA3),
        issues=((LINT.issue_key, Severity.MINOR),),
    )
    attempts = (
        attempt(
            "p1", 1, "green", 14, 180_000, "Added ConfigParser with TOML support.", commit_sha=SHA1
        ),
        attempt(
            "p2",
            2,
            "ci_red",
            11,
            230_000,
            "failed: tests (3.11)",
            commit_sha=SHA2,
            ci_result="red",
        ),
        attempt("p2", 3, "running", None, 180_000, "", commit_sha=SHA3),
    )
    return view(state, issues=(LINT,), attempts=attempts, minutes=47)


def _done(*, minors: int = 1, remaining: tuple[str, ...] = ()) -> RunState:
    """Every phase green; `minors` distinct minor issues in tier 2."""
    keys = tuple((f"gate:docs:typo:docs/options-{n}.md", Severity.MINOR) for n in range(minors))
    strategy = widgets_strategy(
        remaining_tiers=remaining,
        plan_warnings=("Phase p4 has no acceptance criteria; the builder guesses.",)
        if remaining
        else (),
    )
    phases = tuple(
        progress(
            p.phase_id,
            p.tier_id,
            PhaseStatus.GREEN,
            builder_attempts=1,
            tokens=300_000,
            ci_runs=1,
            last_commit=SHA1,
            issues=keys if p.phase_id == "p4" else (),
        )
        for p in strategy.phases
    )
    return RunState(
        run_id=RUN_ID,
        status=RunStatus.DONE_SUCCESS,
        strategy=strategy,
        phases=phases,
        tiers=(
            TierProgress("t1", TierStatus.COMPLETE, tokens=600_000, ci_runs=2),
            TierProgress(
                "t2",
                TierStatus.COMPLETE,
                tokens=600_000,
                ci_runs=2,
                minor_cap_hit=minors > 4,
            ),
        ),
        tokens=1_200_000,
        head_sha=SHA1,
        awaiting=None,
        issues=keys,
        terminal_reason="All 4 phases are green.",
    )


def success_view() -> ReportView:
    """A clean success: eligible for promotion."""
    state = _done()
    row = issue(
        state.issues[0][0],
        "minor",
        "p4",
        category="docs",
        path="docs/options-0.md",
        line=3,
        commit_sha=SHA1,
        message="'recieve' is misspelt.",
    )
    return view(state, issues=(row,), minutes=95)


def not_clean_view() -> ReportView:
    """Success, but tier t2 has more minor issues than it tolerates: the PR stays a draft."""
    return view(_done(minors=6, remaining=("t3", "t4")), minutes=80)


def budget_view() -> ReportView:
    """The token cap ran out in p3 after an escalation; the incident pack is on the branch."""
    aged = "gate:style:bare-except:src/widgets/cli.py"
    major = "ci:failed:tests (3.12)"
    strategy = widgets_strategy(
        budget=RunBudget(token_cap=2_000_000),
        effective_severity={aged: Severity.MAJOR},
        plan_warnings=("The plan names no tests for phase p3.",),
        remaining_tiers=("t3",),
    )
    marks = ((aged, Severity.MAJOR), (major, Severity.MAJOR), (FLAKE.issue_key, Severity.MINOR))
    state = RunState(
        run_id=RUN_ID,
        status=RunStatus.DONE_FAILED_BUDGET_EXHAUSTED,
        strategy=strategy,
        phases=(
            progress("p1", "t1", PhaseStatus.GREEN, builder_attempts=1, tokens=300_000, ci_runs=1),
            progress(
                "p2",
                "t1",
                PhaseStatus.GREEN,
                builder_attempts=1,
                tokens=350_000,
                ci_runs=2,
                issues=((FLAKE.issue_key, Severity.MINOR),),
            ),
            progress(
                "p3",
                "t2",
                PhaseStatus.FAILED,
                builder_attempts=3,
                auditor_attempts=1,
                tokens=1_420_000,
                ci_runs=3,
                failed_checks=("tests (3.12)", "lint"),
                issues=((aged, Severity.MAJOR), (major, Severity.MAJOR)),
                feedback=(
                    "CI red on c3c3c3c: tests (3.12) failed.\n"
                    "FAILED tests/test_cli.py::test_config_flag - SystemExit: 2",
                    "Auditor: the CLI still parses --config before the subcommand; "
                    "move it to the root parser.",
                ),
                failure_reason="The run token cap of 2,000,000 was reached.",
            ),
            progress("p4", "t2", PhaseStatus.SKIPPED),
        ),
        tiers=(
            TierProgress("t1", TierStatus.COMPLETE, tokens=650_000, ci_runs=3),
            TierProgress("t2", TierStatus.FAILED, tokens=1_420_000, ci_runs=3),
        ),
        tokens=2_070_000,
        head_sha=SHA3,
        awaiting=None,
        issues=tuple(sorted(marks)),
        terminal_reason="The run token cap of 2,000,000 was reached in phase p3.",
    )
    rows = (
        issue(
            aged,
            "minor",
            "p3",
            category="style",
            path="src/widgets/cli.py",
            line=41,
            commit_sha=SHA3,
            message="Bare `except:` swallows KeyboardInterrupt.",
        ),
        issue(major, "major", "p3", "ci", category="ci", commit_sha=SHA3, message="2 failed"),
        FLAKE,
    )
    attempts = (
        attempt("p1", 1, "green", 12, 300_000, "Added ConfigParser.", ci_result="green"),
        attempt("p2", 2, "green", 20, 350_000, "Validated ranges.", ci_result="green"),
        attempt("p3", 3, "ci_red", 15, 400_000, "failed: tests (3.12)", ci_result="red"),
        attempt("p3", 4, "gate_failed", 9, 380_000, "Touched .github/workflows/ci.yml."),
        attempt("p3", 5, "ci_red", 14, 390_000, "failed: tests (3.12), lint", ci_result="red"),
        attempt(
            "p3",
            6,
            "cancelled",
            6,
            250_000,
            "",
            actor="auditor",
            commit_sha=SHA3,
        ),
    )
    return view(state, issues=rows, attempts=attempts, minutes=131, pull_number=12)


def hostile_view() -> ReportView:
    """Titles, keys, paths and reasons that try to break out; artefacts kept off the branch."""
    strategy = widgets_strategy(
        commit_artefacts=False,
        tiers=(
            TierStrategy("t1", HOSTILE, ("p1", "p2"), 2_400_000, 4, 4, None),
            TierStrategy("t2", "CLI", ("p3", "p4"), 2_400_000, 4, 4, None),
        ),
        phases=tuple(
            dataclasses.replace(p, title=HOSTILE) if p.phase_id == "p1" else p
            for p in widgets_strategy().phases
        ),
        plan_warnings=(HOSTILE,),
    )
    key = "builder:`odd`|key <b>"
    state = RunState(
        run_id=RUN_ID,
        status=RunStatus.DONE_FAILED_ENVIRONMENT,
        strategy=strategy,
        phases=(
            progress(
                "p1",
                "t1",
                PhaseStatus.FAILED,
                builder_attempts=1,
                failure_reason=HOSTILE,
                issues=((key, Severity.MAJOR),),
                feedback=("```\nclosing fence ``` and <script>x</script>\n````",),
            ),
            progress("p2", "t1", PhaseStatus.SKIPPED),
            progress("p3", "t2", PhaseStatus.SKIPPED),
            progress("p4", "t2", PhaseStatus.SKIPPED),
        ),
        tiers=(TierProgress("t1", TierStatus.FAILED), TierProgress("t2", TierStatus.SKIPPED)),
        awaiting=None,
        issues=((key, Severity.MAJOR),),
        terminal_reason=HOSTILE,
    )
    row = issue(
        key,
        "major",
        "p1",
        "builder",
        path="src/we ird (1)|x.py",
        line=5,
        message=HOSTILE,
    )
    return view(state, title=HOSTILE, issues=(row,), pull_number=None, check_run_url=None)


def bootstrap_view() -> ReportView:
    """Just labelled: no strategy yet."""
    return view(RunState(RUN_ID), minutes=0.2, pull_number=None)


def backlog() -> Backlog:
    """A repository backlog: an aged minor, a fresh major, minors at various ages."""

    def entry(
        key: str, severity: Severity, runs: int, tiers: int, seen: int, **kw: object
    ) -> BacklogEntry:
        values: dict[str, object] = {
            "issue_key": key,
            "category": key.split(":")[1],
            "base_severity": severity,
            "age_in_runs": runs,
            "age_in_tiers": tiers,
            "occurrence_count": seen,
            "first_seen_run": f"octo-widgets-3-{max(1, 5 - runs)}",
            "last_seen_run": "octo-widgets-7-2",
            "last_seen_at": "2024-05-01T12:00:00+00:00",
        }
        values.update(kw)
        return BacklogEntry(**values)  # type: ignore[arg-type]

    return Backlog(
        (
            entry("gate:style:bare-except:src/widgets/cli.py", Severity.MINOR, 4, 5, 9),
            entry("ci:failed:tests (3.12)", Severity.MAJOR, 1, 1, 2),
            entry("ci:flaky:tests (3.11)", Severity.MINOR, 2, 2, 3),
            entry(
                "gate:docs:typo:docs/options-0.md",
                Severity.MINOR,
                1,
                1,
                1,
                last_seen_run="octo-widgets-6-1",
                last_seen_at="2024-04-24T09:30:00+00:00",
                unseen_runs=1,
            ),
        ),
        last_run="octo-widgets-7-2",
    )


# --- snapshots ---------------------------------------------------------------------------------


def assert_snapshot(name: str, rendered: str) -> None:
    """Compare with tests/domain/snapshots/<name>.md (rewritten with UPDATE_SNAPSHOTS=1)."""
    snapshot(SNAPSHOTS, name, rendered)


VIEWS = {
    "running": running_view,
    "success": success_view,
    "not_clean": not_clean_view,
    "budget": budget_view,
    "hostile": hostile_view,
    "bootstrap": bootstrap_view,
}
RENDERERS = {
    "check_summary": render_check_summary,
    "check_text": render_check_text,
    "comment": render_comment,
    "pull_body": render_pull_body,
    "run_summary": render_run_summary,
}
SNAPSHOT_CASES = [
    ("check_summary", "running"),
    ("check_summary", "success"),
    ("check_summary", "not_clean"),
    ("check_summary", "budget"),
    ("check_summary", "hostile"),
    ("check_summary", "bootstrap"),
    ("check_text", "running"),
    ("check_text", "budget"),
    ("comment", "running"),
    ("comment", "success"),
    ("comment", "budget"),
    ("comment", "bootstrap"),
    ("pull_body", "running"),
    ("pull_body", "success"),
    ("pull_body", "not_clean"),
    ("pull_body", "budget"),
    ("run_summary", "budget"),
    ("run_summary", "hostile"),
]


@pytest.mark.parametrize(("renderer", "case"), SNAPSHOT_CASES)
def test_snapshot(renderer: str, case: str) -> None:
    """Each renderer on each kind of run reads as the committed snapshot."""
    assert_snapshot(f"{renderer}_{case}", RENDERERS[renderer](VIEWS[case]()))


def test_snapshot_backlog() -> None:
    """The backlog issue: aged minors among the majors, minors with when they turn major."""
    rendered = render_backlog_issue(REPO, backlog(), "2024-05-03T08:00:00+00:00")
    assert_snapshot("backlog_issue", rendered)


def test_snapshot_backlog_with_its_own_thresholds_and_suggestions() -> None:
    """A repository's own thresholds decide what counts as major, and the issues that aged
    and came back get a ready-to-paste ruleset change."""
    own = dataclasses.replace(backlog(), aging=AgingRules(1, 9), last_run=RUN_ID)
    paths = {"gate:style:bare-except:src/widgets/cli.py": "src/widgets/cli.py"}
    suggestions = suggest_rules(own, RUN_ID, widgets_strategy(), paths)
    rendered = render_backlog_issue(REPO, own, "2024-05-03T08:00:00+00:00", suggestions)
    assert "a minor issue seen in more than 1 run or more than 9 tiers counts as major" in rendered
    assert "## 💡 Suggested ruleset changes (" in rendered
    assert "  - /src/widgets/cli.py\n" in rendered
    assert_snapshot("backlog_issue_suggestions", rendered)


def test_snapshot_backlog_empty() -> None:
    """An empty backlog says so, and still carries its marker."""
    rendered = render_backlog_issue(REPO, Backlog(), "2024-05-03T08:00:00+00:00")
    assert_snapshot("backlog_issue_empty", rendered)


# --- facts the snapshots rely on ----------------------------------------------------------------


def test_comment_carries_the_marker_comments_py_looks_for() -> None:
    """app/github/comments.py finds the run's comment by this exact marker."""
    from app.github.comments import run_marker as github_marker

    rendered = render_comment(running_view())
    assert rendered.startswith(github_marker(RUN_ID) + "\n")
    assert run_marker(RUN_ID) == github_marker(RUN_ID)


def test_pull_body_ends_with_refs_even_when_cut() -> None:
    """`Refs #N` survives truncation, and the cut points at RUN_SUMMARY.md."""
    huge = giant_view()
    body = render_pull_body(huge)
    assert len(body) <= md.PULL_BODY_LIMIT
    assert body.endswith("\n\nRefs #7\n")
    assert "RUN_SUMMARY.md" in body.rsplit("Cut to fit", 1)[1]


def giant_view() -> ReportView:
    """600 phases with long titles, 2,000 issues and 3,000 attempts: far over every limit."""
    long_title = "Rename the widget registry entries " * 4
    phases = tuple(
        phase(f"p{n}", "t1", f"{long_title} {n}", mode=BuilderMode.REFACTOR_HEAVY)
        for n in range(600)
    )
    strategy = widgets_strategy(
        phases=phases,
        tiers=(TierStrategy("t1", "All", tuple(p.phase_id for p in phases), 10**7, 1200, 10, 0),),
    )
    rows = tuple(
        issue(f"gate:x:{n}", "major" if n % 3 else "minor", f"p{n % 600}", message="m" * 400)
        for n in range(2000)
    )
    attempts = tuple(
        attempt(f"p{n % 600}", n, "ci_red", 3, 1000, "s" * 300, ci_result="red")
        for n in range(3000)
    )
    state = RunState(
        run_id=RUN_ID,
        status=RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW,
        strategy=strategy,
        phases=tuple(
            progress(
                p.phase_id,
                "t1",
                PhaseStatus.FAILED,
                failure_reason="x" * 2000,
                feedback=("y" * 1000,) * 8,
            )
            for p in phases
        ),
        tiers=(TierProgress("t1", TierStatus.FAILED),),
        awaiting=None,
        issues=tuple((r.issue_key, Severity(r.severity)) for r in rows),
        terminal_reason="The auditor gave up on every phase.",
    )
    return view(state, issues=rows, attempts=attempts)


@pytest.mark.parametrize(
    ("renderer", "limit"),
    [
        (render_check_summary, md.CHECK_SUMMARY_LIMIT),
        (render_check_text, md.CHECK_TEXT_LIMIT),
        (render_comment, md.COMMENT_LIMIT),
        (render_pull_body, md.PULL_BODY_LIMIT),
    ],
)
def test_giant_runs_are_cut_with_a_pointer_to_the_full_report(
    renderer: Callable[[ReportView], str], limit: int
) -> None:
    """Over the limit: cut at a line, within the limit, ending with where the rest is."""
    rendered = renderer(giant_view())
    assert len(rendered) <= limit
    if renderer is not render_comment:  # the comment is short by design
        assert "**Cut to fit GitHub's size limit.**" in rendered
        assert f".autonomous_runs/{RUN_ID}/RUN_SUMMARY.md" in rendered
        assert_tables_consistent(rendered)
    assert_fences_closed(rendered)


def test_run_summary_is_complete() -> None:
    """RUN_SUMMARY.md is never cut: every issue and every attempt is in it."""
    summary = render_run_summary(giant_view())
    assert len(summary) > md.CHECK_SUMMARY_LIMIT
    assert "Cut to fit" not in summary
    assert "gate:x:1999" in summary
    assert summary.count("| ❌ CI red |") == 3000


def test_render_summary_keeps_its_old_signature() -> None:
    """The artefact writer's call still works, from the state alone."""
    state = budget_view().state
    summary = render_summary(state, title="Support a config file", branch=BRANCH, pull_url="#12")
    assert summary.startswith("# Autopack run `octo-widgets-7-2`: Support a config file\n")
    assert "[#12](https://github.com/octo/widgets/pull/12)" in summary
    assert "DONE_FAILED_BUDGET_EXHAUSTED" in summary


def test_links_follow_github_enterprise_html_url() -> None:
    """Every link is built from html_url, so GitHub Enterprise links point at the right host."""
    rendered = render_check_summary(
        dataclasses.replace(budget_view(), html_url="https://ghe.example.com/")
    )
    targets = re.findall(r"\]\(([^)]+)\)", rendered)
    assert targets
    assert all(t.startswith("https://ghe.example.com/octo/widgets/") for t in targets), targets
    assert (
        "https://ghe.example.com/octo/widgets/blob/" + SHA3 + "/src/widgets/cli.py#L41" in rendered
    )


def test_evidence_links_are_percent_encoded() -> None:
    """A path with spaces or parentheses cannot end the link early."""
    rendered = render_check_summary(hostile_view())
    assert "blob/autopack/issue-7-run-2/src/we%20ird%20%281%29%7Cx.py#L5)" in rendered


def test_check_title_says_state_and_progress() -> None:
    """The one line GitHub shows beside the check's name."""
    assert (
        render_check_title(budget_view())
        == "❌ Run 2 failed: a budget ran out · 2 of 4 phases green"
    )
    assert render_check_title(bootstrap_view()) == "⏳ Run 2 planning"
    assert len(render_check_title(giant_view())) <= 255


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://api.github.com/", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com"),
    ],
)
def test_web_root_from_the_api_url(api: str, web: str) -> None:
    """Links are built from the web root that belongs to GITHUB_API_URL."""
    assert web_root(api) == web


def test_the_renderers_stay_pure() -> None:
    """The domain's report modules import neither the database, HTTP nor GitHub layers."""
    probe = (
        "import sys, app.domain.report, app.domain.report_backlog\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'aiohttp', 'gidgethub'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


# --- annotations --------------------------------------------------------------------------------


def test_annotations_one_per_issue_with_a_path() -> None:
    """Major issues fail (aged ones too), minor ones warn; no file, no annotation; majors first."""
    view_ = budget_view()
    rows = (*view_.issues, LINT, issue("gate:x", "major", "p1", path="../etc/passwd", line=1))
    assert view_.state.strategy is not None
    annotations = annotations_for(rows, effective=view_.state.strategy.effective_severity)
    assert [(a.path, a.start_line, a.level) for a in annotations] == [
        ("src/widgets/cli.py", 41, "failure"),
        ("src/widgets/config.py", 88, "warning"),
    ]
    first = annotations[0]
    assert first.title == "Major issue gate:style:bare-except:src/widgets/cli.py"
    assert first.message.startswith("Bare `except:` swallows KeyboardInterrupt.")
    plain = annotations_for(rows)
    assert [a.level for a in plain] == ["warning", "warning"]


def test_annotations_match_the_github_annotation_type() -> None:
    """The edge builds app.github.checks.Annotation from each, which validates the fields."""
    from app.github.checks import Annotation

    rows = [
        issue(f"k{n}", "major" if n % 2 else "minor", "p1", path=f"a/{n}.py", line=n - 3)
        for n in range(120)
    ]
    annotations = annotations_for(rows, limit=100)
    built = [Annotation(**dataclasses.asdict(a)) for a in annotations]
    assert len(built) == 100
    assert [a.level for a in built[:60]] == ["failure"] * 60
    assert all(a.start_line >= 1 and a.end_line == a.start_line for a in built)


# --- properties for any input -------------------------------------------------------------------

# Text an attacker (or a confused model) might put in a title, key, path, message or reason.
untrusted = st.one_of(
    st.text(max_size=300),
    st.sampled_from([HOSTILE, "|", "\\|", "`", "```", "<!--", "-->", "\n\n# x", "@a", "\r\n"]),
    st.lists(st.sampled_from(["|", "\\", "`", "<", ">", "&", "\n", "@x", "#1", "$", "a"])).map(
        "".join
    ),
)
ids = st.text(alphabet="abcdefghij0123456789-_.|` \\<", min_size=1, max_size=20)


@st.composite
def report_views(draw: st.DrawFn) -> ReportView:
    """Any consistent run, with untrusted text everywhere people or models write it."""
    tier_count = draw(st.integers(1, 3))
    phases: list[PhaseStrategy] = []
    tiers: list[TierStrategy] = []
    for t in range(tier_count):
        tier_id = f"t{t}" + draw(st.sampled_from(["", "|x", "`"]))
        ids_ = [f"p{len(phases) + n}" for n in range(draw(st.integers(1, 8)))]
        tiers.append(
            TierStrategy(
                tier_id,
                draw(untrusted),
                tuple(ids_),
                draw(st.integers(0, 10**7)),
                draw(st.integers(0, 20)),
                draw(st.integers(0, 10)),
                draw(st.none() | st.integers(0, 3)),
            )
        )
        phases += [dataclasses.replace(phase(p, tier_id, draw(untrusted))) for p in ids_]
    strategy = widgets_strategy(
        tiers=tuple(tiers),
        phases=tuple(phases),
        budget=RunBudget(token_cap=draw(st.integers(0, 10**7))),
        plan_warnings=tuple(draw(st.lists(untrusted, max_size=40))),
        remaining_tiers=tuple(draw(st.lists(ids, max_size=5))),
        commit_artefacts=draw(st.booleans()),
    )
    rows = draw(
        st.lists(
            st.builds(
                issue,
                st.text(min_size=1, max_size=120),
                st.sampled_from(["minor", "major"]),
                st.sampled_from([p.phase_id for p in phases]),
                st.sampled_from(["gate", "ci", "builder", "auditor"]),
                path=st.none() | untrusted,
                line=st.none() | st.integers(-5, 10**6),
                commit_sha=st.none() | st.just(SHA1),
                message=untrusted,
            ),
            max_size=120,
        )
    )
    marks = tuple(sorted({r.issue_key: Severity(r.severity) for r in rows}.items()))
    status = draw(st.sampled_from(list(RunStatus)))
    state = RunState(
        run_id=RUN_ID,
        status=status,
        strategy=strategy,
        phase_index=draw(st.integers(-1, len(phases))),
        phases=tuple(
            progress(
                p.phase_id,
                p.tier_id,
                draw(st.sampled_from(list(PhaseStatus))),
                builder_attempts=draw(st.integers(0, 5)),
                auditor_attempts=draw(st.integers(0, 2)),
                tokens=draw(st.integers(0, 10**7)),
                ci_runs=draw(st.integers(0, 9)),
                failed_checks=tuple(draw(st.lists(untrusted, max_size=4))),
                feedback=tuple(draw(st.lists(untrusted, max_size=3))),
                failure_reason=draw(untrusted),
                issues=tuple(m for m in marks if draw(st.booleans())),
            )
            for p in phases
        ),
        tiers=tuple(
            TierProgress(t.tier_id, draw(st.sampled_from(list(TierStatus)))) for t in tiers
        ),
        tokens=draw(st.integers(0, 2 * 10**7)),
        awaiting=draw(
            st.none()
            | st.builds(
                Awaiting,
                st.sampled_from(list(AwaitKind)),
                st.sampled_from([p.phase_id for p in phases]),
                st.integers(0, 9),
                sha=st.text(max_size=40),
                rerun=st.integers(0, 2),
            )
        ),
        issues=marks,
        terminal_reason=draw(untrusted),
    )
    attempts = draw(
        st.lists(
            st.builds(
                attempt,
                st.sampled_from([p.phase_id for p in phases]),
                st.integers(1, 9),
                st.sampled_from(["running", "green", "ci_red", "gate_failed", "weird|x"]),
                st.none() | st.floats(0, 10_000),
                st.integers(0, 10**7),
                untrusted,
                ci_result=st.none() | st.sampled_from(["green", "red", "no_ci", "x|y"]),
                commit_sha=st.none() | st.just(SHA2),
            ),
            max_size=60,
        )
    )
    started = draw(st.none() | st.floats(0, 2e9))
    return view(
        state,
        title=draw(untrusted),
        branch=draw(st.sampled_from([BRANCH, "autopack/issue-7-run-2 (x)|`y`"])),
        started_at=started,
        now=None if started is None else started + draw(st.floats(0, 10**6)),
        pull_number=draw(st.none() | st.integers(1, 10**6)),
        issues=tuple(rows),
        attempts=tuple(attempts),
    )


LIMITS = {
    "check_summary": md.CHECK_SUMMARY_LIMIT,
    "check_text": md.CHECK_TEXT_LIMIT,
    "comment": md.COMMENT_LIMIT,
    "pull_body": md.PULL_BODY_LIMIT,
}
_PARSER = MarkdownIt("commonmark", {"html": True}).enable("table")
_ALLOWED_HTML = re.compile(r"^<!-- autopack:(run|backlog):[A-Za-z0-9._/-]+ -->\n?$")


def cells(line: str) -> int:
    """Cell separators in a table row, split the way GitHub (cmark-gfm) splits them."""
    count, index = 0, 0
    while index < len(line):
        if line[index] == "\\":
            index += 2
            continue
        count += line[index] == "|"
        index += 1
    return count


def assert_tables_consistent(markdown: str) -> None:
    """Every row of every table has as many cells as its header."""
    expected: int | None = None
    for line in markdown.split("\n"):
        if line.startswith("|"):
            count = cells(line)
            expected = count if expected is None else expected
            assert count == expected, line
        else:
            expected = None


def assert_fences_closed(markdown: str) -> None:
    """No code fence is left open (it would swallow the rest of the page)."""
    open_fence: str | None = None
    for line in markdown.split("\n"):
        if open_fence is None and line.startswith("```"):
            open_fence = line[: len(line) - len(line.lstrip("`"))]
        elif open_fence is not None and line.strip() == open_fence:
            open_fence = None
    assert open_fence is None


# How every heading Autopack writes starts; one starting otherwise was made by untrusted text.
HEADINGS = (
    "Autopack run",
    "✅",
    "❌",
    "⛔",
    "🙋",
    "⚠️",
    "🚫",
    "⏳",
    "🔨",
    "🔍",
    "🧪",
    "📸",
    "🔴 Major",
    "🟡 Minor",
    "💡 Suggested ruleset changes",
    "Promotion",
    "Plan",
    "Tiers",
    "Budget",
    "Left for the next run",
    "Issues",
    "Attempts",
    "Last feedback",
    "Still running",
    "Ready for review",
    "Stays a draft",
    "p",  # a phase label: its id in a code span, then its title
)


def assert_safe(markdown: str, refs: tuple[int | None, ...] = (7,)) -> None:
    """No HTML but our markers, no heading, link or mention made by untrusted text; tables and
    fences intact."""
    tokens = _PARSER.parse(markdown)
    for n, token in enumerate(tokens):
        if token.type == "html_block":
            assert _ALLOWED_HTML.match(token.content), token.content
        if token.type == "heading_open":
            assert tokens[n + 1].content.lstrip("`").startswith(HEADINGS), tokens[n + 1].content
        for child in token.children or ():
            assert child.type != "html_inline", child.content
            if child.type == "link_open":
                assert str(child.attrGet("href")).startswith("https://github.com/")
            if child.type == "text":  # mentions and references happen in text, not in code
                ours = {f"#{n}" for n in refs if n is not None}
                found = re.findall(r"(?:^|\W)([@#][A-Za-z0-9]+)", child.content)
                assert set(found) <= ours, child.content
    assert_tables_consistent(markdown)
    assert_fences_closed(markdown)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(report_views())
def test_every_renderer_fits_its_limit_and_stays_safe(view_: ReportView) -> None:
    """Any run: within the limits, no exception, and untrusted text stays text."""
    for name, limit in LIMITS.items():
        rendered = RENDERERS[name](view_)
        assert len(rendered) <= limit, name
        assert_safe(rendered, (7, view_.pull_number))
    assert_safe(render_run_summary(view_), (7, view_.pull_number))
    assert all(a.level in ("warning", "failure") for a in annotations_for(view_.issues))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.builds(
            BacklogEntry,
            issue_key=st.text(min_size=1, max_size=150),
            category=untrusted.filter(bool),
            base_severity=st.sampled_from(list(Severity)),
            age_in_runs=st.integers(0, 50),
            age_in_tiers=st.integers(0, 50),
            occurrence_count=st.integers(0, 10**6),
            first_seen_run=ids,
            last_seen_run=ids,
            last_seen_at=st.datetimes().map(lambda d: d.isoformat()),
            unseen_runs=st.integers(0, 3),
        ),
        max_size=400,
        unique_by=lambda e: e.issue_key,
    ),
    st.datetimes().map(lambda d: d.isoformat()),
)
def test_backlog_issue_fits_and_stays_safe(entries: list[BacklogEntry], now_iso: str) -> None:
    """Any backlog: within the issue body limit, with its marker, untrusted text kept as text."""
    body = render_backlog_issue(REPO, Backlog(tuple(entries)), now_iso)
    assert len(body) <= md.ISSUE_BODY_LIMIT
    assert body.startswith(backlog_marker(REPO) + "\n")
    assert_safe(body)


@settings(max_examples=100, deadline=None)
@given(untrusted.filter(bool), untrusted.filter(bool))
def test_suggestions_in_the_backlog_issue_stay_safe(key: str, path: str) -> None:
    """Keys and paths from builders reach the suggestions as inert text and fenced YAML."""
    entry = BacklogEntry(key, "code_quality", Severity.MINOR, 9, 9, 9, "r1", RUN_ID, NOW_ISO)
    own = Backlog((entry,), last_run=RUN_ID)
    suggestions = suggest_rules(own, RUN_ID, widgets_strategy(), {key: path})
    assert len(suggestions) == 1
    body = render_backlog_issue(REPO, own, NOW_ISO, suggestions)
    assert_safe(body)
    assert len(body) <= md.ISSUE_BODY_LIMIT


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab |`\n<details>\n```\n</details>"), max_size=3000),
    st.integers(0, 2000),
    st.text(max_size=80),
    st.text(max_size=40),
)
def test_fit_never_exceeds_the_limit(text: str, limit: int, pointer: str, footer: str) -> None:
    """`fit` keeps any text within any limit, keeps the footer when it fits, closes fences."""
    fitted = md.fit(text, limit, pointer, footer)
    assert len(fitted) <= limit
    if len(text) + len(footer) <= limit:
        assert fitted == text + footer
    elif len(footer) < limit:
        assert fitted.endswith(footer)


@given(untrusted)
def test_text_is_one_inert_line(value: str) -> None:
    """Escaped text has no line break, no raw HTML, no mention and no unescaped pipe."""
    out = md.text(value)
    assert "\n" not in out
    assert "\r" not in out
    assert "<" not in out
    assert ">" not in out
    assert not re.search(r"@[A-Za-z0-9]", out)
    assert cells("|" + out + "|") == 2
    if out.strip():  # first in a list item, it stays a paragraph: no heading, no nested list
        types = [t.type for t in _PARSER.parse("- " + out)]
        assert types[2:5] == ["paragraph_open", "inline", "paragraph_close"], types
        assert "bullet_list_open" not in types[1:]
        assert "ordered_list_open" not in types


@given(untrusted)
def test_code_in_a_cell_keeps_the_cell(value: str) -> None:
    """A code span in a table cell never splits the cell."""
    assert cells("| " + md.code(value) + " |") == 2


def test_bar_and_numbers_read_as_the_brief_shows() -> None:
    """`▰▰▰▱▱▱▱▱▱▱ 31% · 1.6M of 5M tokens`."""
    assert f"{md.bar(1_560_000, 5_000_000)} · {md.amount(1_560_000)} of {md.amount(5_000_000)}" == (
        "▰▰▰▱▱▱▱▱▱▱ 31% · 1.6M of 5M"
    )
    assert md.bar(6, 5) == "▰▰▰▰▰▰▰▰▰▰ 120% ⚠️ over the cap"
    assert md.bar(1, 0) == "no cap"
    assert md.duration(3725) == "1h 02m"
    assert md.amount(950) == "950"
