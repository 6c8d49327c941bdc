"""Test integrity, rule by rule: what counts as weakening the tests, with file and line."""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.domain.change import Change, ChangeKind, EntryType, FileChange
from app.domain.gate import Decision, GatePolicy, evaluate
from app.domain.issue_record import IssueSource, Severity
from app.domain.test_integrity import (
    IntegrityPolicy,
    IntegrityRule,
    find_weakening,
    requested_by_task,
)

ADDED, MODIFIED, DELETED = ChangeKind.ADDED, ChangeKind.MODIFIED, ChangeKind.DELETED
R = IntegrityRule
POLICY = IntegrityPolicy()

TEST_PY = """\
import pytest


def test_one():
    assert one() == 1


def test_two():
    assert two() == 2
    assert two() != 3
"""


def fc(
    path: str, new: str | None, old: str | None = None, kind: ChangeKind | None = None
) -> FileChange:
    kind = kind or (DELETED if new is None else ADDED if old is None else MODIFIED)
    return FileChange(
        path,
        kind,
        EntryType.FILE,
        None if new is None else new.encode(),
        old_content=None if old is None else old.encode(),
    )


def found(
    *files: FileChange, policy: IntegrityPolicy = POLICY
) -> list[tuple[str, str, int | None]]:
    return [(f.category, f.path or "", f.line) for f in find_weakening(files, policy)]


def with_line(text: str, after: str, line: str) -> str:
    """`text` with `line` inserted after the first line equal to `after`."""
    lines = text.split("\n")
    at = lines.index(after) + 1
    return "\n".join([*lines[:at], line, *lines[at:]])


SKIP_LINE = "@pytest.mark.skip(reason='flaky')"
UNIT_OLD = "class T:\n    def test_a(self):\n        self.assertTrue(1)\n"
GO_OLD = 'func TestX(t *testing.T) {\n\tt.Fatal("no")\n}\n'
RUST_OLD = "#[test]\nfn x() { assert!(true); }\n"
JAVA_OLD = "@Test\nvoid x() { assertEquals(1, 1); }\n"
DESCRIBE = "describe('x', () => {\n  it('y', () => { expect(1) })\n})\n"
JEST_OLD = "coverageThreshold: {\n  global: {\n    lines: 80,\n  },\n}\n"
WORKFLOW = ".github/workflows/ci.yml"
T = "tests/test_a.py"

