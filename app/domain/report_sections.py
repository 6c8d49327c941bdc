"""The building blocks of the reports: headline, outcome, plan, tiers, budget, issues, attempts.

Pure; each returns markdown lines (or a line) for a `ReportView`. Everything untrusted goes
through `report_markdown`'s escaping. The renderers in `report.py` put them together.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.domain import report_markdown as md
from app.domain.issue_record import Severity
from app.domain.issues import Cleanliness
from app.domain.report_view import (
    INCIDENT_FILE,
    REASON_CHARS,
    SUMMARY_FILE,
    ReportIssue,
    ReportView,
    phase_of,
    promotion,
    report_issues,
    tier_of,
    tier_summaries,
)
from app.domain.run_state import AwaitKind, PhaseProgress, PhaseStatus, RunStatus, TierStatus
from app.domain.strategy import PhaseStrategy

LISTED_ISSUES = 50  # issue rows in the size-limited views; RUN_SUMMARY.md lists them all
LISTED_WARNINGS = 20
TITLE_CHARS = 120
REVIEW_ICON = "🙋"
_STATE_NAME = re.compile(r"\bDONE(?:\\_[A-Z]+)+")

_ICONS = {
    PhaseStatus.GREEN: "✅",
    PhaseStatus.FAILED: "❌",
    PhaseStatus.RUNNING: "⏳",
    PhaseStatus.PENDING: "·",
    PhaseStatus.SKIPPED: "⏭️",
}
_TIER_ICONS = {
    TierStatus.COMPLETE: "✅",
    TierStatus.FAILED: "❌",
    TierStatus.RUNNING: "⏳",
    TierStatus.PENDING: "·",
    TierStatus.SKIPPED: "⏭️",
}
_HEADLINES = {
    RunStatus.PLAN_BOOTSTRAP: ("⏳", "planning"),
    RunStatus.RUN_CREATED: ("⏳", "strategy compiled"),
    RunStatus.PHASE_QUEUEING: ("⏳", "queueing phases"),
    RunStatus.PHASE_EXECUTION: ("🔨", "building"),
    RunStatus.GATE: ("🔍", "checking a change at the gate"),
    RunStatus.CI_RUNNING: ("🧪", "waiting for CI"),
    RunStatus.SNAPSHOT_CREATED: ("📸", "a phase landed"),
    RunStatus.DONE_SUCCESS: ("✅", "succeeded"),
    RunStatus.DONE_FAILED_BUDGET_EXHAUSTED: ("❌", "failed: a budget ran out"),
    RunStatus.DONE_FAILED_POLICY_VIOLATION: ("⛔", "failed: a policy was violated"),
    RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW: ("🙋", "stopped: a person needs to look"),
    RunStatus.DONE_FAILED_ENVIRONMENT: ("⚠️", "failed: something around the change broke"),
    RunStatus.DONE_FAILED_CANCELLED: ("🚫", "cancelled"),
}
# What a terminal state means, for someone who has not read the playbook.
_MEANINGS = {
    RunStatus.DONE_SUCCESS: "Every phase the plan asked for is green on the integration branch.",
    RunStatus.DONE_FAILED_BUDGET_EXHAUSTED: (
        "A run budget (tokens, phases, distinct minor issues or wall time) ran out before every "
        "phase was green. Phases already green stay on the branch."
    ),
    RunStatus.DONE_FAILED_POLICY_VIOLATION: (
        "Autopack stopped rather than go against a rule: a change broke the repository's "
        "ruleset or the governed write path, or the ruleset or plan itself is invalid."
    ),
    RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW: (
        "A tier did not end cleanly where the rules leave the next step to a person: a tier "
        "failed, or a tier of a safety-critical run ended not clean."
    ),
    RunStatus.DONE_FAILED_ENVIRONMENT: (
        "Something outside the change failed (GitHub, CI, the builder backend or the "
        "workspace); retrying may well succeed."
    ),
    RunStatus.DONE_FAILED_CANCELLED: "A maintainer cancelled the run.",
}
_OUTCOMES = {
    "running": "⏳ in progress",
    "green": "✅ green",
    "builder_failed": "❌ no usable change",
    "gate_failed": "⛔ refused by the gate",
    "ci_red": "❌ CI red",
    "push_failed": "⛔ push refused",
    "rejected": "✋ rejected in review",
    "cancelled": "🚫 ended with the run",
}
_CI_RESULTS = {
    "green": "✅ green",
    "red": "❌ red",
    "no_ci": "⚪ no CI reported",
    "timed_out": "⏱️ timed out",
}


def headline(view: ReportView) -> str:
    """The run's headline, e.g. "❌ Autopack run 2 failed: a budget ran out"."""
    icon, words = _HEADLINES.get(view.state.status, ("", view.state.status.value))
    return f"{icon} Autopack run {view.run_number} {words}"


