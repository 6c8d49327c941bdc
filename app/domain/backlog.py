"""The per-repository issue backlog: aging across runs, effective severity, debt candidates.

Pure; the clock is passed in as an ISO-8601 string. The aging rule, kept deliberately simple:

* a key seen in a run ages: `age_in_runs += 1`, `age_in_tiers +=` the number of tiers of that
  run it was seen in, `occurrence_count +=` its sightings in the run; `last_seen_*` are updated
  and its unseen streak is reset. A new key enters with `age_in_runs = 1` and the tiers it was
  seen in.
* a key a failed debt-cleanup phase worked on and could not fix counts as seen in that phase's
  tier (it is still there), without a new sighting.
* a key not seen in a run does not age; after `resolve_after_runs` (default 2) consecutive runs
  without it, it is considered resolved and dropped.
* a minor issue OLDER than the thresholds (strictly more than `minor_to_major_after_runs` runs,
  or more than `minor_to_major_after_tiers` tiers) counts as major. The thresholds are the
  repository's (its ruleset's `aging`), kept with the backlog by the last run.

Applying the same run twice (a retried effect after a crash) returns the backlog unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from app.domain.issue_record import Severity
from app.domain.issues import (
    RunIssueIndex,
    _enum,
    _int,
    _require_mapping,
    _str,
    max_severity,
)

BACKLOG_VERSION = 1


@dataclass(frozen=True)
class AgingRules:
    """When a minor issue has been open long enough to count as major."""

    minor_to_major_after_runs: int = 3
    minor_to_major_after_tiers: int = 2

    def __post_init__(self) -> None:
        if self.minor_to_major_after_runs < 0 or self.minor_to_major_after_tiers < 0:
            raise ValueError("aging thresholds must be >= 0")


@dataclass(frozen=True)
class BacklogEntry:
    """One open issue of a repository, with its age."""

    issue_key: str
    category: str
    base_severity: Severity
    age_in_runs: int
    age_in_tiers: int
    occurrence_count: int
    first_seen_run: str
    last_seen_run: str
    last_seen_at: str
    unseen_runs: int = 0  # consecutive runs since last seen

    def __post_init__(self) -> None:
        if not self.issue_key or not self.category:
            raise ValueError("issue_key and category must not be empty")
        if min(self.age_in_runs, self.age_in_tiers, self.occurrence_count, self.unseen_runs) < 0:
            raise ValueError("ages and counts must be >= 0")
        _check_iso(self.last_seen_at)

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        return {
            "issue_key": self.issue_key,
            "category": self.category,
            "base_severity": self.base_severity.value,
            "age_in_runs": self.age_in_runs,
            "age_in_tiers": self.age_in_tiers,
            "occurrence_count": self.occurrence_count,
            "first_seen_run": self.first_seen_run,
            "last_seen_run": self.last_seen_run,
            "last_seen_at": self.last_seen_at,
            "unseen_runs": self.unseen_runs,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BacklogEntry:
        """Parse `to_json()` output; raise ValueError on a bad shape."""
        _require_mapping(data, "a backlog entry")
        return cls(
            issue_key=_str(data, "issue_key"),
            category=_str(data, "category"),
            base_severity=_enum(Severity, data, "base_severity"),
            age_in_runs=_int(data, "age_in_runs"),
            age_in_tiers=_int(data, "age_in_tiers"),
            occurrence_count=_int(data, "occurrence_count"),
            first_seen_run=_str(data, "first_seen_run"),
            last_seen_run=_str(data, "last_seen_run"),
            last_seen_at=_str(data, "last_seen_at"),
            unseen_runs=_int(data, "unseen_runs") if "unseen_runs" in data else 0,
        )


def _check_iso(value: str) -> None:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None


TopBy = Literal["runs", "tiers", "occurrences"]


@dataclass(frozen=True)
class Backlog:
    """A repository's open issues by key; `last_run` is the last run applied to it and `aging`
    the repository's thresholds as that run had them (so readers need not load the ruleset)."""

    entries: tuple[BacklogEntry, ...] = ()
    last_run: str | None = None
    aging: AgingRules = field(default_factory=AgingRules)
    _by_key: dict[str, BacklogEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.entries, key=lambda e: e.issue_key))
        by_key = {e.issue_key: e for e in ordered}
        if len(by_key) != len(ordered):
            raise ValueError("duplicate issue_key in the backlog")
        object.__setattr__(self, "entries", ordered)
        object.__setattr__(self, "_by_key", by_key)

    def get(self, issue_key: str) -> BacklogEntry | None:
        """The entry for a key, if open."""
        return self._by_key.get(issue_key)

    def __contains__(self, issue_key: object) -> bool:
        return issue_key in self._by_key

    def __len__(self) -> int:
        return len(self.entries)

    def top(self, by: TopBy, n: int) -> tuple[BacklogEntry, ...]:
        """The `n` entries with the most runs, tiers or occurrences (ties by key)."""

        def metric(e: BacklogEntry) -> int:
            if by == "runs":
                return e.age_in_runs
            return e.age_in_tiers if by == "tiers" else e.occurrence_count

        return tuple(sorted(self.entries, key=lambda e: (-metric(e), e.issue_key))[: max(n, 0)])

    def to_json(self) -> dict[str, Any]:
        """The backlog as JSON-ready data."""
        return {
            "version": BACKLOG_VERSION,
            "last_run": self.last_run,
            "aging": {
                "minor_to_major_after_runs": self.aging.minor_to_major_after_runs,
                "minor_to_major_after_tiers": self.aging.minor_to_major_after_tiers,
            },
            "entries": [e.to_json() for e in self.entries],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Backlog:
        """Parse `to_json()` output; raise ValueError on a bad shape."""
        _require_mapping(data, "the backlog")
        if data.get("version") != BACKLOG_VERSION:
            raise ValueError(f"unsupported backlog version: {data.get('version')!r}")
        last_run = data.get("last_run")
        if last_run is not None:
            last_run = _str(data, "last_run")
        entries = data.get("entries")
        if not isinstance(entries, list):
            raise ValueError("entries must be a list")
        aging = AgingRules()  # a backlog stored before thresholds were kept: the defaults
        if "aging" in data:
            rules = data["aging"]
            _require_mapping(rules, "aging")
            aging = AgingRules(
                _int(rules, "minor_to_major_after_runs"), _int(rules, "minor_to_major_after_tiers")
            )
        return cls(tuple(BacklogEntry.from_json(e) for e in entries), last_run, aging)


def effective_severity(entry: BacklogEntry, rules: AgingRules) -> Severity:
    """Major if the base is major or a minor is older than either aging threshold."""
    aged = (
        entry.age_in_runs > rules.minor_to_major_after_runs
        or entry.age_in_tiers > rules.minor_to_major_after_tiers
    )
    return Severity.MAJOR if aged else entry.base_severity


def effective_overrides(backlog: Backlog, rules: AgingRules) -> dict[str, Severity]:
    """The keys whose effective severity differs from their base (aged minors -> major)."""
    out: dict[str, Severity] = {}
    for entry in backlog.entries:
        sev = effective_severity(entry, rules)
        if sev is not entry.base_severity:
            out[entry.issue_key] = sev
    return out


def update_backlog(
    backlog: Backlog,
    run_index: RunIssueIndex,
    run_id: str,
    now_iso: str,
    *,
    aging: AgingRules | None = None,
    still_open: Mapping[str, str] | None = None,
    resolve_after_runs: int = 2,
) -> Backlog:
    """The backlog after a run: seen keys age, new keys enter, long-unseen keys are dropped.

    `still_open` maps the keys a failed debt-cleanup phase could not fix to that phase's tier;
    `aging` (default: the backlog's own) is kept with the result.
    """
    if not run_id:
        raise ValueError("run_id must not be empty")
    if resolve_after_runs < 1:
        raise ValueError("resolve_after_runs must be >= 1")
    _check_iso(now_iso)
    if backlog.last_run == run_id:
        return backlog
    unfixed = still_open or {}
    kept: list[BacklogEntry] = []
    for entry in backlog.entries:
        seen = run_index.get(entry.issue_key)
        tried = unfixed.get(entry.issue_key)
        if seen is None and tried is None:
            if entry.unseen_runs + 1 < resolve_after_runs:
                kept.append(replace(entry, unseen_runs=entry.unseen_runs + 1))
            continue
        tiers = {*(seen.tiers if seen else ()), *((tried,) if tried else ())}
        kept.append(
            replace(
                entry,
                base_severity=max_severity(
                    entry.base_severity, seen.base_severity if seen else entry.base_severity
                ),
                age_in_runs=entry.age_in_runs + 1,
                age_in_tiers=entry.age_in_tiers + len(tiers),
                occurrence_count=entry.occurrence_count + (seen.occurrence_count if seen else 0),
                last_seen_run=run_id,
                last_seen_at=now_iso,
                unseen_runs=0,
            )
        )
    kept.extend(
        BacklogEntry(
            issue_key=seen.issue_key,
            category=seen.category,
            base_severity=seen.base_severity,
            age_in_runs=1,
            age_in_tiers=len(seen.tiers),
            occurrence_count=seen.occurrence_count,
            first_seen_run=run_id,
            last_seen_run=run_id,
            last_seen_at=now_iso,
        )
        for seen in run_index.entries
        if seen.issue_key not in backlog
    )
    return Backlog(tuple(kept), last_run=run_id, aging=aging or backlog.aging)


def debt_candidates(
    backlog: Backlog, rules: AgingRules, max_issues: int
) -> tuple[BacklogEntry, ...]:
    """Minor issues that aging made major, oldest first, at most `max_issues`."""
    aged: Iterable[BacklogEntry] = (
        e
        for e in backlog.entries
        if e.base_severity is Severity.MINOR and effective_severity(e, rules) is Severity.MAJOR
    )
    ordered = sorted(
        aged, key=lambda e: (-e.age_in_runs, -e.age_in_tiers, -e.occurrence_count, e.issue_key)
    )
    return tuple(ordered[: max(max_issues, 0)])
