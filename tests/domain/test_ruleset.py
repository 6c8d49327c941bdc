"""The repository ruleset: defaults, safe YAML loading, error lines, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from app.domain.classification import CategoryRule
from app.domain.gate import MODE_LIMITS
from app.domain.issue_record import Severity
from app.domain.ruleset import (
    MAX_RULESET_BYTES,
    REGENERATE,
    SCHEMA_PATH,
    OnNoCI,
    Ruleset,
    RulesetError,
    load_ruleset,
    schema_json,
)
from app.domain.taxonomy import (
    HIGH_RISK,
    AuditorProfile,
    BuilderMode,
    CIProfile,
    RunScope,
    SafetyProfile,
    TaskCategory,
)
from app.domain.test_integrity import DEFAULT_CI_PATHS, DEFAULT_TEST_PATHS, IntegrityRule

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", [None, "", "# only a comment\n", b"\n\n", "---\n"])
def test_absent_or_empty_file_means_all_defaults(text: str | bytes | None) -> None:
    assert load_ruleset(text) == Ruleset()


def test_playbook_defaults() -> None:
    r = Ruleset()
    assert (r.version, r.run_scope, r.safety_profile) == (
        1,
        RunScope.MULTI_TIER,
        SafetyProfile.NORMAL,
    )
    assert (r.builder, r.auditor) == ("default", None)
    assert (r.budgets.run.token_cap, r.budgets.run.max_phases, r.budgets.run.wall_minutes) == (
        5_000_000,
        25,
        120,
    )
    assert r.budgets.tier.token_cap_factor == 3
    assert r.budgets.tier.minor_per_phase_safety_critical == 1
    assert r.budgets.phase.max_builder_attempts > r.budgets.phase.max_auditor_attempts
    assert (r.aging.minor_to_major_after_runs, r.aging.minor_to_major_after_tiers) == (3, 2)
    assert set(r.categories.overrides) == set(HIGH_RISK)
    security = r.categories.override_for(TaskCategory.SECURITY_AUTH)
    assert security.auditor_profile is AuditorProfile.SECURITY_REVIEW
    assert security.auto_apply is False
    assert r.categories.override_for(TaskCategory.DOCS).ci_profile is None
    assert r.ci.profiles[CIProfile.STRICT].on_no_ci is OnNoCI.FAIL
    assert r.ci.profiles[CIProfile.NORMAL].required == "changed"
    assert {m.value: (v.max_files, v.max_lines) for m, v in r.gate.modes.items()} == MODE_LIMITS
    assert (r.probes, r.artefacts.commit) == ((), True)


FULL = """\
version: 1
run_scope: single_tier
safety_profile: safety_critical
builder: claude-large
auditor: reviewer
budgets:
  run: {token_cap: 1_000_000, max_phases: 5}
  phase:
    max_builder_attempts: 2
aging: {minor_to_major_after_runs: 4, debt_cleanup: {enabled: no}}
categories:
  rules:
    - {category: docs, keywords: [handbook], paths: ["manual/**"]}
  overrides:
    schema_change: {auto_apply: true}
    docs: {ci_profile: strict}
ci:
  ignore_checks: ["codecov/*"]
  profiles:
    strict: {max_reruns: 0}
    normal: {required: ["test*", lint]}
gate:
  protected_paths: ["secrets/**"]
  modes:
    tweak_light: {max_files: 4}
probes:
  - {name: unit, command: [pytest, -q]}