def meta(view: ReportView, *, pull: bool = True) -> str:
    """The line under the headline: state, time, issue, branch and (if `pull`) pull request."""
    state = view.state
    parts = [f"`{state.status.value}`"]
    if view.elapsed is not None:
        verb = "took" if state.status.is_terminal else "running for"
        parts.append(f"{verb} {md.duration(view.elapsed)}")
    parts.append(md.link(f"#{view.issue_number}", view.link("issues", str(view.issue_number))))
    parts.append("branch " + md.link(md.code(view.branch, cell=False), branch_url(view)))
    if pull and view.pull_number is not None:
        parts.append("pull request " + pull_link(view))
    return " · ".join(parts)


def branch_url(view: ReportView) -> str:
    """The integration branch on GitHub."""
    return view.link("tree", view.branch)


def pull_link(view: ReportView) -> str:
    """`[#12](…/pull/12)`."""
    number = str(view.pull_number)
    return md.link(f"#{number}", view.link("pull", number))


def phase_label(view: ReportView, phase_id: str) -> str:
    """A phase as `p2` and its title."""
    strategy = view.state.strategy
    phase = phase_of(strategy, phase_id) if strategy else None
    label = md.code(phase_id, 40, cell=False)
    return f"{label} {md.text(phase.title, TITLE_CHARS)}" if phase else label


def activity(view: ReportView) -> str:
    """What the run is doing right now, in a few words."""
    state = view.state
    waiting = state.awaiting
    if state.status.is_terminal or waiting is None:
        return ""
    phase = phase_label(view, waiting.phase_id) if waiting.phase_id else ""
    number = f"attempt {waiting.attempt}"
    match waiting.kind:
        case AwaitKind.STRATEGY:
            return "compiling the plan into a strategy"
        case AwaitKind.BRANCH:
            return "creating the integration branch"
        case AwaitKind.QUEUE:
            return "queueing the phases"
        case AwaitKind.BUILDER:
            return f"the builder works on {phase} ({number})"
        case AwaitKind.GATE:
            return f"the gate checks {number} of {phase}"
        case AwaitKind.REVIEW:
            return f"the auditor reviews {number} of {phase} before it is pushed"
        case AwaitKind.AUDITOR:
            return f"the auditor works on {phase} ({number})"
        case AwaitKind.PUSH:
            return f"pushing {number} of {phase}"
        case AwaitKind.CI:
            rerun = f", re-run {waiting.rerun}" if waiting.rerun else ""
            sha = md.code(waiting.sha[:7], cell=False)
            return f"waiting for CI on {sha} of {phase}{rerun}"
        case AwaitKind.SNAPSHOT:
            return f"taking the snapshot of {phase}"
    return ""


def artefact_url(view: ReportView, name: str = "") -> str:
    """The URL of an artefact (or of the artefacts folder) on the integration branch."""
    if name:
        return view.link("blob", view.branch, view.artefacts + name)
    return view.link("tree", view.branch, view.artefacts)


def where_artefacts(view: ReportView) -> str:
    """Where the run's artefacts are, as markdown: a link on the branch, or the server."""
    folder = md.code(view.artefacts, cell=False)
    if view.artefacts_on_branch:
        return f"{md.link(folder, artefact_url(view))} on the integration branch"
    folder = md.code(f"runs/{view.run_id}/", 120, cell=False)
    return f"{folder} in the Autopack server's data directory"


def summary_pointer(view: ReportView) -> str:
    """Where the complete report is, for a text that had to be cut."""
    name = md.code(SUMMARY_FILE, cell=False)
    if view.artefacts_on_branch:
        name = md.link(name, artefact_url(view, SUMMARY_FILE))
    return (
        f"**Cut to fit GitHub's size limit.** The complete report is {name} in "
        f"{where_artefacts(view)} (written when the run ends)."
    )


