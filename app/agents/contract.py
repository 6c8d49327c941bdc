"""What Autopack hands a Builder or Auditor and what it gets back, as plain data.

The JSON shapes here are the pinned Builder contract (DESIGN.md, docs/builders.md). Parsing a
result file never raises: whatever a builder wrote, we get typed values plus a list of recorded
problems the caller can turn into issues.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from app.domain.effects import BudgetsLeft
from app.domain.events import AuditorVerdict, BuilderOutcome, Finding
from app.domain.issue_record import Severity

# A builder claiming more than this for one attempt is lying or broken; we clamp and record it.
MAX_REPORTED_TOKENS = 10_000_000
MAX_SUMMARY_CHARS = 4000
MAX_ISSUES = 50
MAX_EVIDENCE_CHARS = 2000
SEVERITIES = ("minor", "major")


@dataclass(frozen=True)
class PhaseSpec:
    """One builder attempt's task (the AUTOPACK_PHASE_FILE content)."""

    run_id: str
    phase_id: str
    tier_id: str
    title: str
    description: str
    task_category: str
    complexity: str
    builder_mode: str
    attempt: int
    budgets_left: BudgetsLeft
    feedback: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The phase as JSON-ready data (field by field in docs/builders.md)."""
        data = asdict(self)
        data["feedback"] = list(self.feedback)
        data["contract_version"] = 1
        return data

    def to_json(self) -> str:
        """The AUTOPACK_PHASE_FILE content."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_prompt(self) -> str:
        """The AUTOPACK_PROMPT_FILE content: the same task as a markdown prompt."""
        budgets = self.budgets_left
        lines = [
            f"# {self.title}",
            "",
            self.description.strip() or "(no description)",
            "",
            "## Phase",
            f"- run: {self.run_id}, tier: {self.tier_id}, phase: {self.phase_id}",
            f"- task category: {self.task_category}, complexity: {self.complexity}",
            f"- builder mode: {self.builder_mode}",
            f"- attempt: {self.attempt} ({budgets.builder_attempts} attempts left after this one)",
            f"- budget left: {budgets.tokens} tokens, {budgets.seconds} seconds",
        ]
        if self.feedback:
            lines += ["", "## Feedback on earlier attempts", ""]
            lines += [f"- {item}" for item in self.feedback]
        lines += [
            "",
            "## Rules",
            "- Edit files in the current directory only; it is the repository's working tree.",
            "- Do not commit, push or create branches: Autopack commits your change.",
            "- Keep the change to what this phase asks for.",
        ]
        return "\n".join(lines) + "\n"


def finding_json(found: Finding) -> dict[str, str | int | None]:
    """A finding in the contract's issue shape (`evidence` is its message)."""
    return {
        "issue_key": found.issue_key,
        "severity": found.severity.value,
        "category": found.category,
        "evidence": found.message,
        "path": found.path,
        "line": found.line,
    }


@dataclass(frozen=True)
class BuilderResult:
    """What one builder attempt produced (the change itself is computed from the workspace)."""

    outcome: BuilderOutcome
    exit_code: int | None = None
    tokens_used: int = 0
    summary: str = ""
    issues: tuple[Finding, ...] = ()
    stdout_tail: str = ""
    stderr_tail: str = ""
    # One sentence a maintainer can read; None when the attempt is ok.
    failure_reason: str | None = None
    duration_seconds: float = 0.0
    # Things wrong with how the builder behaved that did not fail the attempt by themselves.
    problems: tuple[str, ...] = ()


class Builder(Protocol):
    """A coding agent backend: does one phase attempt in a workspace."""

    async def run(self, spec: PhaseSpec, workspace: Path) -> BuilderResult:
        """Run one attempt; never raises for anything the builder did."""
        ...


@dataclass(frozen=True)
class AuditRequest:
    """What an auditor reviews."""

    spec: PhaseSpec
    diff: str
    ci_failures: tuple[str, ...] = ()
    gate_findings: tuple[Finding, ...] = ()
    ci_output: str = ""  # what the failing checks said (output text, status descriptions)
    builder_log: str = ""  # the tail of the last builder attempt's stdout/stderr
    profile: str = "orchestrator_review"

    def to_dict(self, instructions: str) -> dict[str, Any]:
        """The AUTOPACK_AUDIT_FILE content as data."""
        return {
            "contract_version": 1,
            "profile": self.profile,
            "instructions": instructions,
            "phase": self.spec.to_dict(),
            "diff": self.diff,
            "ci_failures": list(self.ci_failures),
            "gate_findings": [finding_json(issue) for issue in self.gate_findings],
            "ci_output": self.ci_output,
            "builder_log": self.builder_log,
        }


