"""Markdown a maintainer reads: the check run, the run's comment, the pull request body and
RUN_SUMMARY.md, plus the check run's annotations.

Pure: a `ReportView` (the machine's state, the progress rows and the links) in, text out. Each
renderer stays within its GitHub limit; what gets cut points at RUN_SUMMARY.md, the complete
version. The parts are in `report_sections.py`, the markdown primitives (escaping, bars, fitting)
in `report_markdown.py`, the backlog issue in `report_backlog.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.domain import report_markdown as md
from app.domain import report_sections as s
from app.domain.issue_record import Severity
from app.domain.report_view import (
    ARTEFACTS_DIR,
    INCIDENT_FILE,
    SUMMARY_FILE,
    AttemptFacts,
    IssueFacts,
    ReportView,
    issue_index,
    promotion,
    status_line,
    tier_summaries,
    web_root,
)
from app.domain.run_state import PhaseStatus, RunState
from app.domain.secrets_scan import redact

__all__ = [
    "ARTEFACTS_DIR",
    "INCIDENT_FILE",
    "SUMMARY_FILE",
    "AttemptFacts",
    "IssueAnnotation",
    "IssueFacts",
    "ReportView",
    "annotations_for",
    "issue_index",
    "promotion",
    "render_check_summary",
    "render_check_text",
    "render_check_title",
    "render_comment",
    "render_pull_body",
    "render_run_summary",
    "render_summary",
    "run_marker",
    "status_line",
    "tier_summaries",
    "web_root",
]

MAX_ANNOTATIONS = 500  # more is noise on a check run; every issue is in RUN_SUMMARY.md
ANNOTATION_TITLE_CHARS = 255
ANNOTATION_MESSAGE_BYTES = 64 * 1024
COMMENT_REASONS = 5
CHECK_TITLE_CHARS = 255
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


# --- the renderers ---------------------------------------------------------------------------


def render_check_summary(view: ReportView) -> str:
    """The check run's output.summary: the whole picture, within 65,535 characters."""
    body = "\n\n".join(
        [f"## {s.headline(view)}", s.meta(view), s.sections(view, s.LISTED_ISSUES)]
    ).rstrip()
    return md.fit(body + "\n", md.CHECK_SUMMARY_LIMIT, s.summary_pointer(view))


def render_check_title(view: ReportView) -> str:
    """The check run's output.title, e.g. "❌ Run 2 failed: a budget ran out · 2 of 4 green"."""
    title = s.headline(view).replace("Autopack run", "Run", 1)
    phases = view.state.phases
    if phases:
        green = sum(1 for p in phases if p.status is PhaseStatus.GREEN)
        title += f" · {green} of {md.plural(len(phases), 'phase')} green"
    if view.state.needs_review:
        title += f" · {s.REVIEW_ICON} needs human review"
    return md.cut(title, CHECK_TITLE_CHARS)


def render_check_text(view: ReportView) -> str:
    """The check run's output.text: every attempt of every phase, within 65,535 characters."""
    parts = ["\n".join(s.attempts_section(view, 500)), "\n".join(s.feedback_section(view))]
    body = "\n\n".join(p for p in parts if p)
    return md.fit(body + "\n", md.CHECK_TEXT_LIMIT, s.summary_pointer(view))


def render_run_summary(view: ReportView) -> str:
    """RUN_SUMMARY.md: the complete report, nothing left out (no GitHub limit applies)."""
    parts = [
        f"# Autopack run {md.code(view.run_id, 200, cell=False)}: {md.text(view.title, 300)}",
        f"**{s.headline(view)}**",
        s.meta(view),
        s.sections(view, None),
        "\n".join(s.attempts_section(view, None)),
        "\n".join(s.feedback_section(view)),
    ]
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def run_marker(run_id: str) -> str:
    """The hidden marker of the run's comment (the one `app.github.comments` looks for)."""
    return f"<!-- autopack:run:{_UNSAFE_ID.sub('-', run_id)[:100]} -->"


