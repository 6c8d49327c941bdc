"""The repository ruleset: `.github/autopack.yml`, validated, with the playbook's defaults.

`load_ruleset` is pure: it gets the file's text (None when the file is absent) and returns a
frozen `Ruleset` or raises `RulesetError` naming the file and the line of the offending key.
The YAML is read safely: no tags beyond plain data, no anchors or aliases (so no alias bombs),
no duplicate keys, a size cap and a nesting cap. `docs/ruleset.md` documents every key.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails

from app.domain.classification import DEFAULT_CATEGORY_RULES, CategoryRule, Glob
from app.domain.gate import MODE_LIMITS, GatePolicy
from app.domain.issue_record import Severity
from app.domain.taxonomy import (
    HIGH_RISK,
    AuditorProfile,
    BuilderMode,
    CIProfile,
    Complexity,
    RunScope,
    SafetyProfile,
    TaskCategory,
)
from app.domain.test_integrity import (
    DEFAULT_CI_PATHS,
    DEFAULT_TEST_PATHS,
    IntegrityPolicy,
    IntegrityRule,
)

RULESET_PATH = ".github/autopack.yml"
MAX_RULESET_BYTES = 64 * 1024
MAX_DEPTH = 32
SCHEMA_PATH = "docs/autopack.schema.json"
# Where editors fetch the schema (`# yaml-language-server: $schema=<SCHEMA_ID>` in the file).
SCHEMA_ID = "https://raw.githubusercontent.com/autopack/autopack/main/docs/autopack.schema.json"
REGENERATE = ".venv/bin/python -m app.domain.ruleset_schema"

Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class RunBudgets(_Model):
    """Caps for a whole run."""

    token_cap: Positive = 5_000_000
    """Tokens all builders and auditors of the run may spend together."""
    max_phases: Annotated[int, Field(gt=0, le=500)] = 25
    """Phases one run does; larger plans are split over several runs."""
    max_minor_issues_per_phase: NonNegative = 3
    """Distinct minor issues the run tolerates, per phase it does."""
    wall_minutes: Positive = 120
    """Wall-clock minutes before the run fails as out of budget."""


class TierBudgets(_Model):
    """Caps for each tier, as multiples of its phase count."""

    token_cap_factor: Positive = 3
    """A tier may spend this many times the sum of its phases' incident token caps."""
    ci_runs_per_phase: Positive = 2
    """CI runs a tier may start, per phase."""
    minor_per_phase: NonNegative = 2
    """Distinct minor issues a tier tolerates per phase (normal safety profile)."""
    minor_per_phase_safety_critical: NonNegative = 1
    """Distinct minor issues a tier tolerates per phase (safety_critical)."""
    major_tolerance_safety_critical: NonNegative = 0
    """Unresolved major issues a safety_critical tier tolerates."""


class PhaseBudgets(_Model):
    """Caps for each phase."""

    max_builder_attempts: Positive = 3
    """Builder attempts before the auditor is called."""
    max_auditor_attempts: NonNegative = 1
    """Auditor attempts before the run fails (0: no auditor escalation)."""
    incident_token_cap: Positive = 250_000
    """Tokens one phase may spend, builder and auditor together."""
    wall_minutes: Positive = 30
    """Wall-clock minutes for one phase, CI included."""


class Budgets(_Model):
    """Run, tier and phase budgets."""

    run: RunBudgets = RunBudgets()
    """Run caps: tokens, phases, minor issues, wall time."""
    tier: TierBudgets = TierBudgets()
    """Tier caps, relative to the tier's phase count."""
    phase: PhaseBudgets = PhaseBudgets()
    """Phase caps: attempts, tokens, wall time."""


class DebtCleanup(_Model):
    """The debt_cleanup phase a run may insert for aged minor issues."""

    enabled: bool = True
    """Insert a debt_cleanup phase when aged issues exist."""
    token_cap: Positive = 100_000
    """Token cap of that phase."""
    max_issues: Positive = 5
    """Aged issues one cleanup phase takes on."""


class Aging(_Model):
    """When a recurring minor issue starts counting as major."""

    minor_to_major_after_runs: Positive = 3
    """A minor issue seen in more runs than this counts as major."""
    minor_to_major_after_tiers: Positive = 2
    """A minor issue seen in more tiers than this counts as major."""
    debt_cleanup: DebtCleanup = DebtCleanup()
    """The debt_cleanup phase."""


