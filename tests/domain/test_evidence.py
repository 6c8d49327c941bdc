"""Evidence: diffs, caps, gate findings as stored text, and the incident pack."""

from __future__ import annotations

import html

from hypothesis import event, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.events import Finding
from app.domain.evidence import (
    CAPS,
    MAX_GATE_FINDINGS,
    EvidenceKind,
    PhaseEvidence,
    builder_log,
    capped,
    change_diff,
    finding_line,
    gate_findings,
    gate_text,
)
from app.domain.issue_record import Severity
from app.domain.report_incident import render_incident
from app.domain.report_view import ReportView
from app.domain.run_state import PhaseProgress, PhaseStatus, RunState, RunStatus


def _change(*files: FileChange) -> Change:
    return Change(base_commit="a" * 40, files=files)


def _file(path: str, kind: ChangeKind, old: bytes | None, new: bytes | None) -> FileChange:
    return FileChange(path, kind, EntryType.FILE, new, old_content=old)


def test_a_modified_file_is_a_unified_diff() -> None:
    diff = change_diff(_change(_file("src/app.py", ChangeKind.MODIFIED, b"a\nb\n", b"a\nc\n")))
    assert diff.splitlines() == [
        "--- a/src/app.py",
        "+++ b/src/app.py",
        "@@ -1,2 +1,2 @@",
        " a",
        "-b",
        "+c",
    ]


def test_added_and_deleted_files_come_from_and_go_to_dev_null() -> None:
    diff = change_diff(
        _change(
            _file("new.txt", ChangeKind.ADDED, None, b"x\n"),
            _file("old.txt", ChangeKind.DELETED, b"y\n", None),
        )
    )
    assert "--- /dev/null\n+++ b/new.txt\n" in diff
    assert "--- a/old.txt\n+++ /dev/null\n" in diff
    assert "+x\n" in diff
    assert "-y\n" in diff


def test_binary_files_links_and_submodules_are_named_without_content() -> None:
    link = FileChange("link", ChangeKind.ADDED, EntryType.SYMLINK, b"target")
    module = FileChange("vendor/lib", ChangeKind.ADDED, EntryType.SUBMODULE)
    old_binary = _file("logo.png", ChangeKind.MODIFIED, None, b"\x89PNG new")
    diff = change_diff(
        _change(_file("blob.bin", ChangeKind.ADDED, None, b"\0\1\2"), old_binary, link, module)
    )
    assert diff.splitlines() == [
        "Binary files /dev/null and b/blob.bin differ",
        "Binary files a/logo.png and b/logo.png differ",
        "diff /dev/null b/link: symlink -> target",
        "diff /dev/null b/vendor/lib: submodule added",
    ]


def test_a_last_line_without_newline_says_so() -> None:
    diff = change_diff(_change(_file("f", ChangeKind.MODIFIED, b"a\n", b"a\nb")))
    assert diff.endswith("+b\n\\ No newline at end of file\n")


@given(st.sampled_from(list(EvidenceKind)), st.text(max_size=20_000))
@settings(deadline=None)
def test_capped_text_stays_near_its_cap_and_says_what_was_cut(
    kind: EvidenceKind, text: str
) -> None:
    result = capped(kind, text)
    if len(text) <= CAPS[kind]:
        event("within the cap")
        assert result == text
    else:
        event("cut")
        assert len(result) <= CAPS[kind] + 60
        assert "cut ..." in result


def test_logs_keep_their_end_and_diffs_their_beginning() -> None:
    text = "first line\n" + "x" * 70_000 + "\nlast line\n"
    assert capped(EvidenceKind.BUILDER_LOG, text).endswith("last line\n")
    assert capped(EvidenceKind.DIFF, text).startswith("first line\n")


_FINDINGS = st.builds(
    Finding,
    st.text(min_size=1, max_size=30),
    st.sampled_from(list(Severity)),
    st.text(max_size=20),
    st.none() | st.text(max_size=30),
    st.none() | st.integers(min_value=1, max_value=10_000),
    st.text(max_size=200),
)


@given(st.lists(_FINDINGS, max_size=30))
@settings(deadline=None)
def test_gate_findings_survive_being_stored(findings: list[Finding]) -> None:
    back = gate_findings(gate_text(findings))
    if len(findings) > MAX_GATE_FINDINGS:
        event("more findings than kept")
    assert back == tuple(findings[:MAX_GATE_FINDINGS])


def test_unreadable_gate_evidence_reads_as_no_findings() -> None:
    assert gate_findings("{not json") == ()
    assert gate_findings('[{"issue_key": 5}, "x"]') == ()


def test_a_finding_line_names_file_and_line() -> None:
    finding = Finding("gate:secret", Severity.MAJOR, "secret", "a.py", 3, "a private key")
    assert finding_line(finding) == "[major] gate:secret (secret) a.py:3: a private key"


def test_builder_log_labels_its_streams_and_skips_empty_ones() -> None:
    assert builder_log("", "  \n") == ""
    assert builder_log("out\n", "") == "--- stdout ---\nout\n"
    assert builder_log("o", "e") == "--- stdout ---\no\n--- stderr ---\ne\n"


def _failed_run() -> RunState:
    phase = PhaseProgress(
        "T1.P1",
        "T1",
        status=PhaseStatus.FAILED,
        builder_attempts=2,
        feedback=("Attempt 1: CI was red", "Attempt 2: CI on abc was red (tests)"),
        failure_reason="phase T1.P1 failed after 2 attempt(s)",
    )
    return RunState(
        "run-1",
        status=RunStatus.DONE_FAILED_REQUIRES_HUMAN_REVIEW,
        phases=(phase,),
        terminal_reason="Tier(s) T1 did not complete.",
    )


def test_the_incident_pack_holds_reason_feedback_ci_output_logs_and_diff() -> None:
    token = "ghp_" + "a1B2c3D4e5F6" * 3  # a token shape: it must never be committed
    evidence = PhaseEvidence(
        diff="--- a/x\n+++ b/x\n+new\n",
        builder_log=f"--- stdout ---\nusing {token}\n",
        gate=gate_text([Finding("gate:big", Severity.MINOR, "too_many_lines", "x", 2)]),
        ci_output="tests: 3 failed\nAssertionError: boom",
    )
    view = ReportView(_failed_run(), "acme/widgets", 1, 1, "Title", "autopack/issue-1-run-1")
    markdown = render_incident(view, {"T1.P1": evidence})
    text = html.unescape(MarkdownIt().render(markdown))  # what people see
    assert "<h2>Phase T1.P1</h2>" in text
    assert "phase T1.P1 failed after 2 attempt(s)" in text
    assert "Attempt 2: CI on abc was red (tests)" in text
    assert "AssertionError: boom" in text
    assert "[minor] gate:big (too_many_lines) x:2" in text
    assert "+new" in text
    assert token not in markdown
    assert "ghp_" in markdown  # masked, not dropped


def test_an_incident_without_a_failed_phase_says_so() -> None:
    state = RunState(
        "run-1", status=RunStatus.DONE_FAILED_ENVIRONMENT, terminal_reason="GitHub was down."
    )
    view = ReportView(state, "acme/widgets", 1, 1, "Title", "b")
    text = render_incident(view, {})
    assert "GitHub was down." in text
    assert "No phase failed" in text
