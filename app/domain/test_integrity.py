"""Test integrity: a change that would make CI green by weakening the tests, not fixing the code.

Pure. Looks at one change's files for test files deleted or emptied, skip/xfail/ignore markers
added, assertions removed, CI or test configuration loosened and coverage thresholds lowered.
Each finding is a major `IssueRecord` with file and line (the line in the new file; a deleted
file has none). The gate turns them into "review before push" unless the phase's task asks for
exactly that change (`requested_by_task`, or `{allow=…}` in the plan). docs/ruleset.md lists
the rules.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from app.domain.change import ChangeKind, FileChange
from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.paths import key_path, matches_any, show_path


class IntegrityRule(StrEnum):
    """A test-integrity rule; also the `category` of its findings and an `{allow=…}` value."""

    TEST_DELETED = "test_deleted"
    TEST_SKIPPED = "test_skipped"
    ASSERTION_REMOVED = "assertion_removed"
    CI_LOOSENED = "ci_loosened"
    COVERAGE_LOWERED = "coverage_lowered"


# Where tests live, by convention of the common test runners (gitignore-like globs).
DEFAULT_TEST_PATHS: tuple[str, ...] = (
    "**/tests/**", "**/test/**", "**/testing/**", "**/__tests__/**", "**/spec/**",
    "test_*.py", "*_test.py", "conftest.py", "*_test.go", "*.test.*", "*.spec.*",
    "*_spec.rb", "*Test.java", "*Tests.java", "*Test.kt", "*Tests.cs", "*Test.php",
)  # fmt: skip
# CI and test-runner configuration.
DEFAULT_CI_PATHS: tuple[str, ...] = (
    ".github/workflows/**", ".github/actions/**", ".gitlab-ci.yml", ".circleci/**",
    ".travis.yml", "azure-pipelines.yml", "Jenkinsfile", ".buildkite/**",
    "bitbucket-pipelines.yml", "tox.ini", "noxfile.py", "pytest.ini", "setup.cfg",
    "pyproject.toml", ".coveragerc", "package.json", "jest.config.*", "vitest.config.*",
    ".mocharc*", ".nycrc*", "Makefile", "codecov.yml", ".codecov.yml",
)  # fmt: skip

SHOWN_LINE_CHARS = 120
_SCANNED_LINE_CHARS = 2000  # markers sit at the start of a line; a minified line is cut
_MAX_DIFF_WORK = 4_000_000  # old lines times new lines above which lines are matched as multisets

_COMMENT = re.compile(r"^\s*(?:#(?!\[)|//|/\*|\*|<!--|--\s|;)")
# A test definition (what an emptied test file no longer has).
_TEST_DEF = re.compile(
    r"^\s*(?:async\s+)?def\s+test|^\s*class\s+Test|^\s*func\s+(?:Test|Benchmark|Fuzz)\w*\s*\("
    r"|#\[(?:\w+::)?test\b|@(?:Test|ParameterizedTest|RepeatedTest)\b"
    r"|\b[xf]?(?:it|test|specify)(?:\.(?:skip|only|todo|concurrent))?\s*\(\s*['\"`]"
    r"|^\s*[xf]?(?:it|specify|scenario)\s+['\"]"
    r"|\[(?:Fact|Theory|Test|TestMethod)\b|\bfunction\s+test\w*\s*\("
)
# A marker that skips the test it is on (looked for in lines added to existing test files).
_SKIP_HERE = re.compile(
    r"@pytest\.mark\.(?:skip|skipif|xfail)\b|\bpytest\.(?:skip|xfail)\s*\("
    r"|@(?:unittest\.)?(?:skip|skipIf|skipUnless|expectedFailure)\b|\.skipTest\s*\("
    r"|\braise\s+(?:unittest\.)?SkipTest\b"
    r"|\b(?:it|test|describe|context|suite|specify)\.(?:skip|todo)\s*\("
    r"|\b(?:xit|xtest|xdescribe|xcontext|xspecify)\s*\(|\bthis\.skip\s*\("
    r"|\b[tb]\.Skip(?:Now|f)?\s*\(|#\[ignore\b|@(?:Disabled|Ignore)\b|\[Ignore\b"
    r"|\bSkip\s*=\s*\"|\bmarkTest(?:Skipped|Incomplete)\s*\("
    r"|^\s*(?:xit|xdescribe|xcontext|xspecify)\s+['\"]|^\s*(?:skip|pending)(?:\s+['\"]|\s*\(|\s*$)"
)
# A marker that stops *other* tests from running (looked for in added test files too).
_SKIP_OTHERS = re.compile(
    r"\b(?:it|test|describe|context|suite)\.only\s*\(|\b(?:fit|fdescribe|fcontext)\s*\("
    r"|\bcollect_ignore(?:_glob)?\b"
)
_ASSERTION = re.compile(
    r"^\s*assert\w*\b|\bassert(?:\.\w+|\w*)!?\s*\(|\bself\.(?:assert\w*|fail)\s*\("
    r"|\bpytest\.(?:raises|warns|fail)\s*\(|\bexpect\s*[({]|\.should\b|\brequire\.\w+\s*\("
    r"|\bt\.(?:Error|Errorf|Fatal|Fatalf|Fail|FailNow)\s*\(|\bverify\s*\("
    r"|\b(?:XCTAssert|EXPECT_|ASSERT_)\w*\s*\("
)
_LOOSENING = re.compile(
    r"--deselect\b|(?:^|[\s\"'])-[km]\s*=?\s*[\"']?\s*not\b"
    r"|continue-on-error\s*:\s*(?!false\b)\S|\ballow_failures?\s*:\s*(?:true\b|$)"
    r"|\|\|\s*(?:true\b|:(?=\s|$|[\"'])|exit\s+0\b)|\bset\s+\+e\b"
    r"|^\s*-?\s*if\s*:\s*[\"']?(?:false|\$\{\{\s*false\s*\}\})[\"']?\s*$"
    r"|--ignore(?:-glob)?(?:=|\s)|--passWithNoTests\b|\btestPathIgnorePatterns\b"
    r"|--exit-zero\b|\bignore_(?:errors|outcome)\s*[=:]\s*[Tt]rue\b"
)
_THRESHOLD = re.compile(
    r"(?P<key>fail[_-]under|min(?:imum)?[_-]?coverage)[\"']?\s*[:=]?\s*[\"']?"
    r"(?P<value>\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
# Jest/nyc keys count only in a file that sets coverage thresholds at all.
_JEST_CONTEXT = re.compile(r"coverageThreshold|check-coverage")
_JEST_THRESHOLD = re.compile(
    r"[\"']?(?P<key>branches|functions|lines|statements)[\"']?\s*[:=]\s*(?P<value>\d+(?:\.\d+)?)"
)

# What the task's own words ask for: a verb and its object at most three words apart.
_GAP = r"(?:\W+(?!(?:and|or|but|that|which|so|then|to|while|because)\b)\w+){0,3}?\W+"
_TESTS = r"(?:tests?|test\W+(?:files?|cases?|suites?)|specs?)"
# "not", "never", "no", "without" (or "n't") up to two words before the request.
_NEGATION = re.compile(r"\b(?:not|never|no|without)\W+(?:\w+\W+)?$|n't\W+(?:\w+\W+)?$")
_ASKS: dict[IntegrityRule, re.Pattern[str]] = {
    IntegrityRule.TEST_DELETED: re.compile(rf"\b(?:remov|delet|drop|retir)\w*{_GAP}{_TESTS}\b"),
    IntegrityRule.ASSERTION_REMOVED: re.compile(
        rf"\b(?:remov|delet|drop|retir)\w*{_GAP}(?:{_TESTS}|assert\w*)\b"
    ),
    IntegrityRule.TEST_SKIPPED: re.compile(
        rf"\b(?:skip|xfail|disabl|quarantin)\w*{_GAP}{_TESTS}\b"
        rf"|\b{_TESTS}{_GAP}as\W+(?:skipped|xfail|disabled|expected\W+failures?)\b"
    ),
    IntegrityRule.COVERAGE_LOWERED: re.compile(
        rf"\b(?:lower|reduc|decreas|relax|drop)\w*{_GAP}coverage\b"
    ),
    IntegrityRule.CI_LOOSENED: re.compile(
        rf"\b(?:continue-on-error|allow_failure|deselect\w*|non-blocking)\b"
        rf"|\b(?:relax|loosen)\w*{_GAP}(?:ci|checks?|pipelines?|workflows?)\b"
    ),
}


@dataclass(frozen=True)
class IntegrityPolicy:
    """Which paths are tests and CI configuration, and which rules are in force."""

    test_paths: tuple[str, ...] = DEFAULT_TEST_PATHS
    ci_paths: tuple[str, ...] = DEFAULT_CI_PATHS
    rules: frozenset[IntegrityRule] = field(default_factory=lambda: frozenset(IntegrityRule))

    def __post_init__(self) -> None:
        object.__setattr__(self, "test_paths", tuple(self.test_paths))
        object.__setattr__(self, "ci_paths", tuple(self.ci_paths))
        object.__setattr__(self, "rules", frozenset(IntegrityRule(r) for r in self.rules))


def requested_by_task(title: str, description: str) -> frozenset[IntegrityRule]:
    """The rules whose change the phase's own words ask for ("Remove the obsolete tests").

    A request right after a negation ("do not remove any tests") asks for nothing.
    """
    text = f"{title}\n{description}".lower()
    return frozenset(
        rule
        for rule, asks in _ASKS.items()
        if any(not _negated(text, m.start()) for m in asks.finditer(text))
    )


def _negated(text: str, at: int) -> bool:
    return _NEGATION.search(text, max(at - 40, 0), at) is not None


def find_weakening(files: Sequence[FileChange], policy: IntegrityPolicy) -> list[IssueRecord]:
    """Every way `files` weaken the tests or CI, as major findings (rules in force only)."""
    moved = {f.content for f in files if f.kind is ChangeKind.ADDED and f.content is not None}
    findings: list[IssueRecord] = []
    for file in files:
        if matches_any(policy.test_paths, file.path):
            findings += _test_file(file, moved)
        if matches_any(policy.ci_paths, file.path):
            findings += _ci_file(file)
    return [f for f in findings if f.category in policy.rules]


# --- test files --------------------------------------------------------------------------------


def _test_file(file: FileChange, moved: set[bytes]) -> list[IssueRecord]:
    old, new = _text(file.old_content), _text(file.content)
    if file.kind is ChangeKind.DELETED:
        if file.old_content in moved:
            return []  # moved or renamed, content and all
        tests = _count(_TEST_DEF, old) if old is not None else None
        if tests == 0:
            return []  # a fixture or helper, not a test
        held = f"; it held {_tests(tests)}" if tests else ""
        return [_record(IntegrityRule.TEST_DELETED, file.path, None, f"deleted{held}")]
    if new is None or file.binary:
        return []
    if file.kind is ChangeKind.ADDED:
        return _markers(file.path, _numbered(new), _SKIP_OTHERS)
    if old is None:
        return []
    findings = []
    tests_before, tests_after = _count(_TEST_DEF, old), _count(_TEST_DEF, new)
    if (tests_before and not tests_after) or (old.strip() and not new.strip()):
        what = f"emptied: it held {_tests(tests_before)}, now none"
        findings.append(_record(IntegrityRule.TEST_DELETED, file.path, 1, what))
    added, removed = _line_changes(old, new)
    findings += _markers(file.path, added, _SKIP_HERE, _SKIP_OTHERS)
    findings += _assertions_removed(file.path, old, new, removed)
    return findings


def _markers(
    path: str, lines: Iterable[tuple[int, str]], *patterns: re.Pattern[str]
) -> list[IssueRecord]:
    found = []
    for number, line in lines:
        if not _COMMENT.match(line) and any(p.search(line[:_SCANNED_LINE_CHARS]) for p in patterns):
            evidence = f"skip marker added: {_shown(line)}"
            found.append(_record(IntegrityRule.TEST_SKIPPED, path, number, evidence))
    return found


def _assertions_removed(
    path: str, old: str, new: str, removed: list[tuple[int, str]]
) -> list[IssueRecord]:
    before, after = _count(_ASSERTION, old), _count(_ASSERTION, new)
    if after >= before:
        return []
    gone = [(n, line) for n, line in removed if _is_assertion(line)]
    line, example = gone[0] if gone else (1, "")
    evidence = f"{before - after} assertion(s) removed ({before} before, {after} after)"
    if example:
        evidence += f", e.g. {_shown(example)}"
    return [_record(IntegrityRule.ASSERTION_REMOVED, path, line, evidence)]


# --- CI and test configuration -----------------------------------------------------------------


def _ci_file(file: FileChange) -> list[IssueRecord]:
    old, new = _text(file.old_content), _text(file.content)
    if file.kind is ChangeKind.DELETED:
        return [_record(IntegrityRule.CI_LOOSENED, file.path, None, "CI configuration deleted")]
    if new is None or file.binary:
        return []
    added = _numbered(new) if old is None else _line_changes(old, new)[0]
    findings = [
        _record(IntegrityRule.CI_LOOSENED, file.path, number, f"loosened: {_shown(line)}")
        for number, line in added
        if not _COMMENT.match(line) and _LOOSENING.search(line[:_SCANNED_LINE_CHARS])
    ]
    if old is not None:
        findings += _thresholds_lowered(file.path, old, new)
    return findings


def _thresholds_lowered(path: str, old: str, new: str) -> list[IssueRecord]:
    """A threshold key whose values, smallest first, went down or lost one."""
    before, after = _thresholds(old), _thresholds(new)
    findings = []
    for key, values in sorted(before.items()):
        now = after.get(key, [])
        was, is_ = sorted(v for v, _ in values), sorted(v for v, _ in now)
        lowered = next(((o, n) for o, n in zip(was, is_, strict=False) if n < o), None)
        if lowered is not None:
            line = min(number for value, number in now if value == lowered[1])
            what = f"lowered from {_num(lowered[0])} to {_num(lowered[1])}"
            findings.append(_threshold(path, line, key, what))
        elif len(is_) < len(was):
            findings.append(_threshold(path, None, key, f"removed (was {_num(was[-1])})"))
    return findings


def _threshold(path: str, line: int | None, key: str, what: str) -> IssueRecord:
    return _record(IntegrityRule.COVERAGE_LOWERED, path, line, f"coverage threshold {key} {what}")


def _thresholds(text: str) -> dict[str, list[tuple[float, int]]]:
    """Coverage thresholds by normalised key: (value, line) pairs."""
    found: dict[str, list[tuple[float, int]]] = {}
    patterns = [_THRESHOLD] + ([_JEST_THRESHOLD] if _JEST_CONTEXT.search(text) else [])
    for number, line in _numbered(text):
        if _COMMENT.match(line):
            continue
        for pattern in patterns:
            for match in pattern.finditer(line):
                key = match.group("key").lower().replace("-", "_")
                key = "minimum_coverage" if "coverage" in key else key
                found.setdefault(key, []).append((float(match.group("value")), number))
    return found


# --- lines -------------------------------------------------------------------------------------


def _line_changes(old: str, new: str) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(added lines with their line number, removed lines with where they were in the new file).

    A line diff (difflib) while it is cheap; for very large files, lines matched as multisets.
    """
    before, after = old.splitlines(), new.splitlines()
    last = max(len(after), 1)
    if len(before) * len(after) > _MAX_DIFF_WORK:
        remaining = Counter(before)
        added = []
        for number, line in enumerate(after, 1):
            if remaining[line] > 0:
                remaining[line] -= 1
            else:
                added.append((number, line))
        kept = Counter(after)
        removed = []
        for index, line in enumerate(before):
            if kept[line] > 0:
                kept[line] -= 1
            else:
                removed.append((min(index + 1, last), line))
        return added, removed
    added, removed = [], []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("insert", "replace"):
            added += [(j + 1, after[j]) for j in range(j1, j2)]
        if tag in ("delete", "replace"):
            removed += [(min(j1 + 1, last), before[i]) for i in range(i1, i2)]
    return added, removed