_K = TypeVar("_K")
_M = TypeVar("_M", bound=BaseModel)


def _merge(defaults: dict[_K, _M], given: dict[_K, _M]) -> dict[_K, _M]:
    """`given` over `defaults`, field by field: a key set in the file wins, the rest is kept."""
    merged = dict(defaults)
    for key, value in given.items():
        base = merged.get(key)
        explicit = {name: getattr(value, name) for name in value.model_fields_set}
        merged[key] = value if base is None else base.model_copy(update=explicit)
    return merged


class CategoryOverride(_Model):
    """Per-category settings; unset fields keep the playbook's value."""

    complexity: Complexity | None = None
    """Complexity given to phases of this category."""
    builder_mode: BuilderMode | None = None
    """Builder mode for phases of this category."""
    ci_profile: CIProfile | None = None
    """CI profile for phases of this category."""
    auditor_profile: AuditorProfile | None = None
    """Auditor profile used when the auditor reviews such a phase."""
    max_builder_attempts: Positive | None = None
    """Builder attempts for such a phase (instead of budgets.phase.max_builder_attempts)."""
    auto_apply: bool | None = None
    """False: no change of such a phase is pushed without a review (the auditor's, or with no
    auditor a person's on the pull request)."""
    issue_severity: Severity | None = None
    """major: issues of this category, and issues the builder or auditor report from its
    phases, count as major whatever severity they were reported with (high-risk default)."""


def _high_risk_overrides() -> dict[TaskCategory, CategoryOverride]:
    return {
        category: CategoryOverride(
            complexity=row.complexity,
            builder_mode=row.builder_mode,
            ci_profile=row.ci_profile,
            auditor_profile=row.auditor_profile,
            max_builder_attempts=row.max_builder_attempts,
            auto_apply=row.auto_apply,
            issue_severity=Severity.MAJOR,
        )
        for category, row in HIGH_RISK.items()
    }


class Categories(_Model):
    """How phases get a task_category, and what each category changes."""

    rules: tuple[CategoryRule, ...] = DEFAULT_CATEGORY_RULES
    """First match wins (title first, then paths, then description); none: feature."""
    overrides: dict[TaskCategory, CategoryOverride] = Field(default_factory=_high_risk_overrides)
    """Per task_category; merged field by field over the playbook's high-risk table."""

    @field_validator("overrides", mode="after")
    @classmethod
    def _merge_high_risk(
        cls, value: dict[TaskCategory, CategoryOverride]
    ) -> dict[TaskCategory, CategoryOverride]:
        return dict(sorted(_merge(_high_risk_overrides(), value).items()))

    def override_for(self, category: TaskCategory) -> CategoryOverride:
        """The settings in force for `category` (all None when nothing is configured)."""
        return self.overrides.get(category, CategoryOverride())


class OnNoCI(StrEnum):
    """What a phase's CI result is when no check run starts before the timeout."""

    PASS_WITH_MAJOR = "pass_with_major"  # noqa: S105 (not a password)
    FAIL = "fail"


class CIProfileRules(_Model):
    """What one CI profile requires."""

    required: Literal["changed", "all"] | tuple[Glob, ...] = "changed"
    """`changed`: checks and statuses reported on the pushed commit; `all`: also every one seen
    on the phase's base commit; or a list of check-name globs that must exist and pass."""
    max_reruns: Annotated[int, Field(ge=0, le=5)] = 1
    """Re-runs a failed check gets; one that then passes is a flake (a minor issue). Strict: at
    most 1, and no more than normal."""
    on_no_ci: OnNoCI = OnNoCI.PASS_WITH_MAJOR
    """No check run within ci.start_timeout_minutes: pass with a major issue, or fail."""

    @field_validator("required", mode="before")
    @classmethod
    def _check_required(cls, value: object) -> object:
        # One clear message instead of one error per member of the union.
        if value in ("changed", "all"):
            return value
        if isinstance(value, list | tuple) and value and all(_is_glob(item) for item in value):
            return tuple(value)
        raise ValueError("must be 'changed', 'all' or a non-empty list of check-name globs")


def _is_glob(item: object) -> bool:
    return isinstance(item, str) and 0 < len(item) <= 200 and bool(item.strip("/"))


# The most flake re-runs the strict profile may allow (its default is none).
STRICT_MAX_RERUNS = 1


