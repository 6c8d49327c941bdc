"""Markdown a maintainer reads: the run summary for the check run, the comment and the PR.

Pure: the machine's state in, text out. Also connects the machine's issue marks to the tier
summaries and promotion rules of `issues.py`.
"""

from __future__ import annotations

from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.issues import (
    Promotion,
    RunIssueIndex,
    TierCaps,
    TierSummary,
    promotion_eligibility,
    summarise_tier,
)
from app.domain.issues import TierStatus as SummaryStatus
from app.domain.run_state import PhaseStatus, RunState, RunStatus, TierStatus

_SOURCES = {
    "gate": IssueSource.GATE,
    "ci": IssueSource.CI,
    "probe": IssueSource.PROBE,
    "builder": IssueSource.BUILDER,
    "phase": IssueSource.BUILDER,
}
_ICONS = {
    PhaseStatus.GREEN: "✅",
    PhaseStatus.FAILED: "❌",
    PhaseStatus.RUNNING: "⏳",
    PhaseStatus.PENDING: "·",
    PhaseStatus.SKIPPED: "⏭️",
}
_TIER_STATUS = {
    TierStatus.COMPLETE: SummaryStatus.COMPLETE,
    TierStatus.FAILED: SummaryStatus.FAILED,
}


def issue_index(state: RunState) -> RunIssueIndex:
    """The run's issue index built from the machine's per-phase issue marks."""
    index = RunIssueIndex()
    for number, phase in enumerate(state.phases):
        records = [
            IssueRecord(
                issue_key=key,
                severity=severity,
                category=key.split(":", 1)[0] or "issue",
                source=_SOURCES.get(key.split(":", 1)[0], IssueSource.BUILDER),
                evidence=(),
            )
            for key, severity in phase.issues
        ]
        if records:
            index = index.add(number, phase.tier_id, phase.phase_id, records)
    return index


def tier_summaries(state: RunState) -> list[TierSummary]:
    """Each tier's cleanliness, from the machine's progress and the strategy's caps."""
    strategy = state.strategy
    if strategy is None:
        return []
    index = issue_index(state)
    summaries = []
    for progress in state.tiers:
        tier = strategy.tier(progress.tier_id)
        summaries.append(
            summarise_tier(
                progress.tier_id,
                _TIER_STATUS.get(progress.status, SummaryStatus.SKIPPED),
                index,
                TierCaps(tier.minor_tolerance, tier.major_tolerance),
                token_cap_hit=progress.token_cap_hit,
                ci_cap_hit=progress.ci_cap_hit,
            )
        )
    return summaries


def promotion(state: RunState) -> Promotion:
    """Whether the run may be promoted to the default branch, with the reasons if not."""
    strategy = state.strategy
    over_budget = strategy is not None and state.tokens > strategy.budget.token_cap
    budget_failed = state.status is RunStatus.DONE_FAILED_BUDGET_EXHAUSTED or over_budget
    return promotion_eligibility(state.status.value, tier_summaries(state), budget_failed)


def status_line(state: RunState) -> str:
    """One line: the state and, when ended, why."""
    if state.status.is_terminal:
        return f"**{state.status.value}**: {state.terminal_reason}"
    return f"**{state.status.value}**"


def render_summary(state: RunState, *, title: str, branch: str, pull_url: str | None = None) -> str:
    """RUN_SUMMARY.md: status, plan table, budget use, tiers and promotion."""
    lines = [f"# Autopack run `{state.run_id}`", "", f"{title}", "", status_line(state), ""]
    strategy = state.strategy
    if strategy is None:
        return "\n".join(lines)
    lines.append(
        f"Integration branch: `{branch}`" + (f" · pull request: {pull_url}" if pull_url else "")
    )
    lines += [
        "",
        "| | tier | phase | category / complexity / mode | attempts | tokens | issues |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for progress in state.phases:
        phase = strategy.phase(progress.phase_id)
        slice_ = f"{phase.task_category} / {phase.complexity} / {phase.builder_mode}"
        lines.append(
            f"| {_ICONS.get(progress.status, '')} | {phase.tier_id} | {_cell(phase.title)} "
            f"| {slice_} | {progress.attempts} | {progress.tokens:,} | {len(progress.issues)} |"
        )
    budget = strategy.budget
    lines += [
        "",
        f"Tokens: {state.tokens:,} of {budget.token_cap:,} "
        f"({_share(state.tokens, budget.token_cap)}).",
    ]
    summaries = tier_summaries(state)
    if summaries:
        lines += ["", "| tier | status | minor | major | cleanliness |", "|---|---|---:|---:|---|"]
        lines += [
            f"| {s.tier_id} | {s.status} | {s.minor_count} | {s.major_count} | {s.cleanliness} |"
            for s in summaries
        ]
    majors = [key for key, severity in state.issues if severity is Severity.MAJOR]
    minors = [key for key, severity in state.issues if severity is Severity.MINOR]
    if majors or minors:
        lines += ["", "Issues:"]
        lines += [f"- major: `{key}`" for key in majors[:50]]
        lines += [f"- minor: `{key}`" for key in minors[:50]]
    if state.status.is_terminal:
        verdict = promotion(state)
        lines += ["", "Promotion: " + ("eligible" if verdict.eligible else "blocked")]
        lines += [f"- {reason}" for reason in verdict.reasons]
    if strategy.remaining_tiers:
        lines += ["", "Left for the next `autopack:run`: " + ", ".join(strategy.remaining_tiers)]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:120]


def _share(used: int, cap: int) -> str:
    return f"{used / cap:.0%}" if cap else "n/a"