artefacts: {commit: false}
"""


def test_full_file_and_field_by_field_merging() -> None:
    r = load_ruleset(FULL.encode())
    assert (r.run_scope, r.safety_profile, r.builder, r.auditor) == (
        RunScope.SINGLE_TIER,
        SafetyProfile.SAFETY_CRITICAL,
        "claude-large",
        "reviewer",
    )
    assert (r.budgets.run.token_cap, r.budgets.run.max_phases, r.budgets.run.wall_minutes) == (
        1_000_000,
        5,
        120,
    )
    assert r.budgets.phase.max_builder_attempts == 2
    assert r.aging.debt_cleanup.enabled is False
    assert r.aging.debt_cleanup.token_cap == 100_000
    assert r.categories.rules == (
        CategoryRule(category=TaskCategory.DOCS, keywords=("handbook",), paths=("manual/**",)),
    )
    schema = r.categories.override_for(TaskCategory.SCHEMA_CHANGE)
    assert (schema.auto_apply, schema.ci_profile, schema.max_builder_attempts) == (
        True,
        CIProfile.STRICT,
        2,
    )
    assert r.categories.override_for(TaskCategory.DOCS).ci_profile is CIProfile.STRICT
    strict = r.ci.profiles[CIProfile.STRICT]
    assert (strict.required, strict.max_reruns, strict.on_no_ci) == ("all", 0, OnNoCI.FAIL)
    assert r.ci.profiles[CIProfile.NORMAL].required == ("test*", "lint")
    assert (
        r.gate.modes[BuilderMode.TWEAK_LIGHT].max_files,
        r.gate.modes[BuilderMode.TWEAK_LIGHT].max_lines,
    ) == (4, 200)
    policy = r.gate.policy_for(BuilderMode.TWEAK_LIGHT)
    assert (policy.max_files, policy.max_lines) == (4, 200)
    assert "secrets/**" in policy.protected
    assert r.probes[0].command == ("pytest", "-q")
    assert r.artefacts.commit is False
    # What was loaded survives a JSON round trip and validates against the published schema.
    assert Ruleset.model_validate_json(r.model_dump_json()) == r
    jsonschema.validate(r.model_dump(mode="json"), json.loads(schema_json()))


ROUTES = [
    # (id, ruleset, builder mode, debt cleanup?, the profile, every profile named)
    ("defaults", "", BuilderMode.TWEAK_LIGHT, False, "default", ("default",)),
    ("builder only", "builder: claude", BuilderMode.SCHEMA_HEAVY, True, "claude", ("claude",)),
    ("builders.default", "builders: {default: strong}", BuilderMode.REFACTOR_HEAVY, False,
     "strong", ("strong",)),
    ("a routed mode", "builders: {default: strong, tweak_light: cheap}", BuilderMode.TWEAK_LIGHT,
     False, "cheap", ("strong", "cheap")),
    ("the debt cleanup route first", "builders: {scaffolding_heavy: mid, debt_cleanup: janitor}",
     BuilderMode.SCAFFOLDING_HEAVY, True, "janitor", ("default", "mid", "janitor")),
    ("its mode's route without one", "builders: {scaffolding_heavy: mid}",
     BuilderMode.SCAFFOLDING_HEAVY, True, "mid", ("default", "mid")),
    ("builder and builders.default the same", "builder: x\nbuilders: {default: x, schema_heavy: x}",
     BuilderMode.SCHEMA_HEAVY, False, "x", ("x",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("yaml", "mode", "debt", "profile", "named"),
    [pytest.param(*route[1:], id=route[0]) for route in ROUTES],
)
def test_builder_routing(
    yaml: str, mode: BuilderMode, debt: bool, profile: str, named: tuple[str, ...]
) -> None:
    ruleset = load_ruleset(yaml)
    assert ruleset.builder_for(mode, debt_cleanup=debt) == profile
    assert ruleset.builder_profiles() == named


def test_every_builder_mode_can_be_routed() -> None:
    routes = set(Ruleset().builders.model_dump())
    assert routes == {mode.value for mode in BuilderMode} | {"default", "debt_cleanup"}


def test_high_risk_issues_are_major_by_default_and_can_be_relaxed() -> None:
    defaults = Ruleset().categories
    for category in HIGH_RISK:
        assert defaults.override_for(category).issue_severity is Severity.MAJOR
    assert defaults.override_for(TaskCategory.DOCS).issue_severity is None
    relaxed = load_ruleset("categories: {overrides: {bulk_operation: {issue_severity: minor}}}")
    bulk = relaxed.categories.override_for(TaskCategory.BULK_OPERATION)
    assert bulk.issue_severity is Severity.MINOR
    assert bulk.ci_profile is CIProfile.STRICT  # the rest of the row is kept


def test_models_are_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        Ruleset().budgets.run.token_cap = 1  # type: ignore[misc]


BAD: list[tuple[str, str | bytes, int | None, str]] = [  # name, text, line, message
    (
        "negative budget",
        "budgets:\n  run:\n    token_cap: -1\n",
        3,
        "budgets.run.token_cap: Input should be greater than 0",
    ),
    (
        "zero attempts",
        "budgets: {phase: {max_builder_attempts: 0}}",
        1,
        "budgets.phase.max_builder_attempts: Input should be greater than 0",
    ),
    (
        "wrong type",
        "budgets:\n  run:\n    wall_minutes: lots\n",
        3,
        "budgets.run.wall_minutes: Input should be a valid integer",
    ),
    ("list for mapping", "budgets: [1, 2]\n", 1, "budgets: Input should be a valid dictionary"),
    (
        "unknown key",
        "version: 1\nbudgets:\n  run:\n    tokn_cap: 5\n",
        4,
        "budgets.run.tokn_cap: unknown key 'tokn_cap' (did you mean 'token_cap'?)",
    ),
    (
        "unknown top key",
        "run_scop: single_tier\n",
        1,
        "run_scop: unknown key 'run_scop' (did you mean 'run_scope'?)",
    ),
    ("unknown key no match", "zzz: 1\n", 1, "zzz: unknown key 'zzz'"),
    (
        "bad enum",
        "\n\nrun_scope: single_teir\n",
        3,
        "run_scope: Input should be 'multi_tier' or 'single_tier' (did you mean 'single_tier'?)",
    ),
    (
        "bad enum key",
        "categories:\n  overrides:\n    schema_chnage: {ci_profile: strict}\n",
        3,
        "(did you mean 'schema_change'?)",
    ),
    (
        "bad nested enum",
        "categories:\n  rules:\n    - {category: docs, keywords: [x]}\n    - {category: nope}\n",
        4,
        "categories.rules[1].category: Input should be",
    ),
    ("bad version", "version: 2\n", 1, "version: Input should be 1"),
    (
        "two defaults",
        "builder: claude\nbuilders:\n  default: codex\n",
        2,
        "builders: default names 'codex' but builder names 'claude'",
    ),
    (
        "unknown route",
        "builders: {tweak_lite: cheap}\n",
        1,
        "builders.tweak_lite: unknown key 'tweak_lite' (did you mean 'tweak_light'?)",
    ),
    ("bad routed name", "builders: {default: '../x'}\n", 1, "builders.default: String should"),
    (
        "bad issue severity",
        "categories: {overrides: {docs: {issue_severity: fatal}}}\n",
        1,
        "categories.overrides.docs.issue_severity: Input should be 'minor' or 'major'",
    ),
    ("bad builder name", "builder: '../etc'\n", 1, "builder: String should match pattern"),
    (
        "bad required",
        "ci:\n  profiles:\n    normal: {required: 5}\n",
        3,
        "ci.profiles.normal.required: must be 'changed', 'all' or a non-empty list",
    ),
    (
        "strict not all",
        "ci:\n  profiles:\n    strict: {required: changed}\n",
        2,
        "ci.profiles: strict.required must be 'all'",
    ),
    (
        "strict reruns over one",
        "ci:\n  profiles:\n    normal: {max_reruns: 3}\n    strict: {max_reruns: 2}\n",
        2,
        "ci.profiles: strict.max_reruns (2) must be at most 1 and at most normal.max_reruns (3)",
    ),
    (
        "strict laxer than normal",
        "ci:\n  profiles:\n    normal: {max_reruns: 0}\n    strict: {max_reruns: 1}\n",
        2,
        "strict.max_reruns (1) must be at most 1 and at most normal.max_reruns (0)",
    ),
    (
        "empty glob",
        "gate: {protected_paths: ['/']}",
        1,
        "gate.protected_paths[0]: String should match pattern",
    ),
    ("missing key", "probes:\n  - {name: x}\n", 2, "probes[0]: missing required key 'command'"),
    (
        "empty command",
        "probes:\n  - name: x\n    command: []\n",
        3,
        "probes[0].command: Tuple should have at least 1 item",
    ),
    (
        "tabs",
        "budgets:\n\trun: 1\n",
        2,
        "invalid YAML: found character '\\t' that cannot start any token",
    ),
    (
        "duplicate key",
        "version: 1\nbuilder: a\nbuilder: b\n",
        3,
        "invalid YAML: duplicate key 'builder'",
    ),
    (
        "nested duplicate",
        "ci:\n  profiles:\n    strict: {max_reruns: 1, max_reruns: 2}\n",
        3,
        "duplicate key 'max_reruns'",
    ),
    ("anchor", "a: &x [1]\n", 1, "anchors and aliases"),
    ("alias bomb", "a: &a ['x','x']\nb: &b [*a,*a]\nc: [*b,*b]\n", 1, "anchors and aliases"),
    ("merge key", "<<: {version: 1}\n", 1, "merge keys (<<) are not allowed"),
    ("non-string key", "1: 2\n", 1, "keys must be plain strings"),
    ("bool key", "true: 2\n", 1, "keys must be plain strings"),
    (
        "python tag",
        "a: !!python/object/apply:os.system [ls]\n",
        1,
        "could not determine a constructor",
    ),
    ("syntax", "a: [1, 2\nb: 3\n", 2, "invalid YAML: expected ',' or ']'"),
    ("two documents", "a: 1\n---\nb: 2\n", 2, "invalid YAML: but found another document"),
    ("deep nesting", "a: " + "[" * 5000 + "]" * 5000, 1, "nested deeper than 32 levels"),
    ("list root", "- a\n- b\n", 1, "the top level must be a mapping"),
    ("scalar root", "just text", 1, "the top level must be a mapping"),
    ("null value", "budgets: null\n", 1, "budgets: Input should be a valid dictionary"),
    ("control character", b"version: 1\nbuilder: \x00x\n", 2, "character #x0000 is not allowed"),
    ("binary garbage", b"\x89PNG\r\n\x1a\n\xff\xfe", None, "not UTF-8 text"),
    ("huge file", "a: " + "x" * MAX_RULESET_BYTES, None, f"larger than {MAX_RULESET_BYTES} bytes"),
]


@pytest.mark.parametrize(
    ("text", "line", "message"), [case[1:] for case in BAD], ids=[c[0] for c in BAD]
)
def test_bad_rulesets(text: str | bytes, line: int | None, message: str) -> None:
    with pytest.raises(RulesetError) as caught:
        load_ruleset(text, path="cfg/autopack.yml")
    error = caught.value
    assert error.path == "cfg/autopack.yml"
    assert error.line == line
    rendered = str(error)
    assert "\n" not in rendered
    prefix = f"`cfg/autopack.yml` line {line}: " if line is not None else "`cfg/autopack.yml`: "
    assert rendered.startswith(prefix)
    assert message in rendered


def test_error_format_matches_the_contract() -> None:
    text = "\n" * 11 + "budgets:\n  run: {token_cap: 0}\n"
    with pytest.raises(RulesetError) as caught:
        load_ruleset(text)
    assert str(caught.value) == (
        "`.github/autopack.yml` line 13: budgets.run.token_cap: Input should be greater than 0"
    )
    assert caught.value.column == 9  # the key inside the flow mapping


def test_committed_schema_is_current() -> None:
    committed = (ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == schema_json(), f"{SCHEMA_PATH} is stale; regenerate it with: {REGENERATE}"


def test_schema_is_valid_and_describes_every_field() -> None:
    schema = json.loads(schema_json())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(Ruleset().model_dump(mode="json"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"budgets": {"run": {"token_cap": -1}}}, schema)
    for name, definition in [("Ruleset", schema), *schema["$defs"].items()]:
        for field, spec in definition.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths = []
    for name, info in model.model_fields.items():
        paths.append(prefix + name)
        nested: Any = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            paths += _field_paths(nested, f"{prefix}{name}.")
    return paths


def test_docs_mention_every_key() -> None:
    docs = (ROOT / "docs" / "ruleset.md").read_text(encoding="utf-8")
    leaves = [path.rsplit(".", 1)[-1] for path in _field_paths(Ruleset)]
    missing = [leaf for leaf in leaves if f"`{leaf}`" not in docs and f".{leaf}`" not in docs]
    assert missing == []


def test_test_integrity_is_tuned_in_the_gate_section() -> None:
    r = load_ruleset(
        "gate:\n"
        "  test_integrity:\n"
        "    test_paths: [checks/**]\n"
        "    disabled: [coverage_lowered, ci_loosened]\n"
    )
    integrity = r.gate.test_integrity
    assert integrity.test_paths == ("checks/**",)
    assert integrity.ci_paths == DEFAULT_CI_PATHS  # left out: the default list
    policy = r.gate.policy_for(BuilderMode.SCAFFOLDING_HEAVY).integrity
    assert policy.rules == {
        IntegrityRule.TEST_DELETED,
        IntegrityRule.TEST_SKIPPED,
        IntegrityRule.ASSERTION_REMOVED,
    }
    assert Ruleset().gate.test_integrity.test_paths == DEFAULT_TEST_PATHS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "gate:\n  test_integrity:\n    disabled: [test_skiped]\n",
            "`.github/autopack.yml` line 3: gate.test_integrity.disabled[0]: Input should be",
        ),
        (
            "gate:\n  test_integrity:\n    test_path: [x]\n",
            "unknown key 'test_path' (did you mean 'test_paths'?)",
        ),
        ("gate:\n  test_integrity:\n    ci_paths: ['']\n", "gate.test_integrity.ci_paths[0]"),
    ],
)
def test_test_integrity_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(RulesetError) as caught:
        load_ruleset(text)
    assert message in str(caught.value)
