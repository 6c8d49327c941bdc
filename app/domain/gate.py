"""The gate: checks a builder's change against the frozen strategy before anything is pushed.

Pure: a `Change` and a `GatePolicy` in, a `GateVerdict` out. Besides its own rules it runs the
test-integrity rules (`test_integrity.py`), whose findings ask for a review before the push.
Each violation is an `IssueRecord` whose `issue_key` names the logical problem (never counts,
lines or secrets), so the same problem seen on the next attempt or run de-duplicates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.paths import glob_match, key_path, show_path
from app.domain.secrets_scan import scan
from app.domain.test_integrity import IntegrityPolicy, IntegrityRule, find_weakening

# What CI runs: the workflows and the repository's own actions they call.
WORKFLOW_GLOBS: tuple[str, ...] = (".github/workflows/**", ".github/actions/**")
# `.autonomous_runs/` is written only by Autopack itself, never by a builder; the ruleset and
# the code owners decide what Autopack and reviewers may do, so no phase changes them.
ALWAYS_PROTECTED: tuple[str, ...] = (
    ".git/**",
    ".autonomous_runs/**",
    ".github/autopack.yml",
    "/CODEOWNERS",
    ".github/CODEOWNERS",
    "docs/CODEOWNERS",
)
MAX_EVIDENCE = 10
# Findings that do not block a push but need a review before it (the test-integrity rules).
REVIEW_RULES: frozenset[str] = frozenset(IntegrityRule)


class Rule(StrEnum):
    """A gate rule; also the `category` of the issue records it produces."""

    EMPTY_CHANGE = "empty_change"
    PROTECTED_PATH = "protected_path"
    UNSAFE_PATH = "unsafe_path"
    TOO_MANY_FILES = "too_many_files"
    TOO_MANY_LINES = "too_many_lines"
    BINARY_FILE = "binary_file"
    FILE_TOO_LARGE = "file_too_large"
    SYMLINK = "symlink"
    SYMLINK_ESCAPE = "symlink_escape"
    SUBMODULE = "submodule"
    SECRET = "secret"  # noqa: S105 (a rule name, not a secret)
    POSSIBLE_PASSWORD = "possible_password"  # noqa: S105
    PROBE_FAILED = "probe_failed"


class Decision(StrEnum):
    """What the supervisor does with the attempt: push it (after a review), retry, or end."""

    PASS = "pass"  # noqa: S105
    REVIEW = "review"  # push only after a review (the auditor's, or a person's on the PR)
    RETRY = "retry"
    FAIL_POLICY = "fail_policy"


DEFAULT_FAIL_ON: frozenset[Rule] = frozenset(
    {Rule.PROTECTED_PATH, Rule.UNSAFE_PATH, Rule.SYMLINK_ESCAPE, Rule.SECRET}
)

# (max_files, max_lines) per builder mode; the strategy compiler may override either.
MODE_LIMITS: dict[str, tuple[int, int]] = {
    "tweak_light": (2, 200),
    "scaffolding_heavy": (30, 3000),
    "refactor_heavy": (60, 5000),
    "schema_heavy": (20, 2000),
}


@dataclass(frozen=True)
class GatePolicy:
    """The part of the frozen strategy the gate reads."""

    max_files: int = 30
    max_lines: int = 3000
    protected_globs: tuple[str, ...] = ()
    allow_workflow_changes: bool = False
    allow_binary: bool = False
    max_file_bytes: int = 1024 * 1024
    allow_symlinks: bool = False
    allow_submodules: bool = False
    # Rules whose major findings end the run; a test-integrity finding asks for a review; any
    # other major finding asks for a retry.
    fail_on: frozenset[Rule] = field(default=DEFAULT_FAIL_ON)
    integrity: IntegrityPolicy = field(default_factory=IntegrityPolicy)

    def __post_init__(self) -> None:
        for name in ("max_files", "max_lines", "max_file_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if any(not glob.strip("/") for glob in self.protected_globs):
            raise ValueError("protected_globs must not contain empty patterns")
        object.__setattr__(self, "protected_globs", tuple(self.protected_globs))
        object.__setattr__(self, "fail_on", frozenset(Rule(rule) for rule in self.fail_on))

    @classmethod
    def for_mode(cls, mode: str, **overrides: Any) -> GatePolicy:
        """The default policy for a builder mode, with any field overridden by keyword."""
        if mode not in MODE_LIMITS:
            expected = ", ".join(sorted(MODE_LIMITS))
            raise ValueError(f"unknown builder mode {mode!r}; expected one of {expected}")
        max_files, max_lines = MODE_LIMITS[mode]
        return dataclasses.replace(cls(max_files=max_files, max_lines=max_lines), **overrides)

    @property
    def protected(self) -> tuple[str, ...]:
        """Every protected glob in force: the built-in ones plus the configured extras."""
        workflows = () if self.allow_workflow_changes else WORKFLOW_GLOBS
        return (*workflows, *ALWAYS_PROTECTED, *self.protected_globs)


@dataclass(frozen=True)
class GateVerdict:
    """The gate's answer: a decision and the findings behind it, in a stable order."""

    decision: Decision
    findings: tuple[IssueRecord, ...]

    @property
    def passed(self) -> bool:
        """True when the change may be pushed."""
        return self.decision is Decision.PASS