def _numbered(text: str) -> list[tuple[int, str]]:
    return list(enumerate(text.splitlines(), 1))


def _count(pattern: re.Pattern[str], text: str) -> int:
    return sum(
        1
        for line in text.splitlines()
        if not _COMMENT.match(line) and pattern.search(line[:_SCANNED_LINE_CHARS])
    )


def _is_assertion(line: str) -> bool:
    return not _COMMENT.match(line) and bool(_ASSERTION.search(line[:_SCANNED_LINE_CHARS]))


def _text(content: bytes | None) -> str | None:
    if content is None or b"\x00" in content:
        return None
    return content.decode("utf-8", errors="replace")


def _shown(line: str) -> str:
    flat = " ".join(line.split())
    return flat if len(flat) <= SHOWN_LINE_CHARS else flat[: SHOWN_LINE_CHARS - 1] + "…"


def _tests(count: int) -> str:
    return f"{count} test{'s' if count != 1 else ''}"


def _num(value: float) -> str:
    return f"{value:g}"


def _record(rule: IntegrityRule, path: str, line: int | None, what: str) -> IssueRecord:
    where = show_path(path) + (f":{line}" if line is not None else "")
    return IssueRecord(
        f"gate:{rule.value}:{key_path(path)}",
        Severity.MAJOR,
        rule.value,
        IssueSource.GATE,
        (f"{where}: {what}",),
        path,
        line,
    )