def outcome(view: ReportView, *, compact: bool = False, now: bool = True) -> list[str]:
    """Why the run ended, what that means, where the evidence is and what to do now.

    While it runs: what it is doing (unless `now` is False). `compact` leaves out the
    explanations, for the issue comment.
    """
    state = view.state
    if not state.status.is_terminal:
        doing = activity(view) if now else ""
        return [f"**Now:** {doing}."] if doing else []
    reason = md.text(state.terminal_reason, REASON_CHARS)
    meaning = _MEANINGS.get(state.status, "")
    if state.status is RunStatus.DONE_SUCCESS:
        return [f"> {reason or meaning}"]
    lines = [f"**Why it ended:** {reason or meaning}"]
    if reason and not compact:
        lines.append(meaning)
    incident = md.code(INCIDENT_FILE, cell=False)
    if view.artefacts_on_branch:
        incident = md.link(incident, artefact_url(view, INCIDENT_FILE))
    contents = (
        ""
        if compact
        else f", with `{SUMMARY_FILE}`, the strategy in force (`strategy.json`) and each "
        "phase's issues and builder feedback"
    )
    lines.append(f"**Incident pack:** {incident} in {where_artefacts(view)}{contents}.")
    if state.status is RunStatus.DONE_FAILED_CANCELLED:
        step = "label the issue `autopack:run` again to start a new run."
    else:
        step = (
            "read the incident pack, then press **Retry run** on this run's check run, or "
            "change the plan in the issue and label it `autopack:run` again."
        )
    lines.append(f"**Next:** {step}")
    return ["\n>\n".join(f"> {line}" for line in lines)]


def promotion_section(view: ReportView) -> list[str]:
    """Whether the run may be promoted and, if not, why (decided only once it has ended)."""
    state = view.state
    lines = ["### Promotion", ""]
    if not state.status.is_terminal:
        return []
    verdict = promotion(state)
    has_pull = view.pull_number is not None
    if verdict.eligible:
        ready = ", so the pull request is marked ready for review" if has_pull else ""
        return [
            *lines,
            f"✅ **Eligible.** Every tier is clean and no budget ran out{ready}. Autopack never "
            "merges: merging is a maintainer's call.",
        ]
    draft = ", so the pull request stays a draft" if has_pull else ""
    lines.append(f"🚧 **Not eligible**{draft}:")
    lines += [f"- {reason_text(reason)}" for reason in verdict.reasons]
    return lines


def review_section(view: ReportView) -> list[str]:
    """The phases whose pushed changes a person must review, and why (from the first mark on)."""
    by_phase: dict[str, list[str]] = {}
    for phase_id, reason in view.state.needs_review:
        by_phase.setdefault(phase_id, []).append(reason)
    if not by_phase:
        return []
    lines = [
        f"### {REVIEW_ICON} Needs human review",
        "",
        "These changes needed a review before they were pushed and no auditor is configured, "
        "so Autopack pushed them and leaves the review to a person: the run is not eligible "
        "for promotion and the pull request stays a draft.",
        "",
    ]
    for phase_id, reasons in by_phase.items():
        why = "; ".join(md.text(reason, REASON_CHARS) for reason in reasons[:LISTED_WARNINGS])
        lines.append(f"- {phase_label(view, phase_id)}: {why}")
    return lines


def reason_text(reason: str, limit: int = REASON_CHARS) -> str:
    """One of Autopack's own reasons, escaped, with run states shown as code."""
    return _STATE_NAME.sub(lambda m: f"`{m.group().replace(chr(92), '')}`", md.text(reason, limit))


def _attempts_cell(phase: PhaseStrategy, progress: PhaseProgress) -> str:
    cell = f"{progress.builder_attempts} of {phase.max_builder_attempts}"
    if progress.auditor_attempts:
        cell += f" + auditor {progress.auditor_attempts} of {phase.max_auditor_attempts}"
    return cell


