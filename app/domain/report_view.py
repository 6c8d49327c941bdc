"""What the reports are made from: the `ReportView` and the run's issues, tiers and promotion.

Pure. Connects the machine's issue marks to the tier summaries and promotion rules of
`issues.py`, and merges them with the progress rows' detail (paths, lines, messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.domain import report_markdown as md
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
from app.domain.strategy import PhaseStrategy, Strategy, TierStrategy

ARTEFACTS_DIR = ".autonomous_runs"
SUMMARY_FILE = "RUN_SUMMARY.md"
INCIDENT_FILE = "INCIDENT.md"
REASON_CHARS = 300  # a reason or message in a table cell

_SOURCES = {
    "gate": IssueSource.GATE,
    "ci": IssueSource.CI,
    "probe": IssueSource.PROBE,
    "builder": IssueSource.BUILDER,
    "phase": IssueSource.BUILDER,
}
_TIER_STATUS = {
    TierStatus.COMPLETE: SummaryStatus.COMPLETE,
    TierStatus.FAILED: SummaryStatus.FAILED,
}


class IssueFacts(Protocol):
    """What a report needs of one issue (`app.store.progress.IssueRow` has it)."""

    @property
    def issue_key(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def phase_id(self) -> str: ...
    @property
    def tier_id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def path(self) -> str | None: ...
    @property
    def line(self) -> int | None: ...
    @property
    def commit_sha(self) -> str | None: ...
    @property
    def message(self) -> str: ...


class AttemptFacts(Protocol):
    """What a report needs of one attempt (`app.store.progress.AttemptRow` has it)."""

    @property
    def phase_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def actor(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def tokens(self) -> int: ...
    @property
    def commit_sha(self) -> str | None: ...
    @property
    def ci_result(self) -> str | None: ...
    @property
    def summary(self) -> str: ...


@dataclass(frozen=True)
class ReportView:
    """Everything a renderer needs: the run's state, its progress rows, and where things are.

    `html_url` is GitHub's web root (GitHub Enterprise differs); every link is built from it.
    `started_at` and `now` are epoch seconds (for a finished run, `now` is when it ended).
    `artefacts_path` is the artefacts folder on the branch (default `.autonomous_runs/<run>/`).
    """

    state: RunState
    repository: str
    issue_number: int
    run_number: int
    title: str
    branch: str
    html_url: str = "https://github.com"
    started_at: float | None = None
    now: float | None = None
    pull_number: int | None = None
    check_run_url: str | None = None
    issues: tuple[IssueFacts, ...] = ()
    attempts: tuple[AttemptFacts, ...] = ()
    artefacts_path: str = ""

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.state.run_id

    @property
    def elapsed(self) -> float | None:
        """Seconds since the run started, when both ends are known."""
        if self.started_at is None or self.now is None:
            return None
        return max(self.now - self.started_at, 0.0)

    @property
    def artefacts(self) -> str:
        """The artefacts folder on the branch, ending in `/`."""
        path = self.artefacts_path.strip("/") or f"{ARTEFACTS_DIR}/{self.run_id}"
        return path + "/"

    @property
    def artefacts_on_branch(self) -> bool:
        """False when the ruleset keeps the artefacts on the server only."""
        return self.state.strategy is None or self.state.strategy.commit_artefacts

    def link(self, *parts: str) -> str:
        """A URL under the repository, e.g. `link("tree", branch)`."""
        return md.url(self.html_url, self.repository, *parts)


# --- the run's issues, tiers and promotion ---------------------------------------------------


def issue_index(state: RunState, details: Mapping[str, IssueFacts] | None = None) -> RunIssueIndex:
    """The run's issue index built from the machine's per-phase issue marks; `details` (the
    stored issue rows by key) give each its real category, source and evidence."""
    index = RunIssueIndex()
    known = details or {}
    for number, phase in enumerate(state.phases):
        records = [_record(key, severity, known.get(key)) for key, severity in phase.issues]
        if records:
            index = index.add(number, phase.tier_id, phase.phase_id, records)
    return index


def _record(key: str, severity: Severity, facts: IssueFacts | None) -> IssueRecord:
    prefix = key.split(":", 1)[0]
    if facts is None:
        source = _SOURCES.get(prefix, IssueSource.BUILDER)
        return IssueRecord(key, severity, prefix or "issue", source, ())
    source = _SOURCES.get(facts.source, IssueSource.BUILDER)
    evidence = (facts.message,) if facts.message else ()
    category = facts.category or prefix or "issue"
    return IssueRecord(key, severity, category, source, evidence, facts.path, facts.line)


def tier_summaries(state: RunState) -> list[TierSummary]:
    """Each tier's cleanliness, from the machine's progress and the strategy's caps."""
    strategy = state.strategy
    if strategy is None:
        return []
    index = issue_index(state)
    summaries = []
    for progress in state.tiers:
        tier = tier_of(strategy, progress.tier_id)
        minor, major = (tier.minor_tolerance, tier.major_tolerance) if tier else (0, None)
        summaries.append(
            summarise_tier(
                progress.tier_id,
                _TIER_STATUS.get(progress.status, SummaryStatus.SKIPPED),
                index,
                TierCaps(minor, major),
                token_cap_hit=progress.token_cap_hit,
                ci_cap_hit=progress.ci_cap_hit,
            )
        )
    return summaries


