"""The per-repository "Autopack backlog" issue: every open issue by effective severity, with age.

In the spirit of Renovate's dependency dashboard: one issue per repository that Autopack rewrites
after every run and finds again by its hidden marker. Pure: the backlog in, markdown out.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from app.domain import report_markdown as md
from app.domain.backlog import AgingRules, Backlog, BacklogEntry, effective_severity
from app.domain.issue_record import Severity

BACKLOG_TITLE = "Autopack backlog"
LISTED = 300  # rows per severity; a bigger backlog is complete in the API
_UNSAFE = re.compile(r"[^A-Za-z0-9._/-]")


def backlog_marker(repository: str) -> str:
    """The hidden marker that identifies a repository's backlog issue."""
    return f"<!-- autopack:backlog:{_UNSAFE.sub('-', repository)[:200]} -->"


def render_backlog_issue(
    repository: str,
    backlog: Backlog,
    rules: AgingRules,
    now_iso: str,
    *,
    resolve_after_runs: int = 2,
) -> str:
    """The backlog issue's body: open issues, major (with aged minors) first, then minor."""
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