def _ci_cell(view: ReportView, progress: PhaseProgress) -> str:
    """The last CI verdict on the phase, its failed checks, and how many CI runs it took."""
    attempts = sorted(
        (a for a in view.attempts if a.phase_id == progress.phase_id and a.ci_result),
        key=lambda a: a.attempt,
    )
    if attempts:
        last = attempts[-1].ci_result or ""
        result = _CI_RESULTS.get(last, md.text(last, 30))
    elif progress.status is PhaseStatus.GREEN:
        result = _CI_RESULTS["green"]
    elif progress.failed_checks:
        result = _CI_RESULTS["red"]
    else:
        result = "—"
    if progress.failed_checks and progress.status is not PhaseStatus.GREEN:
        shown = ", ".join(md.code(name, 60) for name in progress.failed_checks[:3])
        more = len(progress.failed_checks) - 3
        result += f": {shown}" + (f" +{more}" if more > 0 else "")
    if progress.ci_runs:
        result += f" · {md.plural(progress.ci_runs, 'run')}"
    waiting = view.state.awaiting
    if waiting and waiting.kind is AwaitKind.CI and waiting.phase_id == progress.phase_id:
        result = "⏳ running" + ("" if result == "—" else f" · last: {result}")
    return result


def issue_counts(marks: Iterable[tuple[str, Severity]], empty: str = "—") -> str:
    """Distinct issues by severity: "2 major · 1 minor" (`empty` when there are none)."""
    severities = [severity for _, severity in marks]
    major = sum(1 for s in severities if s is Severity.MAJOR)
    parts = [f"{major} major"] if major else []
    if len(severities) > major:
        parts.append(f"{len(severities) - major} minor")
    return " · ".join(parts) or empty


def _tokens_cell(used: int, cap: int) -> str:
    over = " ⚠️" if used > cap else ""
    return f"{md.amount(used)} of {md.amount(cap)}{over}"


def plan_section(view: ReportView) -> list[str]:
    """Every phase: status, tier, work slice, attempts, CI, issues and tokens; why any failed."""
    strategy = view.state.strategy
    if strategy is None:
        return []
    rows = []
    failures = []
    for progress in view.state.phases:
        phase = phase_of(strategy, progress.phase_id)
        if phase is None:
            continue
        work = (
            f"{phase.task_category} · {phase.complexity} · {phase.builder_mode} · "
            f"CI {phase.ci_profile}"
        )
        icon = _ICONS.get(progress.status, "")
        rows.append(
            [
                f"{icon} {REVIEW_ICON}" if progress.needs_review else icon,
                md.code(progress.tier_id, 40),
                f"{md.code(progress.phase_id, 40)} {md.text(phase.title, TITLE_CHARS)}",
                work,
                _attempts_cell(phase, progress),
                _ci_cell(view, progress),
                issue_counts(progress.issues),
                _tokens_cell(progress.tokens, phase.incident_token_cap),
            ]
        )
        if progress.status is PhaseStatus.FAILED and progress.failure_reason:
            reason = md.text(progress.failure_reason, REASON_CHARS)
            failures.append(f"- {phase_label(view, progress.phase_id)}: {reason}")
    done = sum(1 for p in view.state.phases if p.status is PhaseStatus.GREEN)
    header = ["", "tier", "phase", "work", "attempts", "CI", "issues", "tokens"]
    lines = [f"### Plan: {done} of {md.plural(len(view.state.phases), 'phase')} green", ""]
    lines += md.table(header, "lllllllr", rows)
    if failures:
        lines += ["", "Why phases failed:", *failures]
    return lines


def tier_section(view: ReportView) -> list[str]:
    """Each tier's spend against its caps, issue counts against its tolerances, cleanliness."""
    state = view.state
    strategy = state.strategy
    if strategy is None or not state.tiers:
        return []
    summaries = {s.tier_id: s for s in tier_summaries(state)}
    rows = []
    for progress in state.tiers:
        tier = tier_of(strategy, progress.tier_id)
        if tier is None:
            continue
        minor, major = state.tier_issue_counts(progress.tier_id)
        tolerated = "any" if tier.major_tolerance is None else str(tier.major_tolerance)
        summary = summaries.get(progress.tier_id)
        if progress.status in (TierStatus.PENDING, TierStatus.RUNNING) or summary is None:
            clean = "not yet decided"
        elif summary.cleanliness is Cleanliness.CLEAN:
            clean = "✅ clean"
        else:
            clean = "⚠️ not clean: " + "; ".join(md.text(r, 100) for r in summary.reasons)
        rows.append(
            [
                f"{md.code(tier.tier_id, 40)} {md.text(tier.title, TITLE_CHARS)}",
                f"{_TIER_ICONS.get(progress.status, '')} {progress.status}",
                f"{md.bar(progress.tokens, tier.token_cap)} · "
                f"{md.amount(progress.tokens)} of {md.amount(tier.token_cap)}",
                f"{md.bar(progress.ci_runs, tier.ci_run_cap)} · "
                f"{progress.ci_runs} of {tier.ci_run_cap}",
                f"{minor} (tolerates {tier.minor_tolerance})",
                f"{major} (tolerates {tolerated})",
                clean,
            ]
        )
    header = ["tier", "status", "tokens", "CI runs", "minor issues", "major issues", "cleanliness"]
    return ["### Tiers", "", *md.table(header, "lllllll", rows)]


