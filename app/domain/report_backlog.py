"""The per-repository "Autopack backlog" issue: every open issue by effective severity, with age,
and the ruleset changes that would have kept aged issues from coming back.

In the spirit of Renovate's dependency dashboard: one issue per repository that Autopack rewrites
after every run and finds again by its hidden marker. Pure: the run's end folded into the
backlog (`backlog_after_run`), then the backlog in, markdown out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.domain import report_markdown as md
from app.domain.backlog import AgingRules, Backlog, BacklogEntry, effective_severity, update_backlog
from app.domain.issue_record import Severity
from app.domain.learned_rules import RuleSuggestion, suggest_rules
from app.domain.machine_steps import failed_cleanups
from app.domain.report_view import IssueFacts, issue_index
from app.domain.run_state import RunState

BACKLOG_TITLE = "Autopack backlog"
LISTED = 300  # rows per severity; a bigger backlog is complete in the API
SNIPPET_CHARS = 8_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._/-]")


@dataclass(frozen=True)
class BacklogUpdate:
    """The backlog after a run, and the ruleset changes suggested for its aged issues."""

    backlog: Backlog
    suggestions: tuple[RuleSuggestion, ...]


def backlog_after_run(
    backlog: Backlog, state: RunState, details: Mapping[str, IssueFacts], now_iso: str
) -> BacklogUpdate:
    """Fold an ended run into the repository's backlog (with the run's aging thresholds): its
    issues age by the tiers they were seen in, and the keys a failed debt cleanup could not fix
    stay open and age; then suggest ruleset changes for the aged issues it saw."""
    strategy = state.strategy
    if strategy is None:
        return BacklogUpdate(backlog, ())
    still_open = {
        key: strategy.phase(phase_id).tier_id
        for phase_id in failed_cleanups(state)
        for key in strategy.phase(phase_id).debt_issue_keys
    }
    updated = update_backlog(
        backlog,
        issue_index(state, details),
        state.run_id,
        now_iso,
        aging=strategy.aging,
        still_open=still_open,
    )
    paths = {key: row.path for key, row in details.items() if row.path}
    return BacklogUpdate(updated, suggest_rules(updated, state.run_id, strategy, paths))


def backlog_marker(repository: str) -> str:
    """The hidden marker that identifies a repository's backlog issue."""
    return f"<!-- autopack:backlog:{_UNSAFE.sub('-', repository)[:200]} -->"


def render_backlog_issue(
    repository: str,
    backlog: Backlog,
    now_iso: str,
    suggestions: Sequence[RuleSuggestion] = (),
    *,
    resolve_after_runs: int = 2,
) -> str:
    """The backlog issue's body: suggested ruleset changes, then open issues, major (with aged
    minors) first, then minor; aged by the repository's thresholds kept with the backlog."""
    rules = backlog.aging
    major = [e for e in backlog.entries if effective_severity(e, rules) is Severity.MAJOR]
    minor = [e for e in backlog.entries if effective_severity(e, rules) is Severity.MINOR]
    aged = sum(1 for e in major if e.base_severity is Severity.MINOR)
    lines = [
        backlog_marker(repository),
        "Autopack lists here what it has found on this repository and not yet seen fixed, "
        "across runs. It rewrites this issue after every run: edits here are lost.",
        "",
    ]
    updated = f"updated {md.text(_when(now_iso), 40)}"
    if backlog.last_run:
        updated += f" after run {md.code(backlog.last_run, 100, cell=False)}"
    if not backlog.entries:
        lines += [f"✨ **Nothing open** · {updated}", ""]
        lines.append("No run has left an issue behind that is still being seen.")
        return md.fit("\n".join(lines) + "\n", md.ISSUE_BODY_LIMIT)
    aged_note = f" ({aged} aged from minor)" if aged else ""
    runs = md.plural(rules.minor_to_major_after_runs, "run")
    tiers = md.plural(rules.minor_to_major_after_tiers, "tier")
    lines += [
        f"**{len(backlog.entries)} open** · 🔴 {len(major)} major{aged_note} · "
        f"🟡 {len(minor)} minor · {updated}",
        "",
        f"**Aging:** a minor issue seen in more than {runs} or more than {tiers} counts as "
        "major, and "
        "the next run may add a `debt_cleanup` phase to work it off. An issue not seen in "
        f"{md.plural(resolve_after_runs, 'run')} in a row counts as fixed and leaves this list.",
    ]
    lines += _suggestions(suggestions, backlog.last_run)
    if major:
        lines += ["", f"## 🔴 Major ({len(major)})", ""]
        lines += _table(_ordered(major), rules, now_iso, minor_table=False)
    if minor:
        lines += ["", f"## 🟡 Minor ({len(minor)})", ""]
        lines += _table(_ordered(minor), rules, now_iso, minor_table=True)
    pointer = (
        "**Cut to fit GitHub's size limit.** The complete backlog is in Autopack's API: "
        f"`GET /api/repos/{md.text(repository, 200)}/backlog`."
    )
    return md.fit("\n".join(lines) + "\n", md.ISSUE_BODY_LIMIT, pointer)