def promotion(state: RunState) -> Promotion:
    """Whether the run may be promoted to the default branch, with the reasons if not.

    Besides the playbook's rules, a phase pushed without the review it needed (no auditor)
    keeps the run from promotion: a person reviews it on the pull request first; so does a
    debt cleanup that failed after pushing (the branch holds a change CI did not pass).
    """
    strategy = state.strategy
    over_budget = strategy is not None and state.tokens > strategy.budget.token_cap
    budget_failed = state.status is RunStatus.DONE_FAILED_BUDGET_EXHAUSTED or over_budget
    verdict = promotion_eligibility(state.status.value, tier_summaries(state), budget_failed)
    # A debt cleanup that failed after pushing left a change CI did not pass on the branch.
    failed = [p.phase_id for p in state.phases if p.status is PhaseStatus.FAILED and p.last_commit]
    left = [
        phase_id
        for phase_id in failed
        if strategy is not None
        and (phase := phase_of(strategy, phase_id)) is not None
        and phase.is_debt_cleanup
    ]
    if left:
        reason = f"the debt cleanup {', '.join(left)} failed after pushing a change CI did not pass"
        verdict = Promotion(False, (*verdict.reasons, reason))
    phases = list(dict.fromkeys(phase_id for phase_id, _ in state.needs_review))
    if not phases:
        return verdict
    review = (
        f"phase {', '.join(phases)} needs human review"
        if len(phases) == 1
        else (f"phases {', '.join(phases)} need human review")
    )
    return Promotion(False, (*verdict.reasons, f"{review}: pushed without the review it needed"))


def status_line(state: RunState) -> str:
    """One line: the state and, when ended, why."""
    if state.status.is_terminal:
        return f"**{state.status.value}**: {md.text(state.terminal_reason, REASON_CHARS)}"
    return f"**{state.status.value}**"


@dataclass(frozen=True)
class ReportIssue:
    """One distinct issue as the reports show it: the machine's mark plus the row's detail."""

    key: str
    severity: Severity  # effective (aging already applied)
    aged: bool
    category: str
    source: str
    phase_id: str
    path: str | None
    line: int | None
    commit_sha: str | None
    message: str


def report_issues(view: ReportView) -> list[ReportIssue]:
    """Every distinct issue, major first, then in plan order, then by key."""
    state = view.state
    rows = {row.issue_key: row for row in view.issues}
    marks = dict(state.issues)
    first_phase: dict[str, str] = {}
    for phase in state.phases:
        for key, _ in phase.issues:
            first_phase.setdefault(key, phase.phase_id)
    aging = state.strategy.effective_severity if state.strategy else {}
    order = {phase.phase_id: n for n, phase in enumerate(state.phases)}
    out = []
    for key in set(rows) | set(marks):
        row = rows.get(key)
        major = marks.get(key) is Severity.MAJOR or (row is not None and row.severity == "major")
        aged = aging.get(key) is Severity.MAJOR and (row is None or row.severity != "major")
        out.append(
            ReportIssue(
                key=key,
                severity=Severity.MAJOR if major or aged else Severity.MINOR,
                aged=aged,
                category=row.category if row else (key.split(":", 1)[0] or "issue"),
                source=row.source if row else "",
                phase_id=(row.phase_id if row else "") or first_phase.get(key, ""),
                path=row.path if row else None,
                line=row.line if row else None,
                commit_sha=row.commit_sha if row else None,
                message=row.message if row else "",
            )
        )
    return sorted(
        out,
        key=lambda i: (i.severity is not Severity.MAJOR, order.get(i.phase_id, len(order)), i.key),
    )


def tier_of(strategy: Strategy, tier_id: str) -> TierStrategy | None:
    """A tier of the strategy, or None (never KeyError: a report must not fail)."""
    return next((t for t in strategy.tiers if t.tier_id == tier_id), None)


def phase_of(strategy: Strategy, phase_id: str) -> PhaseStrategy | None:
    """A phase of the strategy, or None."""
    return next((p for p in strategy.phases if p.phase_id == phase_id), None)


def web_root(api_url: str) -> str:
    """GitHub's web root for its REST API URL: api.github.com -> github.com, and for GitHub
    Enterprise Server `https://HOST/api/v3` -> `https://HOST`."""
    root = api_url.rstrip("/")
    if root.endswith("/api/v3"):
        return root.removesuffix("/api/v3")
    return root.replace("://api.", "://", 1)