Row = tuple[str, list[FileChange], list[tuple[str, str, int | None]]]
# (id, files, expected (rule, path, line) findings)
RULES: list[Row] = [
    # test_deleted
    ("test file deleted", [fc(T, None, TEST_PY)], [(R.TEST_DELETED, T, None)]),
    ("unknown old content counts", [fc(T, None, kind=DELETED)], [(R.TEST_DELETED, T, None)]),
    ("fixture deleted is fine", [fc("tests/data/input.json", None, '{"a": 1}\n')], []),
    ("moved test is fine", [fc(T, None, TEST_PY), fc("tests/unit/test_a.py", TEST_PY)], []),
    ("non-test file deleted is fine", [fc("src/app.py", None, "def test_x(): pass\n")], []),
    (
        "go test deleted",
        [fc("pkg/x_test.go", None, GO_OLD)],
        [(R.TEST_DELETED, "pkg/x_test.go", None)],
    ),
    (
        "test file emptied",
        [fc(T, "import pytest\n", TEST_PY)],
        # a removal past the end of the new file points at its last line
        [(R.ASSERTION_REMOVED, T, 1), (R.TEST_DELETED, T, 1)],
    ),
    (
        "test file blanked",
        [fc("spec/widget_spec.rb", "\n\n", "it 'works' do\nend\n")],
        [(R.TEST_DELETED, "spec/widget_spec.rb", 1)],
    ),
    # test_skipped
    ("pytest skip", [fc(T, with_line(TEST_PY, "", SKIP_LINE), TEST_PY)], [(R.TEST_SKIPPED, T, 3)]),
    (
        "pytest xfail",
        [
            fc(
                "test_b.py",
                TEST_PY.replace("def test_two", "@pytest.mark.xfail\ndef test_two"),
                TEST_PY,
            )
        ],
        [(R.TEST_SKIPPED, "test_b.py", 8)],
    ),
    (
        "pytest.skip call",
        [
            fc(
                T,
                TEST_PY.replace(
                    "    assert one() == 1", "    pytest.skip('later')\n    assert one() == 1"
                ),
                TEST_PY,
            )
        ],
        [(R.TEST_SKIPPED, T, 5)],
    ),
    (
        "unittest skip",
        [
            fc(
                "tests/test_u.py",
                UNIT_OLD.replace("    def", "    @unittest.skip('x')\n    def"),
                UNIT_OLD,
            )
        ],
        [(R.TEST_SKIPPED, "tests/test_u.py", 2)],
    ),
    (
        "jest it.skip",
        [fc("src/a.test.ts", "it.skip('adds', f)\n", "it('adds', f)\n")],
        [(R.TEST_SKIPPED, "src/a.test.ts", 1)],
    ),
    (
        "mocha xit",
        [fc("test/a.js", "xit('adds', f)\n", "it('adds', f)\n")],
        [(R.TEST_SKIPPED, "test/a.js", 1)],
    ),
    (
        "describe.skip",
        [fc("src/a.spec.js", DESCRIBE.replace("describe(", "describe.skip("), DESCRIBE)],
        [(R.TEST_SKIPPED, "src/a.spec.js", 1)],
    ),
    (
        "go t.Skip",
        [fc("x_test.go", GO_OLD.replace("\tt.Fatal", '\tt.Skip("later")\n\tt.Fatal'), GO_OLD)],
        [(R.TEST_SKIPPED, "x_test.go", 2)],
    ),
    (
        "rust ignore",
        [fc("tests/it.rs", RUST_OLD.replace("\nfn", "\n#[ignore]\nfn"), RUST_OLD)],
        [(R.TEST_SKIPPED, "tests/it.rs", 2)],
    ),
    (
        "junit disabled",
        [fc("src/test/java/AppTest.java", "@Disabled\n" + JAVA_OLD, JAVA_OLD)],
        [(R.TEST_SKIPPED, "src/test/java/AppTest.java", 1)],
    ),
    (
        "junit4 ignore",
        [fc("FooTest.java", JAVA_OLD.replace("@Test", "@Ignore @Test"), JAVA_OLD)],
        [(R.TEST_SKIPPED, "FooTest.java", 1)],
    ),
    ("commented skip is no marker", [fc(T, with_line(TEST_PY, "", "# " + SKIP_LINE), TEST_PY)], []),
    (
        "marker already there is not new",
        [fc(T, SKIP_LINE + "\n" + TEST_PY + "\n# more\n", SKIP_LINE + "\n" + TEST_PY)],
        [],
    ),
    (
        "new test file may skip itself",
        [fc("tests/test_new.py", "@pytest.mark.skipif(WIN, reason='posix')\ndef test_x():\n")],
        [],
    ),
    (
        "new file with .only stops others",
        [fc("test/focus.spec.js", "it.only('x', () => { expect(1) })\n")],
        [(R.TEST_SKIPPED, "test/focus.spec.js", 1)],
    ),
    (
        "new conftest ignoring tests",
        [fc("conftest.py", "collect_ignore = ['tests/test_slow.py']\n")],
        [(R.TEST_SKIPPED, "conftest.py", 1)],
    ),
    ("skip outside test paths is not looked at", [fc("src/util.py", SKIP_LINE + "\n", "\n")], []),
    # assertion_removed
    (
        "assertion removed",
        [fc(T, TEST_PY.replace("    assert two() != 3\n", ""), TEST_PY)],
        [(R.ASSERTION_REMOVED, T, 9)],  # it was after the last line
    ),
    (
        "assertion commented out",
        [
            fc(
                T,
                TEST_PY.replace("    assert one() == 1", "    # assert one() == 1\n    pass"),
                TEST_PY,
            )
        ],
        [(R.ASSERTION_REMOVED, T, 5)],
    ),
    (
        "assertion rewritten is fine",
        [fc(T, TEST_PY.replace("assert one() == 1", "assert one() == 1, 'one'"), TEST_PY)],
        [],
    ),
    (
        "assertions moved is fine",
        [
            fc(
                T,
                TEST_PY.replace(
                    "two() == 2\n    assert two() != 3", "two() != 3\n    assert two() == 2"
                ),
                TEST_PY,
            )
        ],
        [],
    ),
    (
        "rust assert_eq removed",
        [
            fc(
                "tests/it.rs",
                "#[test]\nfn x() {\n}\n",
                "#[test]\nfn x() {\n    assert_eq!(a, 1);\n}\n",
            )
        ],
        [(R.ASSERTION_REMOVED, "tests/it.rs", 3)],
    ),
    (
        "jest expect removed",
        [
            fc(
                "a.test.js",
                "test('x', () => {\n})\n",
                "test('x', () => {\n  expect(x).toBe(1)\n})\n",
            )
        ],
        [(R.ASSERTION_REMOVED, "a.test.js", 2)],
    ),
    # ci_loosened
    (
        "continue-on-error",
        [fc(WORKFLOW, "jobs:\n  t:\n    continue-on-error: true\n", "jobs:\n  t:\n")],
        [(R.CI_LOOSENED, WORKFLOW, 3)],
    ),
    (
        "continue-on-error false is fine",
        [fc(WORKFLOW, "jobs:\n  t:\n    continue-on-error: false\n", "jobs:\n  t:\n")],
        [],
    ),
    (
        "|| true in a step",
        [fc(WORKFLOW, "run: pytest || true\n", "run: pytest\n")],
        [(R.CI_LOOSENED, WORKFLOW, 1)],
    ),
    (
        "deselect in pytest.ini",
        [
            fc(
                "pytest.ini",
                "[pytest]\naddopts = --deselect tests/test_a.py::test_two\n",
                "[pytest]\n",
            )
        ],
        [(R.CI_LOOSENED, "pytest.ini", 2)],
    ),
    (
        "-k not in tox",
        [
            fc(
                "tox.ini",
                '[testenv]\ncommands = pytest -k "not slow"\n',
                "[testenv]\ncommands = pytest\n",
            )
        ],
        [(R.CI_LOOSENED, "tox.ini", 2)],
    ),
    (
        "gitlab allow_failure",
        [fc(".gitlab-ci.yml", "test:\n  allow_failure: true\n", "test:\n")],
        [(R.CI_LOOSENED, ".gitlab-ci.yml", 2)],
    ),
    (
        "step switched off",
        [fc(WORKFLOW, "    - run: pytest\n      if: false\n", "    - run: pytest\n")],
        [(R.CI_LOOSENED, WORKFLOW, 2)],
    ),
    (
        "passWithNoTests",
        [fc("package.json", '{"test": "jest --passWithNoTests"}\n', '{"test": "jest"}\n')],
        [(R.CI_LOOSENED, "package.json", 1)],
    ),
    (
        "new pytest.ini that deselects",
        [fc("pytest.ini", "[pytest]\naddopts = --deselect tests/test_a.py::test_two\n")],
        [(R.CI_LOOSENED, "pytest.ini", 2)],
    ),
    (
        "CI config deleted",
        [fc(".gitlab-ci.yml", None, "test:\n  script: pytest\n")],
        [(R.CI_LOOSENED, ".gitlab-ci.yml", None)],
    ),
    (
        "comment mentioning || true is fine",
        [fc("Makefile", "test:\n\tpytest\n# never use || true here\n", "test:\n\tpytest\n")],
        [],
    ),
    ("ordinary CI change is fine", [fc(WORKFLOW, "run: pytest -q -x\n", "run: pytest -q\n")], []),
    ("|| true outside CI paths is fine", [fc("scripts/deploy.sh", "rm x || true\n", "rm x\n")], []),
    # coverage_lowered
    (
        "fail_under lowered",
        [fc("pyproject.toml", "[report]\nfail_under = 80\n", "[report]\nfail_under = 90\n")],
        [(R.COVERAGE_LOWERED, "pyproject.toml", 2)],
    ),
    (
        "fail_under raised is fine",
        [fc("pyproject.toml", "fail_under = 95\n", "fail_under = 90\n")],
        [],
    ),
    (
        "cov-fail-under lowered",
        [fc(WORKFLOW, "run: pytest --cov-fail-under=70\n", "run: pytest --cov-fail-under=85\n")],
        [(R.COVERAGE_LOWERED, WORKFLOW, 1)],
    ),
    (
        "fail_under removed",
        [fc(".coveragerc", "[report]\nshow_missing = true\n", "[report]\nfail_under = 90\n")],
        [(R.COVERAGE_LOWERED, ".coveragerc", None)],
    ),
    (
        "jest coverageThreshold lowered",
        [fc("jest.config.js", JEST_OLD.replace("80", "60"), JEST_OLD)],
        [(R.COVERAGE_LOWERED, "jest.config.js", 3)],
    ),
    ("lines without thresholds", [fc("package.json", '{"lines": 10}\n', '{"lines": 20}\n')], []),
]