def _default_ci_profiles() -> dict[CIProfile, CIProfileRules]:
    return {
        CIProfile.NORMAL: CIProfileRules(),
        CIProfile.STRICT: CIProfileRules(required="all", max_reruns=0, on_no_ci=OnNoCI.FAIL),
    }


class CISettings(_Model):
    """How the repository's CI is read."""

    start_timeout_minutes: Positive = 10
    """Minutes to wait for the first check run on a pushed commit."""
    finish_timeout_minutes: Positive = 60
    """Minutes to wait for every required check to finish."""
    ignore_checks: tuple[Glob, ...] = ()
    """Check names (globs) never counted. Autopack's own check run is always ignored."""
    profiles: dict[CIProfile, CIProfileRules] = Field(default_factory=_default_ci_profiles)
    """The normal and strict profiles; a profile left out keeps its default."""

    @field_validator("profiles", mode="after")
    @classmethod
    def _fill_profiles(
        cls, value: dict[CIProfile, CIProfileRules]
    ) -> dict[CIProfile, CIProfileRules]:
        profiles = _merge(_default_ci_profiles(), value)
        strict, normal = profiles[CIProfile.STRICT], profiles[CIProfile.NORMAL]
        # Strict must stay stricter than normal whatever a repository writes.
        if strict.required != "all":
            raise ValueError("strict.required must be 'all' (strict reads every check)")
        if strict.max_reruns > min(STRICT_MAX_RERUNS, normal.max_reruns):
            raise ValueError(
                f"strict.max_reruns ({strict.max_reruns}) must be at most {STRICT_MAX_RERUNS} "
                f"and at most normal.max_reruns ({normal.max_reruns})"
            )
        return profiles


class ModeLimits(_Model):
    """Size limits of one builder mode's change."""

    max_files: Positive = 30
    """Files one attempt may change (default per mode: see docs/ruleset.md)."""
    max_lines: Positive = 3000
    """Lines (added + removed) one attempt may change (default per mode)."""


def _default_modes() -> dict[BuilderMode, ModeLimits]:
    return {
        BuilderMode(mode): ModeLimits(max_files=files, max_lines=lines)
        for mode, (files, lines) in MODE_LIMITS.items()
    }


class TestIntegrity(_Model):
    """Which changes count as weakening the tests; see docs/ruleset.md, "Test integrity"."""

    test_paths: tuple[Glob, ...] = DEFAULT_TEST_PATHS
    """Globs of test files; setting it replaces the default list."""
    ci_paths: tuple[Glob, ...] = DEFAULT_CI_PATHS
    """Globs of CI and test-runner configuration; setting it replaces the default list."""
    disabled: tuple[IntegrityRule, ...] = ()
    """Rules switched off for this repository."""

    def policy(self) -> IntegrityPolicy:
        """The test-integrity part of the gate policy (before what a phase's task asks for)."""
        rules = frozenset(IntegrityRule) - set(self.disabled)
        return IntegrityPolicy(self.test_paths, self.ci_paths, rules)


class GateSettings(_Model):
    """What the gate lets a builder's change do."""

    protected_paths: tuple[Glob, ...] = ()
    """Extra protected globs; the workflows, the ruleset, CODEOWNERS and .git/** always are."""
    allow_workflow_changes: bool = False
    """Let phases change .github/workflows/** and .github/actions/** (needs the workflows
    permission)."""
    allow_binary: bool = False
    """Let phases add or change binary files."""
    max_file_bytes: Positive = 1024 * 1024
    """Largest file a phase may write."""
    modes: dict[BuilderMode, ModeLimits] = Field(default_factory=_default_modes)
    """Per builder mode limits; a mode left out keeps its default."""
    test_integrity: TestIntegrity = TestIntegrity()
    """Test paths, CI configuration paths and the test-integrity rules switched off."""

    @field_validator("modes", mode="after")
    @classmethod
    def _fill_modes(cls, value: dict[BuilderMode, ModeLimits]) -> dict[BuilderMode, ModeLimits]:
        return _merge(_default_modes(), value)

    def policy_for(self, mode: BuilderMode) -> GatePolicy:
        """The gate policy for a phase in `mode`."""
        limits = self.modes[mode]
        return GatePolicy.for_mode(
            mode.value,
            max_files=limits.max_files,
            max_lines=limits.max_lines,
            protected_globs=self.protected_paths,
            allow_workflow_changes=self.allow_workflow_changes,
            allow_binary=self.allow_binary,
            max_file_bytes=self.max_file_bytes,
            integrity=self.test_integrity.policy(),
        )