def _suggestions(suggestions: Sequence[RuleSuggestion], run: str | None) -> list[str]:
    """Each suggested ruleset change as a ready-to-paste snippet (never applied by Autopack)."""
    if not suggestions:
        return []
    after = f" in run {md.code(run, 100, cell=False)}" if run else ""
    lines = [
        "",
        f"## 💡 Suggested ruleset changes ({len(suggestions)})",
        "",
        f"These issues aged past the thresholds and came back again{after}. Each snippet is the "
        "change to `.github/autopack.yml` that would have kept one from coming back. Autopack "
        "never edits the ruleset: paste what you agree with, merging it with keys the file "
        "already sets.",
    ]
    for suggestion in suggestions:
        lines += [
            "",
            f"**{md.code(suggestion.issue_key, 100, cell=False)}** → "
            f"{md.code(suggestion.setting, 100, cell=False)}: {md.text(suggestion.why, 300)}.",
            "",
            md.code_block(suggestion.snippet, SNIPPET_CHARS, "yaml"),
        ]
    return lines


def _ordered(entries: list[BacklogEntry]) -> list[BacklogEntry]:
    """Oldest first: most runs, then most tiers, then most sightings."""
    return sorted(
        entries, key=lambda e: (-e.age_in_runs, -e.age_in_tiers, -e.occurrence_count, e.issue_key)
    )


def _table(
    entries: list[BacklogEntry], rules: AgingRules, now_iso: str, *, minor_table: bool
) -> list[str]:
    rows = []
    for entry in entries[:LISTED]:
        key = md.code(entry.issue_key, 100)
        if entry.base_severity is Severity.MINOR and not minor_table:
            key += " ⏫ aged"
        last = f"run {md.code(entry.last_seen_run, 100)} · {md.text(_ago(entry, now_iso), 40)}"
        if entry.unseen_runs:
            runs = "run" if entry.unseen_runs == 1 else f"{entry.unseen_runs} runs"
            last += f" · not seen in the last {runs}"
        row = [
            key,
            md.text(entry.category, 60),
            f"{md.plural(entry.age_in_runs, 'run')} · {md.plural(entry.age_in_tiers, 'tier')}",
            md.plural(entry.occurrence_count, "time"),
            f"run {md.code(entry.first_seen_run, 100)}",
            last,
        ]
        if minor_table:
            row.append(_turns_major(entry, rules))
        rows.append(row)
    header = ["issue", "category", "open for", "seen", "first seen", "last seen"]
    if minor_table:
        header.append("counts as major")
    lines = md.table(header, "lllrll" + ("l" if minor_table else ""), rows)
    if len(entries) > LISTED:
        lines += ["", f"… and {len(entries) - LISTED} more, in Autopack's API."]
    return lines


def _turns_major(entry: BacklogEntry, rules: AgingRules) -> str:
    """When aging makes a minor issue major, if it keeps being seen."""
    runs = rules.minor_to_major_after_runs + 1 - entry.age_in_runs
    tiers = rules.minor_to_major_after_tiers + 1 - entry.age_in_tiers
    return f"after {md.plural(runs, 'more run')} or {md.plural(tiers, 'more tier')}"


def _parse(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _when(now_iso: str) -> str:
    moment = _parse(now_iso)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else now_iso


def _ago(entry: BacklogEntry, now_iso: str) -> str:
    """How long ago an issue was last seen: "today", "3 days ago" (its date if unknown)."""
    seen, now = _parse(entry.last_seen_at), _parse(now_iso)
    if seen is None or now is None:
        return entry.last_seen_at
    days = (now - seen).days
    if days <= 0:
        return "today"
    return "yesterday" if days == 1 else f"{days} days ago"