@pytest.mark.parametrize(("files", "expected"), [pytest.param(f, e, id=i) for i, f, e in RULES])
def test_rules(files: list[FileChange], expected: list[tuple[str, str, int | None]]) -> None:
    assert sorted(found(*files)) == sorted(expected)


def test_findings_are_major_gate_issues_with_file_line_and_evidence() -> None:
    new = with_line(TEST_PY, "", "@pytest.mark.skip(reason='flaky')")
    (finding,) = find_weakening([fc("tests/test_a.py", new, TEST_PY)], POLICY)
    assert finding.issue_key == "gate:test_skipped:tests/test_a.py"
    assert (finding.severity, finding.source) == (Severity.MAJOR, IssueSource.GATE)
    assert finding.evidence == (
        "tests/test_a.py:3: skip marker added: @pytest.mark.skip(reason='flaky')",
    )
    (deleted,) = find_weakening([fc("tests/test_a.py", None, TEST_PY)], POLICY)
    assert deleted.evidence == ("tests/test_a.py: deleted; it held 2 tests",)
    (lowered,) = find_weakening([fc("setup.cfg", "fail_under=50\n", "fail_under=75.5\n")], POLICY)
    assert lowered.evidence == (
        "setup.cfg:1: coverage threshold fail_under lowered from 75.5 to 50",
    )


