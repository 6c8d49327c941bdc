"""INCIDENT.md: the pack people read after a failed run — the failing phase, why it failed, the
last feedback the builder got, what CI said, the logs, the diff.

Pure: the report view and the evidence each phase left in, markdown out. Everything that came
from a builder, a check or a repository passes through the redactor first: the pack is committed
to the integration branch.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.domain import report_markdown as md
from app.domain.evidence import PhaseEvidence, finding_line, gate_findings
from app.domain.report_view import SUMMARY_FILE, ReportView, status_line
from app.domain.run_state import PhaseProgress, PhaseStatus
from app.domain.secrets_scan import redact

_LOG_CHARS = 6_000
_DIFF_CHARS = 20_000
_OUTPUT_CHARS = 6_000


def render_incident(view: ReportView, evidence: Mapping[str, PhaseEvidence]) -> str:
    """The incident pack of a run that did not succeed."""
    state = view.state
    lines = [f"# Incident: run {state.run_id}", "", status_line(state), ""]
    failing = _failing(view)
    if not failing:
        lines += ["No phase failed: the run ended before or between phases.", ""]
    for phase in failing:
        lines += _phase(view, phase, evidence.get(phase.phase_id, PhaseEvidence()))
    lines += [
        "## Where the rest is",
        "",
        f"- `{SUMMARY_FILE}`: what happened, phase by phase, with every attempt.",
        "- `strategy.json`: the strategy in force (budgets, profiles, gate policy).",
        "- `phase_<id>_issues.json`: each phase's issues and the feedback its builder got.",
        "",
    ]
    return "\n".join(lines)


def _failing(view: ReportView) -> list[PhaseProgress]:
    """Failed phases, or, when none failed, the phase the run was in when it ended."""
    failed = [p for p in view.state.phases if p.status is PhaseStatus.FAILED]
    if failed:
        return failed
    index = view.state.phase_index
    if view.state.phases and 0 <= index < len(view.state.phases):
        current = view.state.phases[index]
        if current.attempts:
            return [current]
    return []


def _phase(view: ReportView, phase: PhaseProgress, evidence: PhaseEvidence) -> list[str]:
    strategy = view.state.strategy
    title = strategy.phase(phase.phase_id).title if strategy is not None else ""
    heading = f"## Phase {phase.phase_id}" + (f": {md.text(title, 200)}" if title else "")
    lines = [heading, ""]
    reason = phase.failure_reason or view.state.terminal_reason
    lines += [f"**Why it failed:** {md.text(redact(reason), 1000)}", ""]
    lines += [
        f"Attempts: {phase.builder_attempts} by the builder, {phase.auditor_attempts} by the "
        f"auditor; {phase.ci_runs} CI run(s); last commit: `{phase.last_commit or 'none'}`.",
        "",
    ]
    attempts = [a for a in view.attempts if a.phase_id == phase.phase_id]
    for attempt in attempts:
        summary = md.text(redact(attempt.summary), 300) or "(no summary)"
        lines.append(f"- attempt {attempt.attempt} ({attempt.actor}): {attempt.outcome}: {summary}")
    if attempts:
        lines.append("")
    if phase.feedback:
        lines += ["### The last feedback the builder got", "", _block(phase.feedback[-1], 3000)]
    findings = gate_findings(evidence.gate)
    if findings:
        lines += ["### Gate findings", ""]
        lines += [f"- {md.text(redact(finding_line(f)), 400)}" for f in findings]
        lines.append("")
    for heading, text, limit in (
        ("What CI said", evidence.ci_output, _OUTPUT_CHARS),
        ("The last builder log (tail)", evidence.builder_log, _LOG_CHARS),
        ("The last attempt's diff", evidence.diff, _DIFF_CHARS),
    ):
        if text.strip():
            lines += [f"### {heading}", "", _block(text, limit)]
    return lines


def _block(text: str, limit: int) -> str:
    return md.code_block(redact(text), limit) + "\n"
