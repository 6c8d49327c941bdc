"""The "Autopack config" verdict: every problem with its line, the profiles, the default case."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.domain.config_feedback import (
    MODELINE,
    Level,
    missing_default_builder,
    review_ruleset,
    unreadable,
)
from app.domain.payload import MalformedPayload, parse_payload
from app.domain.ruleset import RULESET_PATH, SCHEMA_ID
from app.domain.triggers import ConfigChange, config_change, may_matter
from tests.conftest import load_payload

BUILDERS = ("default", "claude")
AUDITORS = ("reviewer",)


def test_a_valid_file_succeeds_and_shows_the_modeline() -> None:
    feedback = review_ruleset(b"builder: claude\nauditor: reviewer\n", BUILDERS, AUDITORS)
    assert feedback.conclusion == "success"
    assert feedback.problems == ()
    assert feedback.title == f"{RULESET_PATH} is valid"
    assert MODELINE in feedback.summary
    assert MODELINE.endswith(f"$schema={SCHEMA_ID}")


def test_every_problem_is_listed_with_its_line_and_a_hint() -> None:
    text = b"version: 1\nbudgts: {}\nrun_scope: multi\nbudgets:\n  run: {token_cap: 0}\n"
    feedback = review_ruleset(text, BUILDERS, AUDITORS)
    assert feedback.conclusion == "failure"
    assert feedback.title == f"3 problems in {RULESET_PATH}"
    by_line = {p.line: p.message for p in feedback.problems}
    assert set(by_line) == {2, 3, 5}
    assert "unknown key 'budgts' (did you mean 'budgets'?)" in by_line[2]
    assert by_line[3].startswith("run_scope:")
    assert "budgets.run.token_cap" in by_line[5]
    assert "- ❌ line 2: budgts: unknown key 'budgts'" in feedback.summary
    assert feedback.summary.index("line 2") < feedback.summary.index("line 3")


def test_a_yaml_error_is_one_problem_at_its_line() -> None:
    feedback = review_ruleset(b"builder: claude\nbudgets: [\n", BUILDERS, AUDITORS)
    assert feedback.conclusion == "failure"
    (problem,) = feedback.problems
    assert problem.line is not None
    assert problem.message.startswith("invalid YAML")


def test_a_builder_this_deployment_lacks_is_a_failure_with_a_suggestion() -> None:
    feedback = review_ruleset(b"# ours\nbuilder: claud\n", BUILDERS, AUDITORS)
    assert feedback.conclusion == "failure"
    (problem,) = feedback.problems
    assert problem.line == 2
    assert "'claud' is not a builder profile" in problem.message
    assert "did you mean 'claude'?" in problem.message


def test_an_unknown_auditor_is_a_warning_only() -> None:
    feedback = review_ruleset(b"auditor: nobody\n", BUILDERS, AUDITORS)
    assert feedback.conclusion == "neutral"
    (problem,) = feedback.problems
    assert problem.level is Level.WARNING
    assert problem.line == 1
    assert "runs go without an auditor" in problem.message


def test_no_file_with_a_default_profile_is_fine() -> None:
    feedback = review_ruleset(None, BUILDERS, AUDITORS)
    assert feedback.conclusion == "success"
    assert "is absent: runs use the defaults" in feedback.title


def test_no_file_and_no_default_profile_says_exactly_that_and_how_to_fix_it() -> None:
    feedback = review_ruleset(None, ["claude", "codex"], AUDITORS)
    assert feedback.conclusion == "failure"
    (problem,) = feedback.problems
    assert problem.line is None
    assert problem.message == missing_default_builder(["claude", "codex"])
    assert "has no `.github/autopack.yml`" in problem.message
    assert "builder profile `default`, which this Autopack deployment does not define" in (
        problem.message
    )
    assert "`builder: <profile>`" in problem.message
    assert "(`claude`, `codex`)" in problem.message
    assert "`[builders.default]` in AUTOPACK_CONFIG" in problem.message
    assert "defines no builder profiles at all" in missing_default_builder([])


def test_an_unreadable_file_is_a_failure() -> None:
    feedback = unreadable("'.github/autopack.yml' is a directory, not a file")
    assert feedback.conclusion == "failure"
    assert "cannot be read" in feedback.problems[0].message


# Independent faults, one line each, and what the problem on that line mentions.
FAULTS = {
    "budgts: {}": "did you mean 'budgets'?",
    "run_scope: multi": "run_scope",
    "safety_profile: safe": "safety_profile",
    "version: 2": "version",
    "builder: 'bad name!'": "builder",
    "probes: 5": "probes",
    "artefacts: {comit: true}": "did you mean 'commit'?",
}
FILLER = ["# a comment", "auditor: null", "ci: {start_timeout_minutes: 5}"]


@settings(deadline=None)
@given(
    st.lists(st.sampled_from([*FAULTS, *FILLER]), min_size=1, max_size=12, unique=True),
)
def test_each_fault_gets_its_own_problem_on_its_own_line(lines: list[str]) -> None:
    faults = [line for line in lines if line in FAULTS]
    event(f"{len(faults)} faults")
    text = ("\n".join(lines) + "\n").encode()
    feedback = review_ruleset(text, BUILDERS, AUDITORS)
    assert len(feedback.problems) == len(faults)
    assert feedback.conclusion == ("failure" if faults else "success")
    for problem in feedback.problems:
        assert problem.line is not None
        line = lines[problem.line - 1]
        assert FAULTS[line] in problem.message


# -- which deliveries change the file --------------------------------------------------------------


def test_a_push_whose_commits_are_not_commits_is_malformed() -> None:
    with pytest.raises(MalformedPayload, match="commits"):
        parse_payload("push", json.dumps(_push(commits="garbage")))


def _push(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(load_payload("push"))
    data.update(changes)
    return data


def _pull(action: str, head_repo: str) -> dict[str, Any]:
    data = copy.deepcopy(load_payload("pull_request.opened"))
    data["action"] = action
    data["pull_request"]["head"]["repo"]["full_name"] = head_repo
    return data


TOUCHED = [{"id": "a", "added": [], "removed": [], "modified": [RULESET_PATH]}]
REMOVED = [{"id": "a", "added": [], "removed": [RULESET_PATH], "modified": []}]


@pytest.mark.parametrize(
    ("event_name", "payload", "expected"),
    [
        ("push", _push(), None),  # README.md only
        ("push", _push(commits=TOUCHED), "head"),
        ("push", _push(commits=REMOVED), "head"),
        ("push", _push(commits=TOUCHED, ref="refs/tags/v1"), None),
        ("push", _push(commits=TOUCHED, deleted=True), None),
        ("pull_request", _pull("opened", "someone/fork"), "fork"),
        ("pull_request", _pull("synchronize", "someone/fork"), "fork"),
        ("pull_request", _pull("closed", "someone/fork"), None),
        ("pull_request", _pull("opened", "Codertocat/Hello-World"), None),  # its push covers it
        ("issues", load_payload("issues.opened"), None),
    ],
)
def test_config_change(event_name: str, payload: dict[str, Any], expected: str | None) -> None:
    typed = parse_payload(event_name, json.dumps(payload))
    change = config_change(event_name, typed)
    if event_name != "issues":  # the webhook endpoint stores exactly these pushes and pulls
        assert may_matter(event_name, typed, 4242) is (change is not None)
    if expected is None:
        assert change is None
    elif expected == "head":
        assert change == ConfigChange("Codertocat/Hello-World", payload["after"])
    else:
        pull = payload["pull_request"]
        assert change == ConfigChange(
            "Codertocat/Hello-World", pull["head"]["sha"], pull["base"]["sha"]
        )


ROUTED = [
    # (id, file, the profiles a repository may name, problems as (line, message start))
    ("every route known", b"builders: {default: claude, tweak_light: default}\n", BUILDERS, []),
    ("an unknown route", b"version: 1\nbuilders:\n  tweak_light: cheap\n", BUILDERS,
     [(2, "builders.tweak_light: 'cheap' is not a builder profile this Autopack deployment")]),
    ("builders.default replaces builder", b"builders: {default: ghost}\n", BUILDERS,
     [(1, "builders.default: 'ghost' is not a builder profile")]),
    ("a profile repositories may not name", b"builder: claude\n", ("default",),
     [(1, "builder: 'claude' is not a builder profile")]),
    ("two unknown routes", b"builders: {debt_cleanup: janitor, schema_heavy: big}\n", BUILDERS,
     [(1, "builders.schema_heavy: 'big'"), (1, "builders.debt_cleanup: 'janitor'")]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "builders", "expected"), [pytest.param(*case[1:], id=case[0]) for case in ROUTED]
)
def test_every_routed_builder_profile_is_checked(
    text: bytes, builders: tuple[str, ...], expected: list[tuple[int, str]]
) -> None:
    feedback = review_ruleset(text, builders, AUDITORS)
    assert feedback.conclusion == ("failure" if expected else "success")
    got = [(p.line, p.message) for p in feedback.problems]
    assert len(got) == len(expected)
    for (line, message), (want_line, want) in zip(got, expected, strict=True):
        assert line == want_line
        assert message.startswith(want), message
        assert message.endswith("runs are refused")
