"""The playbook's phase-level issue record, shared by the gate, probes, builders and the engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How much an issue weighs against the budgets (before aging)."""

    MINOR = "minor"
    MAJOR = "major"


class IssueSource(StrEnum):
    """Who noticed the issue."""

    TEST = "test"
    PROBE = "probe"
    CI = "ci"
    STATIC_CHECK = "static_check"
    GATE = "gate"
    BUILDER = "builder"


@dataclass(frozen=True)
class IssueRecord:
    """One logical problem seen in a phase; `issue_key` is stable across attempts and runs."""

    issue_key: str
    severity: Severity
    category: str
    source: IssueSource
    evidence: tuple[str, ...]
    path: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if not self.issue_key:
            raise ValueError("issue_key must not be empty")
        if not self.category:
            raise ValueError("category must not be empty")

    @property
    def sort_key(self) -> tuple[str, str, int, str, tuple[str, ...]]:
        """A total order for listing findings, so output never depends on input order."""
        return (self.issue_key, self.path or "", self.line or 0, self.category, self.evidence)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (the builder result file's issue shape, plus source)."""
        return {
            "issue_key": self.issue_key,
            "severity": self.severity.value,
            "category": self.category,
            "source": self.source.value,
            "evidence": list(self.evidence),
            "path": self.path,
            "line": self.line,
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], *, default_source: IssueSource | None = None
    ) -> IssueRecord:
        """Parse `to_json()` output (or a builder's issue); raise ValueError on a bad shape."""
        if not isinstance(data, Mapping):
            raise ValueError("an issue must be a JSON object")
        key = _string(data, "issue_key")
        category = _string(data, "category")
        try:
            severity = Severity(str(data.get("severity")))
        except ValueError:
            raise ValueError(f"severity must be one of {[s.value for s in Severity]}") from None
        raw_source = data.get("source")
        if raw_source is None and default_source is not None:
            source = default_source
        else:
            try:
                source = IssueSource(str(raw_source))
            except ValueError:
                allowed = [s.value for s in IssueSource]
                raise ValueError(f"source must be one of {allowed}") from None
        evidence = data.get("evidence", ())
        if isinstance(evidence, str):
            evidence = (evidence,)
        if not isinstance(evidence, list | tuple) or not all(isinstance(e, str) for e in evidence):
            raise ValueError("evidence must be a string or a list of strings")
        path = data.get("path")
        if path is not None and not isinstance(path, str):
            raise ValueError("path must be a string or null")
        line = data.get("line")
        if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 1):
            raise ValueError("line must be a positive integer or null")
        return cls(key, severity, category, source, tuple(evidence), path, line)


def _string(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value