def evaluate(
    change: Change, policy: GatePolicy, probe_findings: Iterable[IssueRecord] = ()
) -> GateVerdict:
    """Check `change` against `policy`; probe findings are folded into the same verdict."""
    findings: list[IssueRecord] = list(probe_findings)
    if change.empty:
        findings.append(_finding(Rule.EMPTY_CHANGE, "the builder changed no files"))
    else:
        findings.extend(_size_findings(change, policy))
        for file in change.files:
            findings.extend(_file_findings(file, policy))
        safe = [file for file in change.files if unsafe_path_reason(file.path) is None]
        findings.extend(find_weakening(safe, policy.integrity))
    merged = _merge(findings)
    return GateVerdict(_decide(merged, policy), merged)


def decision_for(record: IssueRecord, policy: GatePolicy) -> Decision:
    """The decision one finding asks for: minor ones never block the push."""
    if record.severity is Severity.MINOR:
        return Decision.PASS
    if record.category in policy.fail_on:
        return Decision.FAIL_POLICY
    return Decision.REVIEW if record.category in REVIEW_RULES else Decision.RETRY


def _size_findings(change: Change, policy: GatePolicy) -> list[IssueRecord]:
    findings = []
    count = len(change.files)
    if count > policy.max_files:
        evidence = f"{count} files changed; the limit for this phase is {policy.max_files}"
        findings.append(_finding(Rule.TOO_MANY_FILES, evidence))
    lines = change.lines_changed
    if lines > policy.max_lines:
        evidence = f"{lines} lines changed; the limit for this phase is {policy.max_lines}"
        findings.append(_finding(Rule.TOO_MANY_LINES, evidence))
    return findings


def _file_findings(file: FileChange, policy: GatePolicy) -> list[IssueRecord]:
    path = file.path
    problem = unsafe_path_reason(path)
    if problem is not None:
        # Nothing else about a path that is not inside the repository is worth reporting.
        return [_finding(Rule.UNSAFE_PATH, f"{show_path(path)}: {problem}", path)]
    findings = []
    matched = [glob for glob in policy.protected if glob_match(glob, path)]
    if matched:
        evidence = f"{show_path(path)} is protected (matches {matched[0]!r}); {file.kind.value}"
        findings.append(_finding(Rule.PROTECTED_PATH, evidence, path))
    if file.kind is ChangeKind.DELETED:
        return findings  # removing a file adds nothing to check
    regular = file.entry_type in (EntryType.FILE, EntryType.EXECUTABLE)
    if regular and file.binary and not policy.allow_binary:
        findings.append(_finding(Rule.BINARY_FILE, f"{show_path(path)} is a binary file", path))
    if file.size > policy.max_file_bytes:
        evidence = f"{show_path(path)} is {file.size} bytes; the cap is {policy.max_file_bytes}"
        findings.append(_finding(Rule.FILE_TOO_LARGE, evidence, path))
    if file.entry_type is EntryType.SYMLINK:
        findings.extend(_symlink_findings(file, policy))
    elif file.entry_type is EntryType.SUBMODULE:
        if not policy.allow_submodules:
            evidence = f"{show_path(path)} is a submodule; submodules are not allowed"
            findings.append(_finding(Rule.SUBMODULE, evidence, path))
    elif file.content is not None:
        findings.extend(_secret_findings(file, policy))
    return findings