class Probe(_Model):
    """A local check run in the workspace after the builder (only if the operator allows)."""

    name: Name
    """Shown in reports and used in issue keys."""
    command: tuple[Annotated[str, Field(min_length=1)], ...] = Field(min_length=1)
    """argv, run without a shell."""


class Artefacts(_Model):
    """Where run artefacts go besides AUTOPACK_DATA_DIR."""

    commit: bool = True
    """Commit .autonomous_runs/<run>/ on the integration branch."""


class BuilderRouting(_Model):
    """Which operator builder profile works on which phases; a key left out falls back to
    `default`, and `default` to `builder`."""

    default: Name | None = None
    """Every phase not routed below (the same as the top-level `builder`)."""
    tweak_light: Name | None = None
    """Phases in builder mode tweak_light (1-2 files, small diffs)."""
    scaffolding_heavy: Name | None = None
    """Phases in builder mode scaffolding_heavy (new modules)."""
    refactor_heavy: Name | None = None
    """Phases in builder mode refactor_heavy."""
    schema_heavy: Name | None = None
    """Phases in builder mode schema_heavy."""
    debt_cleanup: Name | None = None
    """The debt_cleanup phase a run inserts for aged issues (before its builder mode)."""


class Ruleset(_Model):
    """`.github/autopack.yml`: every key is optional."""

    version: Literal[1] = 1
    """Format version."""
    run_scope: RunScope = RunScope.MULTI_TIER
    """multi_tier: one run does every tier; single_tier: one tier per `autopack:run` label."""
    safety_profile: SafetyProfile = SafetyProfile.NORMAL
    """safety_critical: strict CI, tighter issue tolerance, majors fail the run."""
    builder: Name = "default"
    """Name of an operator builder profile (AUTOPACK_CONFIG [builders]) for every phase that
    `builders` does not route elsewhere."""
    builders: BuilderRouting = BuilderRouting()
    """Builder profiles per builder mode and for debt cleanup, e.g. {default: strong,
    tweak_light: cheap}."""
    auditor: Name | None = None
    """Name of an operator auditor profile; null: no auditor."""
    budgets: Budgets = Budgets()
    """Token, attempt, CI and time budgets."""
    aging: Aging = Aging()
    """Issue aging thresholds and debt cleanup."""
    categories: Categories = Categories()
    """Task category rules and per-category overrides."""
    ci: CISettings = CISettings()
    """CI timeouts and profiles."""
    gate: GateSettings = GateSettings()
    """Gate limits and protected paths."""
    probes: tuple[Probe, ...] = Field(default=(), max_length=20)
    """Local probes; run only if the operator allows probes."""
    artefacts: Artefacts = Artefacts()
    """Run artefacts."""

    @field_validator("builders", mode="after")
    @classmethod
    def _one_default(cls, value: BuilderRouting, info: ValidationInfo) -> BuilderRouting:
        builder = info.data.get("builder", "default")
        if value.default is not None and builder not in ("default", value.default):
            raise ValueError(
                f"default names {value.default!r} but builder names {builder!r}: they are the "
                "same setting, keep one"
            )
        return value

    def builder_for(self, mode: BuilderMode, *, debt_cleanup: bool = False) -> str:
        """The builder profile that works on a phase in `mode` (or the debt_cleanup phase)."""
        routing = self.builders
        routed = routing.debt_cleanup if debt_cleanup else None
        return routed or getattr(routing, mode.value) or routing.default or self.builder

    def builder_profiles(self) -> tuple[str, ...]:
        """Every builder profile the ruleset names (the default first, then the routed ones)."""
        routing = self.builders
        names = (routing.default or self.builder, *routing.model_dump().values())
        return tuple(dict.fromkeys(name for name in names if name))


def schema_json() -> str:
    """The ruleset's JSON Schema as written to docs/autopack.schema.json."""
    schema = Ruleset.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


class RulesetError(ValueError):
    """An invalid ruleset; `str()` is one line naming the file and the line."""

    def __init__(self, path: str, line: int | None, column: int | None, message: str) -> None:
        self.path, self.line, self.column = path, line, column
        self.message = " ".join(message.split())
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" line {self.line}" if self.line is not None else ""
        return f"`{self.path}`{where}: {self.message}"