def budget_section(view: ReportView) -> list[str]:
    """The run's budgets: tokens, wall time, distinct minor issues, CI runs, phases."""
    state = view.state
    strategy = state.strategy
    if strategy is None:
        return []
    budget = strategy.budget
    lines = [
        "### Budget",
        "",
        f"- **Tokens:** {md.bar(state.tokens, budget.token_cap)} · "
        f"{md.amount(state.tokens)} of {md.amount(budget.token_cap)} tokens",
    ]
    if view.elapsed is not None:
        lines.append(
            f"- **Wall time:** {md.bar(view.elapsed, budget.wall_seconds)} · "
            f"{md.duration(view.elapsed)} of {md.duration(budget.wall_seconds)}"
        )
    lines.append(
        f"- **Distinct minor issues:** {md.bar(state.minor_count, budget.max_minor_issues)} · "
        f"{state.minor_count} of {budget.max_minor_issues}"
    )
    ci_runs = sum(t.ci_runs for t in state.tiers)
    in_run = {t.tier_id for t in state.tiers}
    ci_cap = sum(t.ci_run_cap for t in strategy.tiers if t.tier_id in in_run)
    lines.append(f"- **CI runs:** {ci_runs} of {ci_cap} (the tiers' caps added up)")
    lines.append(f"- **Phases:** {len(strategy.phases)} in this run (at most {budget.max_phases})")
    return lines


def warnings_section(view: ReportView, listed: int | None) -> list[str]:
    """The planner's warnings and the tiers left for the next `autopack:run`."""
    strategy = view.state.strategy
    lines: list[str] = []
    if strategy is not None and strategy.plan_warnings:
        warnings = strategy.plan_warnings
        shown = warnings if listed is None else warnings[:listed]
        lines += ["### Plan warnings", ""]
        lines += [f"- {md.text(w, REASON_CHARS)}" for w in shown]
        if len(warnings) > len(shown):
            lines.append(f"- … and {len(warnings) - len(shown)} more in `{SUMMARY_FILE}`")
    if strategy is not None and strategy.remaining_tiers:
        left = strategy.remaining_tiers
        tiers = ", ".join(md.code(t, 40, cell=False) for t in left[:50])
        tiers += f" and {len(left) - 50} more" if len(left) > 50 else ""
        subject = f"Tier {tiers} is" if len(left) == 1 else f"Tiers {tiers} are"
        if lines:
            lines.append("")
        lines += [
            "### Left for the next run",
            "",
            f"{subject} not part of this run. Once it has ended, label the issue "
            "`autopack:run` again to run " + ("it." if len(left) == 1 else "them."),
        ]
    return lines


def _where(view: ReportView, issue: ReportIssue) -> str:
    """The evidence: file and line, linked to the commit it was seen on (or the branch)."""
    if not issue.path:
        return "—"
    shown = issue.path + (f"#L{issue.line}" if issue.line else "")
    target = view.link("blob", issue.commit_sha or view.branch, issue.path)
    if issue.line and issue.line > 0:
        target += f"#L{issue.line}"
    return md.link(md.code(shown, 100), target)