def render_comment(view: ReportView) -> str:
    """The run's issue comment: short, with links to the branch, PR and check run."""
    state = view.state
    phases = state.phases
    green = sum(1 for p in phases if p.status is PhaseStatus.GREEN)
    lines = [run_marker(view.run_id), f"### {s.headline(view)}", ""]
    facts = [f"**State:** `{state.status.value}`"]
    if view.elapsed is not None:
        verb = "took" if state.status.is_terminal else "running for"
        facts[0] += f" · {verb} {md.duration(view.elapsed)}"
    if doing := s.activity(view):
        facts.append(f"**Now:** {doing}")
    if state.strategy is not None:
        cap = state.strategy.budget.token_cap
        issues = s.issue_counts(state.issues, "no")
        facts.append(
            f"**Progress:** {green} of {md.plural(len(phases), 'phase')} green · "
            f"{issues} {'issue' if len(state.issues) == 1 else 'issues'} · "
            f"{md.amount(state.tokens)} of {md.amount(cap)} tokens "
            f"({md.percent(state.tokens, cap)}%)"
        )
    if reviewed := list(dict.fromkeys(phase_id for phase_id, _ in state.needs_review)):
        phases_shown = ", ".join(md.code(phase_id, 40, cell=False) for phase_id in reviewed[:10])
        facts.append(
            f"**{s.REVIEW_ICON} Needs human review:** {phases_shown} (pushed without the "
            "review it needed: no auditor is configured)"
        )
    facts.append(f"**Branch:** {md.link(md.code(view.branch, cell=False), s.branch_url(view))}")
    if view.pull_number is not None:
        draft = "ready for review" if _ready(view) else "draft"
        facts.append(f"**Pull request:** {s.pull_link(view)} ({draft})")
    else:
        facts.append("**Pull request:** opens as a draft once the first phase lands")
    if view.check_run_url:
        facts.append(
            f"**Full report:** {md.link('the Autopack check run', md.url(view.check_run_url))}"
        )
    lines += [f"- {fact}" for fact in facts]
    if state.status.is_terminal:
        lines += ["", *s.outcome(view, compact=True), "", _comment_promotion(view)]
    return md.fit("\n".join(lines) + "\n", md.COMMENT_LIMIT, s.summary_pointer(view))


def _ready(view: ReportView) -> bool:
    """Whether the pull request is (about to be) marked ready for review."""
    return view.state.status.is_terminal and promotion(view.state).eligible


def _comment_promotion(view: ReportView) -> str:
    verdict = promotion(view.state)
    has_pull = view.pull_number is not None
    if verdict.eligible:
        ready = " the pull request is ready for review." if has_pull else ""
        return f"✅ **Eligible for promotion:**{ready} Autopack never merges; a maintainer does."
    reasons = "; ".join(s.reason_text(r, 200) for r in verdict.reasons[:COMMENT_REASONS])
    more = len(verdict.reasons) - COMMENT_REASONS
    reasons += f"; and {more} more" if more > 0 else ""
    draft = ", so the pull request stays a draft" if has_pull else ""
    return f"🚧 **Not eligible for promotion**{draft}: {reasons}."


def render_pull_body(view: ReportView) -> str:
    """The pull request body: the run summary, why it is (still) a draft, and `Refs #N`."""
    state = view.state
    issue = f"#{view.issue_number}"
    lines = [
        f"## {s.headline(view)}",
        "",
        s.meta(view, pull=False),
        "",
        f"> Autopack opened this pull request for {issue} ({md.text(view.title, 200)}). "
        "**Autopack never merges:** a maintainer reviews it and decides.",
        "",
    ]
    verdict = promotion(state)
    if not state.status.is_terminal:
        lines += [
            "### Still running",
            "",
            "This pull request stays a draft while the run goes on; the run's check run and "
            f"its comment on {issue} show the progress, and this description is refreshed when "
            "the run ends. Autopack then marks it ready for review only if the run is eligible "
            "for promotion: `DONE_SUCCESS`, every tier clean, no budget exhausted and no phase "
            "waiting for a person's review.",
        ]
    elif verdict.eligible:
        lines += [
            "### Ready for review",
            "",
            "The run ended in `DONE_SUCCESS`, every tier is clean and no budget ran out, so "
            "Autopack marks this pull request ready for review.",
        ]
    else:
        lines += [
            "### Stays a draft",
            "",
            "This run is not eligible for promotion, so the pull request stays a draft:",
            *[f"- {s.reason_text(reason)}" for reason in verdict.reasons],
            "",
            "What landed is on the branch, phase by phase, and may still be useful: review it "
            "like any other change before merging any of it by hand.",
        ]
    body = "\n".join(lines) + "\n\n"
    body += s.sections(view, s.LISTED_ISSUES, promotion_part=False, now=False)
    footer = f"\n\nRefs {issue}\n"
    return md.fit(body.rstrip(), md.PULL_BODY_LIMIT, s.summary_pointer(view), footer)