@dataclass(frozen=True)
class AuditResult:
    """An auditor's answer. A patch maps repository paths to new text, or None to delete."""

    verdict: AuditorVerdict
    issues: tuple[Finding, ...] = ()
    patch: Mapping[str, str | None] | None = None
    tokens_used: int = 0
    summary: str = ""
    # Set when the auditor could not give a verdict at all (the verdict is then `reject`).
    failure_reason: str | None = None
    problems: tuple[str, ...] = ()
    stdout_tail: str = ""
    stderr_tail: str = ""


class Auditor(Protocol):
    """A reviewer backend: reads the request (and the workspace) and returns a verdict."""

    async def review(self, request: AuditRequest, workspace: Path) -> AuditResult:
        """Review once; never raises for anything the auditor did."""
        ...


@dataclass
class ParsedReport:
    """The common part of a builder's or auditor's result JSON, after validation."""

    tokens_used: int = 0
    summary: str = ""
    issues: list[Finding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_tokens(value: object, report: ParsedReport) -> None:
    """Validate and clamp a reported token count into `report`."""
    if value is None:
        report.problems.append("result file has no tokens_used; counted as 0")
        return
    if isinstance(value, bool) or not isinstance(value, int):
        report.problems.append(f"tokens_used is not an integer ({type(value).__name__}); 0 used")
        return
    if value < 0:
        report.problems.append(f"tokens_used was negative ({value}); counted as 0")
        return
    if value > MAX_REPORTED_TOKENS:
        report.problems.append(
            f"tokens_used was absurd ({value}); counted as {MAX_REPORTED_TOKENS}"
        )
        value = MAX_REPORTED_TOKENS
    report.tokens_used = value


def parse_issues(value: object, report: ParsedReport) -> None:
    """Validate suggested issues into `report`, dropping (and recording) bad entries."""
    if value is None:
        return
    if not isinstance(value, list):
        report.problems.append("issues is not a list; ignored")
        return
    if len(value) > MAX_ISSUES:
        report.problems.append(f"{len(value)} issues reported; only the first {MAX_ISSUES} kept")
    for index, item in enumerate(value[:MAX_ISSUES]):
        keys = ("issue_key", "severity", "category", "evidence")
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in keys):
            report.problems.append(f"issues[{index}] needs string {', '.join(keys)}; dropped")
            continue
        if item["severity"] not in SEVERITIES or not item["issue_key"].strip():
            report.problems.append(f"issues[{index}] has a bad issue_key or severity; dropped")
            continue
        path, line = _location(item, index, report)
        report.issues.append(
            Finding(
                issue_key=item["issue_key"].strip()[:200],
                severity=Severity(item["severity"]),
                category=item["category"][:100],
                path=path,
                line=line,
                message=item["evidence"][:MAX_EVIDENCE_CHARS],
            )
        )


def _location(
    item: dict[str, Any], index: int, report: ParsedReport
) -> tuple[str | None, int | None]:
    """The optional `path`/`line` of an issue: a plain relative path and a positive line."""
    path, line = item.get("path"), item.get("line")
    if path is not None:
        parts = PurePosixPath(path).parts if isinstance(path, str) else ()
        if not parts or len(path) > 1024 or path.startswith("/") or ".." in parts:
            report.problems.append(f"issues[{index}].path is not a relative path; dropped")
            return None, None
    if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 1):
        report.problems.append(f"issues[{index}].line is not a positive integer; dropped")
        line = None
    return path, line if path is not None else None


def parse_summary(value: object, report: ParsedReport) -> None:
    """Validate the free-text summary into `report`."""
    if value is None:
        return
    if not isinstance(value, str):
        report.problems.append("summary is not a string; ignored")
        return
    report.summary = value[:MAX_SUMMARY_CHARS]


def load_result_object(raw: bytes | None, report: ParsedReport) -> dict[str, Any] | None:
    """Decode a result file's bytes into a JSON object, recording why when it cannot."""
    if raw is None:
        report.problems.append("result file missing; tokens counted as 0")
        return None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        report.problems.append(f"result file malformed: {type(exc).__name__}")
        return None
    if not isinstance(data, dict):
        report.problems.append("result file malformed: top level is not a JSON object")
        return None
    return data


def parse_builder_report(raw: bytes | None) -> ParsedReport:
    """Parse AUTOPACK_RESULT_FILE bytes (None when the file is missing); never raises."""
    report = ParsedReport()
    data = load_result_object(raw, report)
    if data is None:
        return report
    parse_tokens(data.get("tokens_used"), report)
    parse_summary(data.get("summary"), report)
    parse_issues(data.get("issues"), report)
    return report
