"""The gate rule by rule (one row per rule and boundary), its glob matcher, its invariants."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.gate import (
    DEFAULT_FAIL_ON,
    MAX_EVIDENCE,
    Decision,
    GatePolicy,
    GateVerdict,
    Rule,
    decision_for,
    evaluate,
    unsafe_path_reason,
)
from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.paths import glob_match

# Secret-shaped values are assembled at run time so this file never holds one literally.
GITHUB_TOKEN = "gh" + "p_" + "Ab1" * 12
PEM = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\n" + "MIIEpAIBAAKCAQEA" + "x" * 48 + "\n-----END RSA"
    " PRIVATE KEY-----\n"
).encode()

ADDED, MODIFIED, DELETED = ChangeKind.ADDED, ChangeKind.MODIFIED, ChangeKind.DELETED
FILE, EXE, LINK, SUB = EntryType.FILE, EntryType.EXECUTABLE, EntryType.SYMLINK, EntryType.SUBMODULE
PASS, RETRY, FAIL = Decision.PASS, Decision.RETRY, Decision.FAIL_POLICY


def fc(
    path: str = "app/x.py",
    content: bytes | None = b"x = 1\n",
    *,
    kind: ChangeKind = ADDED,
    entry: EntryType = FILE,
    added: int = 1,
    removed: int = 0,
    binary: bool = False,
) -> FileChange:
    if kind is DELETED or entry is SUB:
        content = None
    return FileChange(path, kind, entry, content, added, removed, binary)


def change(*files: FileChange) -> Change:
    return Change("0" * 40, tuple(files))


def files(n: int) -> tuple[FileChange, ...]:
    return tuple(fc(f"src/f{i}.py") for i in range(n))


BASE = GatePolicy()
TWEAK = GatePolicy.for_mode("tweak_light")  # 2 files, 200 lines

# (id, change, policy, decision, issue keys of the findings in order)
RULES = [
    ("plain-change", change(fc()), BASE, PASS, []),
    ("empty-change", change(), BASE, RETRY, ["gate:empty_change"]),
    # protected paths
    (
        "workflow-added",
        change(fc(".github/workflows/ci.yml")),
        BASE,
        FAIL,
        ["gate:protected_path:.github/workflows/ci.yml"],
    ),
    (
        "workflow-deleted",
        change(fc(".github/workflows/ci.yml", kind=DELETED)),
        BASE,
        FAIL,
        [
            "gate:ci_loosened:.github/workflows/ci.yml",  # deleting CI is also loosening it
            "gate:protected_path:.github/workflows/ci.yml",
        ],
    ),
    (
        "workflow-allowed",
        change(fc(".github/workflows/ci.yml")),
        GatePolicy(allow_workflow_changes=True),
        PASS,
        [],
    ),
    ("github-dir-not-workflows", change(fc(".github/ISSUE_TEMPLATE/bug.md")), BASE, PASS, []),
    (
        "local-action",
        change(fc(".github/actions/setup/action.yml")),
        BASE,
        FAIL,
        ["gate:protected_path:.github/actions/setup/action.yml"],
    ),
    (
        "local-action-allowed",
        change(fc(".github/actions/setup/action.yml", b"runs: {using: node20}\n")),
        GatePolicy(allow_workflow_changes=True),
        PASS,
        [],
    ),
    (
        "ruleset",
        change(fc(".github/autopack.yml")),
        GatePolicy(allow_workflow_changes=True),
        FAIL,
        ["gate:protected_path:.github/autopack.yml"],
    ),
    ("codeowners-root", change(fc("CODEOWNERS")), BASE, FAIL, ["gate:protected_path:CODEOWNERS"]),
    (
        "codeowners-github",
        change(fc(".github/CODEOWNERS", kind=DELETED)),
        BASE,
        FAIL,
        ["gate:protected_path:.github/CODEOWNERS"],
    ),
    (
        "codeowners-docs",
        change(fc("docs/CODEOWNERS")),
        BASE,
        FAIL,
        ["gate:protected_path:docs/CODEOWNERS"],
    ),
    ("codeowners-elsewhere-is-not-read", change(fc("src/CODEOWNERS")), BASE, PASS, []),
    (
        "autonomous-runs",
        change(fc(".autonomous_runs/run-1/state.json")),
        BASE,
        FAIL,
        ["gate:protected_path:.autonomous_runs/run-1/state.json"],
    ),
    (
        "extra-glob",
        change(fc("deploy/prod/values.yaml")),
        GatePolicy(protected_globs=("deploy/prod/",)),
        FAIL,
        ["gate:protected_path:deploy/prod/values.yaml"],
    ),
    (
        "extra-glob-any-depth",
        change(fc("a/b/server.pem")),
        GatePolicy(protected_globs=("*.pem",)),
        FAIL,
        ["gate:protected_path:a/b/server.pem"],
    ),
    # paths outside the repository
    ("absolute", change(fc("/etc/passwd")), BASE, FAIL, ["gate:unsafe_path:/etc/passwd"]),
    ("dotdot", change(fc("../x")), BASE, FAIL, ["gate:unsafe_path:../x"]),
    ("inner-dotdot", change(fc("a/../../b")), BASE, FAIL, ["gate:unsafe_path:a/../../b"]),
    ("dot-git", change(fc(".git/config")), BASE, FAIL, ["gate:unsafe_path:.git/config"]),
    (
        "nested-dot-git",
        change(fc("vendor/.git/hooks/pre-commit")),
        BASE,
        FAIL,
        ["gate:unsafe_path:vendor/.git/hooks/pre-commit"],
    ),
    ("dot-git-case", change(fc(".GIT/config")), BASE, FAIL, ["gate:unsafe_path:.GIT/config"]),
    ("backslash-dotdot", change(fc("a\\..\\..\\b")), BASE, FAIL, ["gate:unsafe_path:a\\..\\..\\b"]),
    ("drive-letter", change(fc("C:/x")), BASE, FAIL, ["gate:unsafe_path:C:/x"]),
    ("empty-component", change(fc("a//b")), BASE, FAIL, ["gate:unsafe_path:a//b"]),
    ("nul-byte", change(fc("a\x00b")), BASE, FAIL, ["gate:unsafe_path:a\\x00b"]),
    ("dotdot-in-name-ok", change(fc("a/..b/c..")), BASE, PASS, []),
    ("gitignore-ok", change(fc(".gitignore")), BASE, PASS, []),
    # size rules: exactly at the cap passes, one over asks for a retry
    ("files-at-cap", change(*files(2)), TWEAK, PASS, []),
    ("files-over-cap", change(*files(3)), TWEAK, RETRY, ["gate:too_many_files"]),
    ("lines-at-cap", change(fc(added=150, removed=50)), TWEAK, PASS, []),
    ("lines-over-cap", change(fc(added=150, removed=51)), TWEAK, RETRY, ["gate:too_many_lines"]),
    (
        "deletions-count-as-files",
        change(*files(2), fc("old.py", kind=DELETED)),
        TWEAK,
        RETRY,
        ["gate:too_many_files"],
    ),
    # binary files
    (
        "binary",
        change(fc("img/logo.png", b"\x89PNG\x00", added=0, binary=True)),
        BASE,
        RETRY,
        ["gate:binary_file:img/logo.png"],
    ),
    (
        "binary-allowed",
        change(fc("img/logo.png", b"\x89PNG\x00", added=0, binary=True)),
        GatePolicy(allow_binary=True),
        PASS,
        [],
    ),
    (
        "binary-deleted",
        change(fc("img/logo.png", kind=DELETED, binary=True)),
        BASE,
        PASS,
        [],
    ),
    # file size cap
    ("size-at-cap", change(fc("big.txt", b"a" * 100)), GatePolicy(max_file_bytes=100), PASS, []),
    (
        "size-over-cap",
        change(fc("big.txt", b"a" * 101)),
        GatePolicy(max_file_bytes=100),
        RETRY,
        ["gate:file_too_large:big.txt"],
    ),
    # symlinks and submodules
    (
        "symlink-inside",
        change(fc("docs/link", b"../README.md", entry=LINK)),
        BASE,
        RETRY,
        ["gate:symlink:docs/link"],
    ),
    (
        "symlink-allowed",
        change(fc("docs/link", b"../README.md", entry=LINK)),
        GatePolicy(allow_symlinks=True),
        PASS,
        [],
    ),
    (
        "symlink-absolute",
        change(fc("docs/link", b"/etc/passwd", entry=LINK)),
        GatePolicy(allow_symlinks=True),
        FAIL,
        ["gate:symlink_escape:docs/link"],
    ),
    (
        "symlink-escapes-up",
        change(fc("docs/link", b"../../etc", entry=LINK)),
        GatePolicy(allow_symlinks=True),
        FAIL,
        ["gate:symlink_escape:docs/link"],
    ),
    (
        "symlink-up-then-down-stays",
        change(fc("a/b/link", b"../../c/../d", entry=LINK)),
        GatePolicy(allow_symlinks=True),
        PASS,
        [],
    ),
    (
        "symlink-into-dot-git",
        change(fc("link", b".git/config", entry=LINK)),
        GatePolicy(allow_symlinks=True),
        FAIL,
        ["gate:symlink_escape:link"],
    ),
    ("symlink-deleted", change(fc("link", kind=DELETED, entry=LINK)), BASE, PASS, []),
    ("submodule", change(fc("vendor/lib", entry=SUB)), BASE, RETRY, ["gate:submodule:vendor/lib"]),
    (
        "submodule-allowed",
        change(fc("vendor/lib", entry=SUB)),
        GatePolicy(allow_submodules=True),
        PASS,
        [],
    ),
    # secrets
    (
        "github-token",
        change(fc("conf.py", f'TOKEN = "{GITHUB_TOKEN}"\n'.encode())),
        BASE,
        FAIL,
        ["gate:secret:github_token:conf.py"],
    ),
    (
        "private-key",
        change(fc("deploy/key.txt", PEM)),
        BASE,
        FAIL,
        ["gate:secret:private_key:deploy/key.txt"],
    ),
    (
        "secret-in-executable",
        change(fc("run.sh", f"export T={GITHUB_TOKEN}\n".encode(), entry=EXE)),
        BASE,
        FAIL,
        ["gate:secret:github_token:run.sh"],
    ),
    (
        "password-is-minor",
        change(fc("settings.py", b'password = "hunter2hunter2"\n')),
        BASE,
        PASS,
        ["gate:possible_password:password_assignment:settings.py"],
    ),
    # fail_on decides the verdict per rule
    (
        "fail-on-binary",
        change(fc("a.bin", b"\x00", added=0, binary=True)),
        GatePolicy(fail_on=DEFAULT_FAIL_ON | {Rule.BINARY_FILE}),
        FAIL,
        ["gate:binary_file:a.bin"],
    ),
    (
        "protected-only-retry",
        change(fc(".github/workflows/ci.yml")),
        GatePolicy(fail_on=frozenset()),
        RETRY,
        ["gate:protected_path:.github/workflows/ci.yml"],
    ),
]


@pytest.mark.parametrize(
    ("the_change", "policy", "decision", "keys"),
    [pytest.param(c, p, d, k, id=i) for i, c, p, d, k in RULES],
)
def test_rules(the_change: Change, policy: GatePolicy, decision: Decision, keys: list[str]) -> None:
    verdict = evaluate(the_change, policy)
    assert [f.issue_key for f in verdict.findings] == keys
    assert verdict.decision is decision
    assert verdict.passed is (decision is PASS)
    for finding in verdict.findings:
        assert finding.source is IssueSource.GATE
        assert finding.evidence
        assert finding.issue_key.startswith(f"gate:{finding.category}")


def probe(severity: Severity = Severity.MAJOR) -> IssueRecord:
    return IssueRecord(
        "probe:ruff-check", severity, "probe_failed", IssueSource.PROBE, ("exited with 1",)
    )


@pytest.mark.parametrize(
    ("findings", "policy", "decision"),
    [
        pytest.param([probe()], BASE, RETRY, id="failed-probe-retries"),
        pytest.param([probe(Severity.MINOR)], BASE, PASS, id="minor-probe-passes"),
        pytest.param(
            [probe()],
            GatePolicy(fail_on=frozenset({Rule.PROBE_FAILED})),
            FAIL,
            id="probe-in-fail-on",
        ),
    ],
)
def test_probe_findings_join_the_verdict(
    findings: list[IssueRecord], policy: GatePolicy, decision: Decision
) -> None:
    verdict = evaluate(change(fc()), policy, probe_findings=findings)
    assert verdict.decision is decision
    assert verdict.findings == tuple(findings)


def test_worst_decision_wins_and_findings_are_sorted() -> None:
    the_change = change(
        fc("z.bin", b"\x00", added=0, binary=True),
        fc(".github/workflows/a.yml"),
        fc("b/link", b"x", entry=LINK),
    )
    verdict = evaluate(the_change, BASE, probe_findings=[probe()])
    assert verdict.decision is FAIL
    keys = [f.issue_key for f in verdict.findings]
    assert keys == sorted(keys)
    assert keys == [
        "gate:binary_file:z.bin",
        "gate:protected_path:.github/workflows/a.yml",
        "gate:symlink:b/link",
        "probe:ruff-check",
    ]


def test_unsafe_path_reports_only_that() -> None:
    # A `.git/...` path is both unsafe and protected; one finding says it.
    verdict = evaluate(change(fc(".git/hooks/x", b"\x00", binary=True)), BASE)
    assert [f.category for f in verdict.findings] == ["unsafe_path"]


def test_secret_evidence_names_file_line_and_rule_but_not_the_secret() -> None:
    content = f'a = 1\nb = 2\nTOKEN = "{GITHUB_TOKEN}"\n'.encode()
    verdict = evaluate(change(fc("conf/settings.py", content)), BASE)
    (finding,) = verdict.findings
    assert finding.severity is Severity.MAJOR
    assert (finding.path, finding.line) == ("conf/settings.py", 3)
    (evidence,) = finding.evidence
    assert evidence.startswith("conf/settings.py:3: github_token ")
    assert GITHUB_TOKEN not in evidence
    assert GITHUB_TOKEN[4:] not in evidence
    assert GITHUB_TOKEN[8:20] not in repr(verdict)


def test_same_secret_kind_twice_in_a_file_is_one_issue_with_both_lines() -> None:
    content = f"{GITHUB_TOKEN}\nx\n{GITHUB_TOKEN}\n".encode()
    (finding,) = evaluate(change(fc("a.txt", content)), BASE).findings
    assert [e.split(":")[1] for e in finding.evidence] == ["1", "3"]


def test_issue_keys_are_stable_across_attempts() -> None:
    first = evaluate(change(fc("a.txt", f"{GITHUB_TOKEN}\n".encode()), *files(40)), BASE)
    moved = f"# new header\n\n{GITHUB_TOKEN}\n".encode()
    second = evaluate(change(fc("a.txt", moved), *files(55)), BASE)
    assert [f.issue_key for f in first.findings] == [f.issue_key for f in second.findings]
    assert first.findings[0].evidence != second.findings[0].evidence


def test_evidence_is_capped() -> None:
    content = (f"{GITHUB_TOKEN}\n" * (MAX_EVIDENCE + 5)).encode()
    (finding,) = evaluate(change(fc("a.txt", content)), BASE).findings
    assert len(finding.evidence) == MAX_EVIDENCE + 1
    assert finding.evidence[-1] == "… and 5 more"


@pytest.mark.parametrize("padding", [10, 1024 * 1024, 3 * 1024 * 1024])
def test_the_secret_scan_covers_the_whole_file(padding: int) -> None:
    # A token past the first megabyte is found as surely as one on the first line, whatever
    # max_file_bytes allows (the scan once stopped at 1 MiB while files could be larger).
    content = b"x" * padding + b"\n" + GITHUB_TOKEN.encode() + b"\n"
    policy = GatePolicy(max_file_bytes=8 * 1024 * 1024)
    verdict = evaluate(change(fc("a.txt", content)), policy)
    assert verdict.decision is FAIL
    assert [f.line for f in verdict.findings] == [2]


def test_control_characters_are_escaped_in_keys_and_evidence() -> None:
    (finding,) = evaluate(change(fc("evil\nname/../x")), BASE).findings
    assert "\n" not in finding.issue_key
    assert all("\n" not in e for e in finding.evidence)


def test_long_paths_give_bounded_distinct_keys() -> None:
    a, b = "d/" * 200 + "a.bin", "d/" * 200 + "b.bin"
    the_change = change(fc(a, b"\x00", binary=True), fc(b, b"\x00", binary=True))
    keys = [f.issue_key for f in evaluate(the_change, BASE).findings]
    assert len(set(keys)) == 2
    assert all(len(k) < 300 for k in keys)


# -- policy ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "max_files", "max_lines"),
    [
        ("tweak_light", 2, 200),
        ("scaffolding_heavy", 30, 3000),
        ("refactor_heavy", 60, 5000),
        ("schema_heavy", 20, 2000),
    ],
)
def test_for_mode_defaults(mode: str, max_files: int, max_lines: int) -> None:
    policy = GatePolicy.for_mode(mode)
    assert (policy.max_files, policy.max_lines) == (max_files, max_lines)
    assert policy.allow_binary is False
    assert policy.max_file_bytes == 1024 * 1024
    assert policy.fail_on == DEFAULT_FAIL_ON


def test_for_mode_overrides_and_unknown_mode() -> None:
    policy = GatePolicy.for_mode("tweak_light", max_lines=50, allow_binary=True)
    assert (policy.max_files, policy.max_lines, policy.allow_binary) == (2, 50, True)
    with pytest.raises(ValueError, match="unknown builder mode"):
        GatePolicy.for_mode("yolo")
    with pytest.raises(TypeError):
        GatePolicy.for_mode("tweak_light", not_a_field=1)


def test_policy_validation_and_protected_list() -> None:
    with pytest.raises(ValueError, match="max_files"):
        GatePolicy(max_files=-1)
    with pytest.raises(ValueError, match="protected_globs"):
        GatePolicy(protected_globs=("/",))
    with pytest.raises(ValueError, match="not_a_rule"):
        GatePolicy(fail_on=frozenset({"not_a_rule"}))  # type: ignore[arg-type]
    assert GatePolicy(protected_globs=("x/",)).protected == (
        ".github/workflows/**",
        ".github/actions/**",
        ".git/**",
        ".autonomous_runs/**",
        ".github/autopack.yml",
        "/CODEOWNERS",
        ".github/CODEOWNERS",
        "docs/CODEOWNERS",
        "x/",
    )
    allowed = GatePolicy(allow_workflow_changes=True).protected
    assert ".github/workflows/**" not in allowed
    assert ".github/actions/**" not in allowed
    assert ".github/autopack.yml" in allowed
    policy = GatePolicy(fail_on=frozenset({"secret"}))  # type: ignore[arg-type]
    assert policy.fail_on == {Rule.SECRET}


def test_decision_for() -> None:
    assert decision_for(probe(Severity.MINOR), GatePolicy(fail_on=frozenset(Rule))) is PASS
    assert decision_for(probe(), BASE) is RETRY
    weakened = dataclasses.replace(probe(), category="test_skipped")
    assert decision_for(weakened, BASE) is Decision.REVIEW
    assert decision_for(dataclasses.replace(weakened, severity=Severity.MINOR), BASE) is PASS


# -- glob matcher ------------------------------------------------------------------------------

GLOBS = [
    # (pattern, path, matches)
    (".github/workflows/**", ".github/workflows/ci.yml", True),
    (".github/workflows/**", ".github/workflows/sub/x.yml", True),
    (".github/workflows/**", ".github/workflows", False),  # `/**` is everything inside
    (".github/workflows/**", ".github/ci.yml", False),
    (".github/workflows/**", "x/.github/workflows/ci.yml", False),  # anchored
    (".github/workflows/**", ".github/Workflows/ci.yml", False),  # case-sensitive
    (".github/workflows", ".github/workflows/ci.yml", True),  # a matched dir covers its files
    ("*.pem", "key.pem", True),
    ("*.pem", "a/b/key.pem", True),  # no '/': any depth
    ("*.pem", "key.pem.txt", False),
    ("*.pem", "a/key.pem/inner.txt", True),  # a directory named *.pem
    ("/*.pem", "a/key.pem", False),  # leading '/': root only
    ("/*.pem", "key.pem", True),
    ("secrets/", "secrets/a.txt", True),
    ("secrets/", "deep/secrets/a.txt", True),  # trailing '/' only: any depth
    ("secrets/", "secrets", False),  # directories only
    ("docs/*.md", "docs/a.md", True),
    ("docs/*.md", "docs/sub/a.md", False),  # '*' never crosses '/'
    ("docs/**/*.md", "docs/a.md", True),  # '**' matches zero directories
    ("docs/**/*.md", "docs/x/y/a.md", True),
    ("docs/**/*.md", "other/docs/a.md", False),
    ("**/migrations/**", "migrations/001.sql", True),
    ("**/migrations/**", "app/store/migrations/001.sql", True),
    ("**/migrations/**", "app/migrations.py", False),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/c", False),
    ("**/**/x", "x", True),
    ("**", "anything/at/all", True),
    ("file?.txt", "file1.txt", True),
    ("file?.txt", "file10.txt", False),
    ("file[0-9].txt", "file7.txt", True),
    ("file[!0-9].txt", "file7.txt", False),
    (".env*", "config/.env.local", True),
    ("Makefile", "sub/Makefile", True),
    ("Makefile", "Makefile.bak", False),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GLOBS)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def test_glob_match_has_no_exponential_blowup() -> None:
    # A backtracking matcher would try 2^20 ways here; the state set keeps it polynomial.
    assert glob_match("/".join(["**"] * 20 + ["z"]), "/".join(["a"] * 40)) is False


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("/x", "absolute path"),
        ("\\x", "absolute path"),
        ("d:\\x", "absolute path"),
        ("a/./b", "empty or '.' path component"),
        ("a/", "empty or '.' path component"),
        ("a/..", "'..' path component"),
        ("a/.git", "'.git' path component"),
        ("a/.git. /b", "'.git' path component"),
        ("GIT~1/config", "'.git' path component"),
        ("ok/path.txt", None),
        ("a:b", "absolute path"),  # drive-relative on Windows
        ("ab:c", None),
        ("ünï/cødé ✓.txt", None),
    ],
)
def test_unsafe_path_reason(path: str, reason: str | None) -> None:
    assert unsafe_path_reason(path) == reason


# -- issue records -----------------------------------------------------------------------------


def test_issue_record_json_round_trip() -> None:
    record = IssueRecord(
        "gate:secret:github_token:a.py",
        Severity.MAJOR,
        "secret",
        IssueSource.GATE,
        ("a.py:3: github_token ghp_****",),
        "a.py",
        3,
    )
    data = record.to_json()
    assert data["severity"] == "major"
    assert data["source"] == "gate"
    assert data["evidence"] == ["a.py:3: github_token ghp_****"]
    assert IssueRecord.from_json(data) == record


def test_issue_record_from_builder_shape() -> None:
    data = {"issue_key": "k", "severity": "minor", "category": "c", "evidence": "one line"}
    record = IssueRecord.from_json(data, default_source=IssueSource.BUILDER)
    assert record.source is IssueSource.BUILDER
    assert record.evidence == ("one line",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"severity": "major", "category": "c", "source": "gate"}, "issue_key"),
        ({"issue_key": "k", "severity": "huge", "category": "c", "source": "gate"}, "severity"),
        ({"issue_key": "k", "severity": "minor", "category": "c", "source": "x"}, "source"),
        ({"issue_key": "k", "severity": "minor", "category": "c"}, "source"),
        ({"issue_key": "k", "severity": "minor", "source": "ci"}, "category"),
        (
            {"issue_key": "k", "severity": "minor", "category": "c", "source": "ci", "evidence": 1},
            "evidence",
        ),
        (
            {"issue_key": "k", "severity": "minor", "category": "c", "source": "ci", "line": 0},
            "line",
        ),
        (
            {"issue_key": "k", "severity": "minor", "category": "c", "source": "ci", "path": 1},
            "path",
        ),
    ],
)
def test_issue_record_from_json_refuses_bad_shapes(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IssueRecord.from_json(data)


# -- properties --------------------------------------------------------------------------------

path_text = st.one_of(
    st.text(min_size=0, max_size=40),
    st.lists(
        st.sampled_from(["a", "..", ".", "", ".git", ".github", "workflows", "é", "\n", "\\"]),
        max_size=6,
    ).map("/".join),
)
file_changes = st.builds(
    FileChange,
    path=path_text,
    kind=st.sampled_from(ChangeKind),
    entry_type=st.sampled_from(EntryType),
    content=st.one_of(st.none(), st.binary(max_size=300)),
    lines_added=st.integers(min_value=0, max_value=10_000),
    lines_removed=st.integers(min_value=0, max_value=10_000),
    binary=st.booleans(),
)
changes = st.builds(
    Change, base_commit=st.just("b" * 40), files=st.lists(file_changes, max_size=8).map(tuple)
)
policies = st.builds(
    GatePolicy,
    max_files=st.integers(0, 10),
    max_lines=st.integers(0, 20_000),
    allow_workflow_changes=st.booleans(),
    allow_binary=st.booleans(),
    max_file_bytes=st.integers(0, 400),
    allow_symlinks=st.booleans(),
    allow_submodules=st.booleans(),
    fail_on=st.frozensets(st.sampled_from(Rule)),
)


@settings(max_examples=300, deadline=None)
@given(the_change=changes, policy=policies, seed=st.integers(0, 2**32))
def test_evaluate_never_raises_and_is_deterministic(
    the_change: Change, policy: GatePolicy, seed: int
) -> None:
    verdict = evaluate(the_change, policy)
    assert isinstance(verdict, GateVerdict)
    assert verdict == evaluate(the_change, policy)
    shuffled = list(the_change.files)
    random.Random(seed).shuffle(shuffled)
    assert evaluate(dataclasses.replace(the_change, files=tuple(shuffled)), policy) == verdict
    keys = [f.issue_key for f in verdict.findings]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert (verdict.decision is PASS) == all(
        decision_for(f, policy) is PASS for f in verdict.findings
    )
    for finding in verdict.findings:
        assert IssueRecord.from_json(finding.to_json()) == finding