def test_a_repository_tunes_paths_and_rules() -> None:
    skipped = fc("checks/widget.py", with_line(TEST_PY, "", "@pytest.mark.skip"), TEST_PY)
    assert found(skipped) == []  # not a test path by default
    mine = IntegrityPolicy(test_paths=("checks/**",))
    assert found(skipped, policy=mine) == [(R.TEST_SKIPPED, "checks/widget.py", 3)]
    off = IntegrityPolicy(test_paths=("checks/**",), rules=frozenset(R) - {R.TEST_SKIPPED})
    assert found(skipped, policy=off) == []
    loosened = fc("ci/run.sh", "pytest || true\n", "pytest\n")
    assert found(loosened) == []
    assert found(loosened, policy=IntegrityPolicy(ci_paths=("ci/**",))) == [
        (R.CI_LOOSENED, "ci/run.sh", 1)
    ]


def test_the_gate_asks_for_a_review_and_a_retry_or_failure_still_wins() -> None:
    deleted = fc("tests/test_a.py", None, TEST_PY)
    verdict = evaluate(Change("0" * 40, (deleted,)), GatePolicy())
    assert verdict.decision is Decision.REVIEW
    assert [f.issue_key for f in verdict.findings] == ["gate:test_deleted:tests/test_a.py"]
    too_many = evaluate(Change("0" * 40, (deleted, fc("a.py", "x\n"), fc("b.py", "y\n"))),
                        GatePolicy.for_mode("tweak_light"))  # fmt: skip
    assert too_many.decision is Decision.RETRY
    allowed = GatePolicy(integrity=IntegrityPolicy(rules=frozenset(R) - {R.TEST_DELETED}))
    assert evaluate(Change("0" * 40, (deleted,)), allowed).decision is Decision.PASS