def render_summary(state: RunState, *, title: str, branch: str, pull_url: str | None = None) -> str:
    """RUN_SUMMARY.md from the state alone (no progress rows, times or links to PR/check run).

    Kept for callers that have not built a `ReportView` yet; `pull_url` is "#<number>".
    """
    strategy = state.strategy
    number = (pull_url or "").removeprefix("#")
    view = ReportView(
        state=state,
        repository=strategy.repository if strategy else "",
        issue_number=strategy.issue_number if strategy else 0,
        run_number=_run_number(state.run_id),
        title=title,
        branch=branch,
        pull_number=int(number) if number.isdigit() else None,
    )
    return render_run_summary(view)


def _run_number(run_id: str) -> int:
    """The K of a run id `owner-repo-<issue>-<K>` (0 when it is not one)."""
    tail = run_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# --- annotations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueAnnotation:
    """A check run annotation for one issue, with the fields of `app.github.checks.Annotation`.

    The domain does not import the GitHub layer; the edge builds its `Annotation(**vars(a))`.
    """

    path: str
    start_line: int
    end_line: int
    level: str  # warning | failure
    message: str
    title: str | None = None
    raw_details: str | None = None


def annotations_for(
    issues: Iterable[IssueFacts],
    *,
    effective: Mapping[str, Severity] | None = None,
    limit: int = MAX_ANNOTATIONS,
) -> list[IssueAnnotation]:
    """One annotation per issue that names a file: failure for major, warning for minor.

    `effective` is the strategy's aging overrides (an aged minor counts as major). Majors come
    first, then by path and line; at most `limit`. Batching (50 per request) and GitHub's field
    limits are enforced again by `app.github.checks`.
    """
    aging = effective or {}
    out = []
    for issue in issues:
        path = _annotation_path(issue.path)
        if path is None:
            continue
        line = issue.line if issue.line is not None and issue.line > 0 else 1
        major = issue.severity == "major" or aging.get(issue.issue_key) is Severity.MAJOR
        source = md.one_line(issue.source or issue.category)
        title = f"{'Major' if major else 'Minor'} issue {md.one_line(issue.issue_key)}"
        message = issue.message.strip() or f"Reported by {source or 'Autopack'}."
        message += f"\n\nissue_key: {issue.issue_key} · phase {issue.phase_id} · {source}"
        message = redact(message)
        out.append(
            IssueAnnotation(
                path=path,
                start_line=line,
                end_line=line,
                level="failure" if major else "warning",
                message=_cut_bytes(message, ANNOTATION_MESSAGE_BYTES),
                title=md.cut(title, ANNOTATION_TITLE_CHARS),
            )
        )
    out.sort(key=lambda a: (a.level != "failure", a.path, a.start_line, a.title or ""))
    return out[: max(limit, 0)]


def _annotation_path(path: str | None) -> str | None:
    """A repository-relative path, or None when there is no usable one."""
    if not path:
        return None
    clean = path.strip().replace("\\", "/")
    while clean.startswith(("./", "/")):
        clean = clean[1:] if clean.startswith("/") else clean[2:]
    parts = clean.split("/")
    if not clean or any(p in ("", "..") for p in parts) or md.one_line(clean) != clean:
        return None
    return clean


def _cut_bytes(value: str, limit: int) -> str:
    data = value.encode()
    if len(data) <= limit:
        return value
    return data[: limit - len(md.ELLIPSIS.encode())].decode(errors="ignore") + md.ELLIPSIS