class _NoAliasLoader(yaml.SafeLoader):
    """Safe loading that refuses anchors, aliases and deep nesting while composing."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases (&name, *name) are not allowed",
                problem_mark=event.start_mark,
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_ruleset(text: str | bytes | None, path: str = RULESET_PATH) -> Ruleset:
    """Validate the ruleset file's content (None: the file is absent, so all defaults)."""
    root, data = _compose(text, path)
    if root is None:
        return Ruleset()
    try:
        return Ruleset.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, root, exc.errors()[0]) from None


def ruleset_errors(text: str | bytes | None, path: str = RULESET_PATH) -> list[RulesetError]:
    """Every problem in the file, in order (a YAML error hides what follows it); [] if valid."""
    try:
        root, data = _compose(text, path)
    except RulesetError as exc:
        return [exc]
    if root is None:
        return []
    try:
        Ruleset.model_validate(data)
    except ValidationError as exc:
        return [_validation_error(path, root, error) for error in exc.errors()]
    return []


def _compose(text: str | bytes | None, path: str) -> tuple[yaml.Node | None, Any]:
    """The YAML root node and its data, checked for safety; (None, None) means all defaults."""
    if text is None:
        return None, None
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_RULESET_BYTES:
        raise RulesetError(path, None, None, f"larger than {MAX_RULESET_BYTES} bytes")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesetError(path, None, None, f"not UTF-8 text (byte {exc.start})") from None
    try:
        loader = _NoAliasLoader(source)
    except yaml.reader.ReaderError as exc:
        line = source.count("\n", 0, exc.position) + 1
        message = f"invalid YAML: character #x{exc.character:04x} is not allowed"
        raise RulesetError(path, line, None, message) from None
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None  # empty or only comments
        _check_keys(root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = f"invalid YAML: {exc.problem or exc.context or 'syntax error'}"
        raise _at(path, mark, message) from None
    except yaml.YAMLError as exc:
        raise RulesetError(path, None, None, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise RulesetError(path, None, None, "invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    if data is None:
        return None, None  # an explicitly empty document ("---")
    if not isinstance(data, dict):
        raise _at(path, root.start_mark, "the top level must be a mapping of keys to values")
    return root, data


def _check_keys(node: yaml.Node) -> None:
    """Refuse duplicate, merge and non-string keys: YAML would silently keep the last one."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_keys(item)
    elif isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != "tag:yaml.org,2002:str":
                problem = "keys must be plain strings (quote it)"
                if key.tag == "tag:yaml.org,2002:merge":
                    problem = "merge keys (<<) are not allowed"
                raise yaml.MarkedYAMLError(problem=problem, problem_mark=key.start_mark)
            if key.value in seen:
                raise yaml.MarkedYAMLError(
                    problem=f"duplicate key {key.value!r}", problem_mark=key.start_mark
                )
            seen.add(key.value)
            _check_keys(value)


def _validation_error(path: str, root: yaml.Node, error: ErrorDetails) -> RulesetError:
    loc = error["loc"]
    node, shown = _locate(root, loc)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        message = f"missing required key {loc[-1]!r}"
    elif error["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}{_suggest(str(loc[-1]), _field_names(loc[:-1]))}"
    elif error["type"] == "enum" and isinstance(error.get("input"), str):
        expected = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        message += _suggest(error["input"], expected)
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in shown).lstrip(".")
    return _at(path, node.start_mark, f"{dotted}: {message}" if dotted else message)


def _locate(root: yaml.Node, loc: Sequence[int | str]) -> tuple[yaml.Node, list[int | str]]:
    """The node to point at for an error location (the key, for mapping entries)."""
    node, marked = root, root
    shown: list[int | str] = []
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            entry = next(((k, v) for k, v in node.value if k.value == part), None)
            if entry is None:
                continue  # a pydantic-internal step: a union member or "[key]"
            marked, node = entry
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                continue
            marked = node = node.value[part]
        else:
            continue
        shown.append(part)
    return marked, shown


def _field_names(loc: Sequence[int | str]) -> list[str]:
    model: type[BaseModel] = Ruleset
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is not None:
            model = _model_in(field.annotation) or model
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _at(path: str, mark: Any, message: str) -> RulesetError:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return RulesetError(path, line, column, message)
