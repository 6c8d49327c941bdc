"""Issues at the phase and run level, tier cleanliness and promotion eligibility.

Pure. Counts are always over DISTINCT `issue_key`s: seeing a key again only raises its
`occurrence_count`. Effective severity is never below base severity: an override (from aging,
see `app.domain.backlog`) can only raise a minor issue to major. The run index merges with
min/max/set-union only, so the order in which phases are added does not change the result.
The project-level backlog and aging live in `app.domain.backlog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.taxonomy import SafetyProfile

INDEX_VERSION = 1
MAX_EVIDENCE_REFS = 10
MAX_REF_CHARS = 300
SUCCESS_STATE = "DONE_SUCCESS"

_E = TypeVar("_E", bound=StrEnum)


class IssueState(StrEnum):
    """A phase's (or tier's) issue picture at a glance."""

    CLEAN = "clean"
    MINOR_ONLY = "minor_only"
    HAS_MAJOR = "has_major"


class TierStatus(StrEnum):
    """How a tier ended."""

    COMPLETE = "complete"
    FAILED = "failed"
    SKIPPED = "skipped"


class Cleanliness(StrEnum):
    """Whether a tier may be promoted."""

    CLEAN = "clean"
    NOT_CLEAN = "not_clean"


def max_severity(a: Severity, b: Severity) -> Severity:
    """The heavier of two severities."""
    return Severity.MAJOR if Severity.MAJOR in (a, b) else Severity.MINOR


def effective_for(key: str, base: Severity, effective: Mapping[str, Severity]) -> Severity:
    """The severity that counts for `key`: the base, raised (never lowered) by an override."""
    override = effective.get(key)
    return base if override is None else max_severity(base, override)


@dataclass(frozen=True)
class IssueCounts:
    """Distinct minor and major issue counts."""

    minor: int = 0
    major: int = 0

    @property
    def total(self) -> int:
        """Distinct issues of either severity."""
        return self.minor + self.major

    @property
    def state(self) -> IssueState:
        """`clean`, `minor_only` or `has_major`."""
        if self.major:
            return IssueState.HAS_MAJOR
        return IssueState.MINOR_ONLY if self.minor else IssueState.CLEAN


def _count(severities: Iterable[Severity]) -> IssueCounts:
    values = list(severities)
    major = sum(1 for s in values if s is Severity.MAJOR)
    return IssueCounts(minor=len(values) - major, major=major)


@dataclass(frozen=True)
class PhaseIssues:
    """The issue records of one phase, with distinct-key counts under effective severity."""

    phase_id: str
    tier_id: str
    records: tuple[IssueRecord, ...]
    effective: Mapping[str, Severity] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "effective", dict(self.effective))

    def severities(self) -> dict[str, Severity]:
        """Effective severity per distinct key (major wins when records of one key disagree)."""
        out: dict[str, Severity] = {}
        for r in self.records:
            sev = effective_for(r.issue_key, r.severity, self.effective)
            out[r.issue_key] = max_severity(out.get(r.issue_key, sev), sev)
        return out

    @property
    def counts(self) -> IssueCounts:
        """Distinct minor/major counts."""
        return _count(self.severities().values())

    @property
    def minor_count(self) -> int:
        """Distinct keys whose effective severity is minor."""
        return self.counts.minor

    @property
    def major_count(self) -> int:
        """Distinct keys whose effective severity is major."""
        return self.counts.major

    @property
    def issue_state(self) -> IssueState:
        """`clean`, `minor_only` or `has_major`."""
        return self.counts.state

    def to_json(self) -> dict[str, Any]:
        """The phase issue file's content."""
        counts = self.counts
        return {
            "phase_id": self.phase_id,
            "tier_id": self.tier_id,
            "minor_count": counts.minor,
            "major_count": counts.major,
            "issue_state": counts.state.value,
            "effective": {k: v.value for k, v in sorted(self.effective.items())},
            "records": [r.to_json() for r in sorted(self.records, key=lambda r: r.sort_key)],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PhaseIssues:
        """Parse `to_json()` output; raise ValueError on a bad shape."""
        _require_mapping(data, "phase issues")
        records = data.get("records", [])
        if not isinstance(records, list):
            raise ValueError("records must be a list")
        return cls(
            phase_id=_str(data, "phase_id"),
            tier_id=_str(data, "tier_id"),
            records=tuple(IssueRecord.from_json(r) for r in records),
            effective=_severity_map(data.get("effective", {})),
        )


@dataclass(frozen=True)
class IndexEntry:
    """One distinct issue in a run: where it was seen and how often."""

    issue_key: str
    base_severity: Severity
    effective_severity: Severity
    source: IssueSource
    category: str
    first_phase_index: int
    last_phase_index: int
    tiers: tuple[str, ...]
    phases: tuple[str, ...]
    occurrence_count: int
    evidence_refs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.issue_key:
            raise ValueError("issue_key must not be empty")
        if not 0 <= self.first_phase_index <= self.last_phase_index:
            raise ValueError("need 0 <= first_phase_index <= last_phase_index")
        if self.occurrence_count < 1:
            raise ValueError("occurrence_count must be at least 1")
        if max_severity(self.base_severity, self.effective_severity) != self.effective_severity:
            raise ValueError("effective_severity must not be below base_severity")

    def combine(self, other: IndexEntry) -> IndexEntry:
        """Both sightings of the same key as one entry (commutative and associative)."""
        if other.issue_key != self.issue_key:
            raise ValueError("cannot combine entries of different keys")
        # source and category come from the earliest sighting; ties broken by value, so
        # the result does not depend on the order of combination.
        first = min(self, other, key=lambda e: (e.first_phase_index, e.source.value, e.category))
        return IndexEntry(
            issue_key=self.issue_key,
            base_severity=max_severity(self.base_severity, other.base_severity),
            effective_severity=max_severity(self.effective_severity, other.effective_severity),
            source=first.source,
            category=first.category,
            first_phase_index=min(self.first_phase_index, other.first_phase_index),
            last_phase_index=max(self.last_phase_index, other.last_phase_index),
            tiers=tuple(sorted({*self.tiers, *other.tiers})),
            phases=tuple(sorted({*self.phases, *other.phases})),
            occurrence_count=self.occurrence_count + other.occurrence_count,
            evidence_refs=_bounded_refs([*self.evidence_refs, *other.evidence_refs]),
        )

    def to_json(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        return {
            "issue_key": self.issue_key,
            "base_severity": self.base_severity.value,
            "effective_severity": self.effective_severity.value,
            "source": self.source.value,
            "category": self.category,
            "first_phase_index": self.first_phase_index,
            "last_phase_index": self.last_phase_index,
            "tiers": list(self.tiers),
            "phases": list(self.phases),
            "occurrence_count": self.occurrence_count,
            "evidence_refs": list(self.evidence_refs),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IndexEntry:
        """Parse `to_json()` output; raise ValueError on a bad shape."""
        _require_mapping(data, "an index entry")
        return cls(
            issue_key=_str(data, "issue_key"),
            base_severity=_enum(Severity, data, "base_severity"),
            effective_severity=_enum(Severity, data, "effective_severity"),
            source=_enum(IssueSource, data, "source"),
            category=_str(data, "category"),
            first_phase_index=_int(data, "first_phase_index"),
            last_phase_index=_int(data, "last_phase_index"),
            tiers=tuple(sorted(set(_str_list(data, "tiers")))),
            phases=tuple(sorted(set(_str_list(data, "phases")))),
            occurrence_count=_int(data, "occurrence_count"),
            evidence_refs=_bounded_refs(_str_list(data, "evidence_refs")),
        )


def _bounded_refs(refs: Iterable[str]) -> tuple[str, ...]:
    # The smallest N distinct refs: bounded, and independent of the order sightings arrive in.
    return tuple(sorted({r[:MAX_REF_CHARS] for r in refs if r})[:MAX_EVIDENCE_REFS])


def _entry_for(
    record: IssueRecord,
    phase_index: int,
    tier_id: str,
    phase_id: str,
    effective: Mapping[str, Severity],
) -> IndexEntry:
    refs = list(record.evidence)
    if record.path:
        refs.append(f"{record.path}:{record.line}" if record.line else record.path)
    return IndexEntry(
        issue_key=record.issue_key,
        base_severity=record.severity,
        effective_severity=effective_for(record.issue_key, record.severity, effective),
        source=record.source,
        category=record.category,
        first_phase_index=phase_index,
        last_phase_index=phase_index,
        tiers=(tier_id,),
        phases=(phase_id,),
        occurrence_count=1,
        evidence_refs=_bounded_refs(refs),
    )


@dataclass(frozen=True)
class RunIssueIndex:
    """The run's issues by `issue_key` (run_issue_index.json); every change returns a new index."""

    entries: tuple[IndexEntry, ...] = ()
    _by_key: dict[str, IndexEntry] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        ordered = tuple(sorted(self.entries, key=lambda e: e.issue_key))
        by_key = {e.issue_key: e for e in ordered}
        if len(by_key) != len(ordered):
            raise ValueError("duplicate issue_key in the run index")
        object.__setattr__(self, "entries", ordered)
        object.__setattr__(self, "_by_key", by_key)

    def add(
        self,
        phase_index: int,
        tier_id: str,
        phase_id: str,
        records: Iterable[IssueRecord],
        effective: Mapping[str, Severity] | None = None,
    ) -> RunIssueIndex:
        """A new index with one phase's records added; each record is one sighting."""
        if phase_index < 0:
            raise ValueError("phase_index must be >= 0")
        if not tier_id or not phase_id:
            raise ValueError("tier_id and phase_id must not be empty")
        overrides = effective or {}
        merged = dict(self._by_key)
        for record in records:
            entry = _entry_for(record, phase_index, tier_id, phase_id, overrides)
            prior = merged.get(entry.issue_key)
            merged[entry.issue_key] = entry if prior is None else prior.combine(entry)
        return RunIssueIndex(tuple(merged.values()))

    def add_phase(self, phase_index: int, phase: PhaseIssues) -> RunIssueIndex:
        """`add` for a `PhaseIssues` value."""
        return self.add(phase_index, phase.tier_id, phase.phase_id, phase.records, phase.effective)

    def merge(self, other: RunIssueIndex) -> RunIssueIndex:
        """Both indexes as one (commutative and associative)."""
        merged = dict(self._by_key)
        for entry in other.entries:
            prior = merged.get(entry.issue_key)
            merged[entry.issue_key] = entry if prior is None else prior.combine(entry)
        return RunIssueIndex(tuple(merged.values()))

    def get(self, issue_key: str) -> IndexEntry | None:
        """The entry for a key, if the run saw it."""
        return self._by_key.get(issue_key)

    def __contains__(self, issue_key: object) -> bool:
        return issue_key in self._by_key

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def keys(self) -> tuple[str, ...]:
        """Distinct keys, sorted."""
        return tuple(self._by_key)

    @property
    def tier_ids(self) -> tuple[str, ...]:
        """Tiers in which any issue was seen, sorted."""
        return tuple(sorted({t for e in self.entries for t in e.tiers}))

    def counts(self, tier_id: str | None = None) -> IssueCounts:
        """Distinct keys by effective severity, for the run or for one tier."""
        return _count(
            e.effective_severity for e in self.entries if tier_id is None or tier_id in e.tiers
        )

    def to_json(self) -> dict[str, Any]:
        """run_issue_index.json."""
        counts = self.counts()
        return {
            "version": INDEX_VERSION,
            "minor_count": counts.minor,
            "major_count": counts.major,
            "tiers": {
                t: {"minor_count": c.minor, "major_count": c.major}
                for t in self.tier_ids
                for c in (self.counts(t),)
            },
            "entries": [e.to_json() for e in self.entries],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunIssueIndex:
        """Parse `to_json()` output (the counts are derived, not read); raise ValueError."""
        _require_mapping(data, "the run issue index")
        if data.get("version") != INDEX_VERSION:
            raise ValueError(f"unsupported run issue index version: {data.get('version')!r}")
        entries = data.get("entries")
        if not isinstance(entries, list):
            raise ValueError("entries must be a list")
        return cls(tuple(IndexEntry.from_json(e) for e in entries))


@dataclass(frozen=True)
class TierCaps:
    """Issue tolerances of one tier; `major_tolerance=None` means majors do not count."""

    minor_tolerance: int
    major_tolerance: int | None = None

    def __post_init__(self) -> None:
        if self.minor_tolerance < 0 or (
            self.major_tolerance is not None and self.major_tolerance < 0
        ):
            raise ValueError("tolerances must be >= 0")

    @classmethod
    def for_tier(cls, phase_count: int, safety_profile: SafetyProfile) -> TierCaps:
        """The playbook's defaults: 2 minors per phase (1 if safety-critical); 0 majors there."""
        if safety_profile is SafetyProfile.SAFETY_CRITICAL:
            return cls(minor_tolerance=phase_count, major_tolerance=0)
        return cls(minor_tolerance=2 * phase_count, major_tolerance=None)


@dataclass(frozen=True)
class TierSummary:
    """A tier's result: status, distinct counts, cap flags and cleanliness with reasons."""

    tier_id: str
    status: TierStatus
    minor_count: int
    major_count: int
    token_cap_hit: bool
    ci_cap_hit: bool
    minor_cap_hit: bool
    major_cap_hit: bool
    cleanliness: Cleanliness
    reasons: tuple[str, ...] = ()

    @property
    def promotion_blocked(self) -> bool:
        """True when this tier keeps the run from promotion."""
        return self.cleanliness is Cleanliness.NOT_CLEAN

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return {
            "tier_id": self.tier_id,
            "status": self.status.value,
            "minor_count": self.minor_count,
            "major_count": self.major_count,
            "token_cap_hit": self.token_cap_hit,
            "ci_cap_hit": self.ci_cap_hit,
            "minor_cap_hit": self.minor_cap_hit,
            "major_cap_hit": self.major_cap_hit,
            "cleanliness": self.cleanliness.value,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TierSummary:
        """Parse `to_json()` output; raise ValueError on a bad shape."""
        _require_mapping(data, "a tier summary")
        return cls(
            tier_id=_str(data, "tier_id"),
            status=_enum(TierStatus, data, "status"),
            minor_count=_int(data, "minor_count"),
            major_count=_int(data, "major_count"),
            token_cap_hit=_bool(data, "token_cap_hit"),
            ci_cap_hit=_bool(data, "ci_cap_hit"),
            minor_cap_hit=_bool(data, "minor_cap_hit"),
            major_cap_hit=_bool(data, "major_cap_hit"),
            cleanliness=_enum(Cleanliness, data, "cleanliness"),
            reasons=tuple(_str_list(data, "reasons")),
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summarise_tier(
    tier_id: str,
    status: TierStatus | str,
    index: RunIssueIndex,
    caps: TierCaps,
    token_cap_hit: bool = False,
    ci_cap_hit: bool = False,
) -> TierSummary:
    """Summarise a tier: not clean if it did not complete, hit a cap or exceeded a tolerance."""
    state = TierStatus(status)
    counts = index.counts(tier_id)
    minor_hit = counts.minor > caps.minor_tolerance
    major_hit = caps.major_tolerance is not None and counts.major > caps.major_tolerance
    reasons: list[str] = []
    if state is TierStatus.FAILED:
        reasons.append("the tier failed")
    elif state is TierStatus.SKIPPED:
        reasons.append("the tier was skipped")
    if minor_hit:
        reasons.append(f"{_plural(counts.minor, 'minor issue')}, tolerance {caps.minor_tolerance}")
    if major_hit:
        reasons.append(f"{_plural(counts.major, 'major issue')}, tolerance {caps.major_tolerance}")
    if token_cap_hit:
        reasons.append("the tier token cap was reached")
    if ci_cap_hit:
        reasons.append("the tier CI run cap was reached")
    return TierSummary(
        tier_id=tier_id,
        status=state,
        minor_count=counts.minor,
        major_count=counts.major,
        token_cap_hit=token_cap_hit,
        ci_cap_hit=ci_cap_hit,
        minor_cap_hit=minor_hit,
        major_cap_hit=major_hit,
        cleanliness=Cleanliness.NOT_CLEAN if reasons else Cleanliness.CLEAN,
        reasons=tuple(reasons),
    )


@dataclass(frozen=True)
class Promotion:
    """Whether the run may be promoted to the default branch, and why not."""

    eligible: bool
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The verdict as JSON-ready data."""
        return {"eligible": self.eligible, "reasons": list(self.reasons)}


def promotion_eligibility(
    terminal_state: str, tiers: Sequence[TierSummary], budget_failed: bool
) -> Promotion:
    """Eligible only if the run is DONE_SUCCESS, every tier is clean and no budget failed."""
    reasons: list[str] = []
    state = str(terminal_state)
    if state != SUCCESS_STATE:
        reasons.append(f"the run ended in {state}, not {SUCCESS_STATE}")
    if budget_failed:
        reasons.append("a run budget was exhausted")
    for tier in tiers:
        if tier.cleanliness is Cleanliness.NOT_CLEAN:
            detail = "; ".join(tier.reasons)
            reasons.append(f"tier {tier.tier_id} is not clean" + (f": {detail}" if detail else ""))
    return Promotion(eligible=not reasons, reasons=tuple(reasons))


# --- JSON parsing helpers (shared with app.domain.backlog) ---


def _require_mapping(data: object, what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object")


def _str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _bool(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def _str_list(data: Mapping[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return value


def _enum(kind: type[_E], data: Mapping[str, Any], name: str) -> _E:
    try:
        return kind(str(data.get(name)))
    except ValueError:
        raise ValueError(f"{name} must be one of {[m.value for m in kind]}") from None


def _severity_map(value: object) -> dict[str, Severity]:
    if not isinstance(value, Mapping):
        raise ValueError("effective must be an object of issue_key -> severity")
    try:
        return {str(k): Severity(str(v)) for k, v in value.items()}
    except ValueError:
        raise ValueError("effective severities must be minor or major") from None