# (phase title, description, the rules its words ask for)
ASKS = [
    ("Remove the obsolete legacy tests", "", {R.TEST_DELETED, R.ASSERTION_REMOVED}),
    ("Delete test files for the old API", "", {R.TEST_DELETED, R.ASSERTION_REMOVED}),
    ("Drop redundant assertions in the parser suite", "", {R.ASSERTION_REMOVED}),
    ("Quarantine the flaky network test", "", {R.TEST_SKIPPED}),
    ("Skip the slow tests on CI", "", {R.TEST_SKIPPED}),
    ("Mark the upload tests as xfail", "", {R.TEST_SKIPPED}),
    ("Lower the coverage threshold to 80", "", {R.COVERAGE_LOWERED}),
    ("Make the lint job non-blocking", "", {R.CI_LOOSENED}),
    ("Relax the CI for docs-only changes", "", {R.CI_LOOSENED}),
    ("Add the settings module", "Do not remove any tests.", set()),
    ("Add the settings module", "Never skip a test to get green.", set()),
    ("Fix the failing tests", "", set()),
    ("Add tests for the loader", "", set()),
    ("Remove the dead code and update the tests", "", set()),
    ("Refactor the worker", "Keep every test.", set()),
]


@pytest.mark.parametrize(("title", "description", "rules"), ASKS)
def test_what_the_task_asks_for(title: str, description: str, rules: set[IntegrityRule]) -> None:
    assert requested_by_task(title, description) == rules


lines = st.lists(
    st.sampled_from(
        [
            "def test_x():",
            "    assert x == 1",
            "    expect(y).toBe(2)",
            "@pytest.mark.skip",
            "it.skip('z', f)",
            "x = 1",
            "",
            "# a comment",
            "    pass",
        ]
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(old=lines, new=lines)
def test_the_rules_never_raise_and_findings_point_into_the_new_file(
    old: list[str], new: list[str]
) -> None:
    before, after = "\n".join(old), "\n".join(new)
    findings = find_weakening([fc("tests/test_p.py", after, before)], POLICY)
    event(f"findings: {sorted({f.category for f in findings})}")
    for finding in findings:
        assert finding.path == "tests/test_p.py"
        assert finding.line is None or 1 <= finding.line <= max(len(new), 1)
    # Adding only lines never removes an assertion, and removing only lines never adds a marker.
    grown = find_weakening([fc("tests/test_p.py", after + "\nx = 2", after)], POLICY)
    assert not [f for f in grown if f.category == R.ASSERTION_REMOVED]
    shrunk = find_weakening([fc("tests/test_p.py", before, before + "\n@pytest.mark.skip")], POLICY)
    assert not [f for f in shrunk if f.category == R.TEST_SKIPPED]


def test_very_large_files_are_matched_as_line_multisets() -> None:
    body = "".join(f"def test_{i}():\n    assert f({i}) == {i}\n" for i in range(2500))
    new = body.replace("    assert f(7) == 7\n", "") + "@pytest.mark.skip\n"
    findings = found(fc("tests/test_big.py", new, body))
    assert sorted(findings) == [
        (R.ASSERTION_REMOVED, "tests/test_big.py", 16),
        (R.TEST_SKIPPED, "tests/test_big.py", 5000),
    ]
