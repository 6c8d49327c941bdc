"""Evidence an attempt leaves for the auditor and for people: its diff, logs, findings, CI output.

Pure: capping and rendering only. The executor records evidence as attempts happen
(app/store/evidence.py); the auditor's request and the incident pack read the latest of each kind.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.domain.change import Change, ChangeKind, EntryType
from app.domain.events import Finding
from app.domain.issue_record import Severity


class EvidenceKind(StrEnum):
    """What a piece of evidence is."""

    DIFF = "diff"  # the attempt's change against the branch head, as a unified diff
    BUILDER_LOG = "builder_log"  # the builder's stdout and stderr tails
    GATE = "gate"  # the gate's findings, one per line
    CI_OUTPUT = "ci_output"  # what the failing checks and statuses said


# Diffs keep their beginning (the first files tell what the change is); logs keep their end.
CAPS: dict[EvidenceKind, int] = {
    EvidenceKind.DIFF: 64_000,
    EvidenceKind.BUILDER_LOG: 16_000,
    EvidenceKind.GATE: 8_000,
    EvidenceKind.CI_OUTPUT: 8_000,
}
_KEEP_HEAD = frozenset({EvidenceKind.DIFF, EvidenceKind.GATE})
MAX_GATE_FINDINGS = 20
_MAX_FINDING_MESSAGE = 240


def capped(kind: EvidenceKind, text: str) -> str:
    """`text` within the cap of its kind, saying how much was cut."""
    limit = CAPS[kind]
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if kind in _KEEP_HEAD:
        return f"{text[:limit]}\n[... {cut} more characters cut ...]\n"
    return f"[... {cut} earlier characters cut ...]\n{text[-limit:]}"


@dataclass(frozen=True)
class PhaseEvidence:
    """The latest evidence of each kind a phase's attempts left (empty text: none)."""

    diff: str = ""
    builder_log: str = ""
    gate: str = ""
    ci_output: str = ""

    @classmethod
    def from_texts(cls, texts: dict[EvidenceKind, str]) -> PhaseEvidence:
        """From the latest text of each kind."""
        return cls(
            diff=texts.get(EvidenceKind.DIFF, ""),
            builder_log=texts.get(EvidenceKind.BUILDER_LOG, ""),
            gate=texts.get(EvidenceKind.GATE, ""),
            ci_output=texts.get(EvidenceKind.CI_OUTPUT, ""),
        )


def gate_text(findings: Iterable[Finding]) -> str:
    """The gate's findings as evidence (JSON; the first MAX_GATE_FINDINGS, messages trimmed)."""
    items = [
        {
            "issue_key": f.issue_key,
            "severity": f.severity.value,
            "category": f.category,
            "path": f.path,
            "line": f.line,
            "message": f.message[:_MAX_FINDING_MESSAGE],
        }
        for f in list(findings)[:MAX_GATE_FINDINGS]
    ]
    return json.dumps(items) if items else ""


def gate_findings(text: str) -> tuple[Finding, ...]:
    """Inverse of `gate_text`; evidence that does not parse reads as no findings."""
    try:
        items = json.loads(text) if text else []
    except json.JSONDecodeError:
        return ()
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("issue_key"), str):
            continue
        line = item.get("line")
        path = item.get("path")
        found.append(
            Finding(
                item["issue_key"],
                Severity.MAJOR if item.get("severity") == "major" else Severity.MINOR,
                str(item.get("category") or ""),
                path if isinstance(path, str) else None,
                line if isinstance(line, int) else None,
                str(item.get("message") or ""),
            )
        )
    return tuple(found)


def finding_line(finding: Finding) -> str:
    """One finding as a line people read: `[major] key (category) path:line: message`."""
    where = ""
    if finding.path:
        where = f" {finding.path}" + (f":{finding.line}" if finding.line else "")
    message = f": {finding.message}" if finding.message else ""
    return f"[{finding.severity.value}] {finding.issue_key} ({finding.category}){where}{message}"


def builder_log(stdout: str, stderr: str) -> str:
    """A builder's output tails as one log text ('' when it printed nothing)."""
    parts = []
    if stdout.strip():
        parts.append(f"--- stdout ---\n{stdout.rstrip()}\n")
    if stderr.strip():
        parts.append(f"--- stderr ---\n{stderr.rstrip()}\n")
    return "".join(parts)


def change_diff(change: Change) -> str:
    """The change as one unified diff (`git diff` style headers) against its base.

    Binary files are named only; symlinks show their target, submodules their kind.
    """
    parts: list[str] = []
    for file in change.files:
        old_name = "/dev/null" if file.kind is ChangeKind.ADDED else f"a/{file.path}"
        new_name = "/dev/null" if file.kind is ChangeKind.DELETED else f"b/{file.path}"
        if file.entry_type is EntryType.SUBMODULE:
            parts.append(f"diff {old_name} {new_name}: submodule {file.kind.value}\n")
            continue
        if file.entry_type is EntryType.SYMLINK:
            target = (file.content or b"").decode("utf-8", "replace")
            parts.append(f"diff {old_name} {new_name}: symlink -> {target}\n")
            continue
        old = "" if file.kind is ChangeKind.ADDED else _text(file.old_content)
        new = "" if file.kind is ChangeKind.DELETED else _text(file.content)
        if old is None or new is None:
            parts.append(f"Binary files {old_name} and {new_name} differ\n")
            continue
        lines = difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
        )
        parts.extend(
            line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
            for line in lines
        )
    return "".join(parts)


def _text(data: bytes | None) -> str | None:
    """Text content, or None when there is none to show (absent base content, binary data)."""
    if data is None or b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