def unsafe_path_reason(path: str) -> str | None:
    """Why `path` does not name a place inside the repository's work tree, or None if it does."""
    if not path:
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    if path.startswith(("/", "\\")) or _drive_letter(path):
        return "absolute path"
    # Backslashes are separators on Windows checkouts, so they count as one here.
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            return "empty or '.' path component"
        if part == "..":
            return "'..' path component"
        # Windows and macOS ignore case and trailing dots/spaces: `.GIT.` is `.git` there.
        if part.rstrip(". ").lower() in (".git", "git~1"):
            return "'.git' path component"
    return None


def _symlink_findings(file: FileChange, policy: GatePolicy) -> list[IssueRecord]:
    path = file.path
    escape = _symlink_escape_reason(path, file.content or b"")
    if escape is not None:
        evidence = f"{show_path(path)} is a symlink {escape}"
        return [_finding(Rule.SYMLINK_ESCAPE, evidence, path)]
    if policy.allow_symlinks:
        return []
    evidence = f"{show_path(path)} is a symlink; symlinks are not allowed"
    return [_finding(Rule.SYMLINK, evidence, path)]


def _symlink_escape_reason(path: str, target_bytes: bytes) -> str | None:
    try:
        target = target_bytes.decode("utf-8")
    except UnicodeDecodeError:
        return "whose target is not UTF-8"
    if not target or "\x00" in target:
        return "with an empty or NUL-containing target"
    if target.startswith(("/", "\\")) or _drive_letter(target):
        return "to an absolute path"
    stack = path.split("/")[:-1]
    for part in target.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return "pointing outside the repository"
            stack.pop()
        elif part.rstrip(". ").lower() == ".git":
            return "pointing into .git"
        else:
            stack.append(part)
    return None


def _secret_findings(file: FileChange, policy: GatePolicy) -> list[IssueRecord]:
    findings = []
    # The whole file: a secret past any prefix would otherwise ship unseen.
    for hit in scan(file.content or b""):
        rule = Rule.POSSIBLE_PASSWORD if hit.kind.generic else Rule.SECRET
        evidence = f"{show_path(file.path)}:{hit.line}: {hit.kind.value} {hit.masked}"
        severity = Severity.MINOR if hit.kind.generic else Severity.MAJOR
        key = f"gate:{rule.value}:{hit.kind.value}:{key_path(file.path)}"
        findings.append(
            IssueRecord(
                key, severity, rule.value, IssueSource.GATE, (evidence,), file.path, hit.line
            )
        )
    return findings


def _finding(rule: Rule, evidence: str, path: str | None = None) -> IssueRecord:
    key = f"gate:{rule.value}" if path is None else f"gate:{rule.value}:{key_path(path)}"
    return IssueRecord(key, Severity.MAJOR, rule.value, IssueSource.GATE, (evidence,), path)


def _merge(findings: list[IssueRecord]) -> tuple[IssueRecord, ...]:
    """One record per issue_key (the same logical problem), ordered by a total key."""
    by_key: dict[str, list[IssueRecord]] = {}
    for record in sorted(findings, key=lambda r: r.sort_key):
        by_key.setdefault(record.issue_key, []).append(record)
    merged = []
    for records in by_key.values():
        first = records[0]
        if len(records) > 1:
            evidence = tuple(dict.fromkeys(e for r in records for e in r.evidence))
            severe = any(r.severity is Severity.MAJOR for r in records)
            first = dataclasses.replace(
                first,
                severity=Severity.MAJOR if severe else first.severity,
                evidence=evidence,
            )
        if len(first.evidence) > MAX_EVIDENCE:
            hidden = len(first.evidence) - MAX_EVIDENCE
            evidence = (*first.evidence[:MAX_EVIDENCE], f"… and {hidden} more")
            first = dataclasses.replace(first, evidence=evidence)
        merged.append(first)
    return tuple(merged)


def _decide(findings: Sequence[IssueRecord], policy: GatePolicy) -> Decision:
    decisions = {decision_for(record, policy) for record in findings}
    for decision in (Decision.FAIL_POLICY, Decision.RETRY, Decision.REVIEW):
        if decision in decisions:
            return decision
    return Decision.PASS


def _drive_letter(path: str) -> bool:
    return len(path) > 1 and path[1] == ":" and path[0].isascii() and path[0].isalpha()