def issues_section(view: ReportView, listed: int | None) -> list[str]:
    """The run's distinct issues, major first, with evidence links; at most `listed` rows."""
    issues = report_issues(view)
    if not issues:
        return []
    shown = issues if listed is None else issues[:listed]
    major = sum(1 for i in issues if i.severity is Severity.MAJOR)
    rows = []
    for issue in shown:
        severity = "🔴 major" if issue.severity is Severity.MAJOR else "🟡 minor"
        if issue.aged:
            severity += " (aged)"
        rows.append(
            [
                severity,
                md.code(issue.key, 100),
                _where(view, issue),
                md.text(issue.source or issue.category, 40),
                md.code(issue.phase_id, 40) if issue.phase_id else "—",
                md.text(issue.message, REASON_CHARS) or "—",
            ]
        )
    header = ["severity", "issue", "where", "found by", "phase", "what"]
    lines = [f"### Issues: {major} major · {len(issues) - major} minor", ""]
    lines += md.table(header, "llllll", rows)
    if len(issues) > len(shown):
        rest = issues[len(shown) :]
        rest_major = sum(1 for i in rest if i.severity is Severity.MAJOR)
        lines += [
            "",
            f"… and {len(rest)} more ({rest_major} major, {len(rest) - rest_major} minor): "
            f"every issue is in `{SUMMARY_FILE}`.",
        ]
    if any(i.aged for i in issues):
        lines += ["", "_(aged)_: a minor issue open across several runs, counted as major."]
    return lines


def sections(
    view: ReportView, listed: int | None, *, promotion_part: bool = True, now: bool = True
) -> str:
    """The report's body, most important first (so a cut end loses the least).

    `listed` caps the issue rows (None: all); `promotion_part` and `now` leave out the
    promotion section and what the run is doing right now.
    """
    parts = [
        outcome(view, now=now),
        review_section(view),
        promotion_section(view) if promotion_part else [],
        plan_section(view),
        tier_section(view),
        budget_section(view),
        warnings_section(view, LISTED_WARNINGS if listed is not None else None),
        issues_section(view, listed),
    ]
    return "\n\n".join("\n".join(p) for p in parts if p)


def attempts_section(view: ReportView, limit_rows: int | None) -> list[str]:
    """Each phase's attempts: who, how it ended, CI, tokens, time, commit and what happened."""
    if not view.attempts:
        return ["### Attempts", "", "No attempt has started yet."]
    lines = ["### Attempts"]
    phases = [p.phase_id for p in view.state.phases]
    phases += sorted({a.phase_id for a in view.attempts} - set(phases))
    count = 0
    for phase_id in phases:
        attempts = [a for a in view.attempts if a.phase_id == phase_id]
        if not attempts:
            continue
        rows = []
        for attempt in sorted(attempts, key=lambda a: a.attempt):
            count += 1
            if limit_rows is not None and count > limit_rows:
                break
            took = "—"
            if attempt.finished_at is not None:
                took = md.duration((attempt.finished_at - attempt.started_at).total_seconds())
            commit = "—"
            if attempt.commit_sha:
                short = md.code(attempt.commit_sha[:7], 10)
                commit = md.link(short, view.link("commit", attempt.commit_sha))
            rows.append(
                [
                    str(attempt.attempt),
                    md.text(attempt.actor, 20),
                    _OUTCOMES.get(attempt.outcome, md.text(attempt.outcome, 30)),
                    _CI_RESULTS.get(attempt.ci_result or "", "—"),
                    md.amount(attempt.tokens),
                    took,
                    commit,
                    md.text(attempt.summary, REASON_CHARS) or "—",
                ]
            )
        header = ["#", "by", "outcome", "CI", "tokens", "took", "commit", "what happened"]
        lines += ["", f"#### {phase_label(view, phase_id)}", ""]
        lines += md.table(header, "rlllrrll", rows)
        if limit_rows is not None and count > limit_rows:
            lines += ["", f"… the remaining attempts are in `{SUMMARY_FILE}`."]
            break
    return lines


def feedback_section(view: ReportView) -> list[str]:
    """The last feedback the builder got, for the phases that failed: usually the why."""
    lines = []
    for progress in view.state.phases:
        if progress.status is not PhaseStatus.FAILED or not progress.feedback:
            continue
        lines += ["", f"#### {phase_label(view, progress.phase_id)}", ""]
        # Newest last: the entry that ended the phase is the one to read first.
        lines.append(md.code_block("\n\n".join(progress.feedback), 8000))
    return ["### Last feedback to the builder", *lines] if lines else []
