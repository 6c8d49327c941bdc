"""The plan: an issue body read as tiers of checklist phases, and rendered back the same way.

Format (also what a planner model is asked to answer in)::

    Free text before the first tier or checklist item is the preamble.

    ## Tier 1: Foundations
    Text in a tier outside its checklist items is the tier's notes.

    - [ ] Add the table {category=schema_change complexity=high mode=schema_heavy}
      Indented lines under an item are the phase's description (code blocks kept).
    - [x] A checked item is a phase already done.

Any level-2 heading whose text starts with the word "Tier" opens a tier; "Tier", an optional
number and a separator (`:`, `.`, `)`, `-`, an en or em dash) are dropped and the rest is the
title. Items before any tier heading form an implicit first tier. A body without any checklist
item is one tier holding one phase: the issue title with the whole body as its description.

Ids are positional and stable while the body keeps its shape: tiers are "T1", "T2"… in the
order they appear (the implicit tier is T1), phases "T1.P1", "T1.P2"… within their tier,
counting checked ones. `split_plan` and `select_for_run` keep the original ids.

`parse_plan` never raises; whatever it cannot use becomes a warning. For any parsed plan whose
rendering fits in the size cap, `parse_plan(t, render_plan(p))` gives back `p` (warnings aside).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from app.domain.taxonomy import BuilderMode, Complexity, RunScope, TaskCategory
from app.domain.test_integrity import IntegrityRule

MAX_BODY_BYTES = 64 * 1024
MAX_TITLE_CHARS = 200
UNTITLED = "Untitled phase"

_ITEM = re.compile(r"^ {0,3}[-*+] \[([ xX])\](?:[ \t]+(.*))?$")
_HEADING = re.compile(r"^ {0,3}##(?:[ \t]+(.*))?$")
_TIER = re.compile(r"^tier(?![a-z])[ \t]*(?:\d+)?[ \t]*[:.)\-\u2013\u2014]?[ \t]*(.*)$", re.I)
_ATTRS = re.compile(r"^(.*?)[ \t]*\{([^{}]*)\}$")
_FENCE = re.compile(r"^([ \t]*)(`{3,}|~{3,})")
_ATTR_TYPES: dict[str, type[TaskCategory | Complexity | BuilderMode | IntegrityRule]] = {
    "category": TaskCategory,
    "complexity": Complexity,
    "mode": BuilderMode,
    "allow": IntegrityRule,
}


@dataclass(frozen=True)
class PlanPhase:
    """One checklist item: a unit of work for one builder."""

    phase_id: str
    title: str
    description: str = ""
    category: TaskCategory | None = None
    complexity: Complexity | None = None
    mode: BuilderMode | None = None
    done: bool = False
    # `{allow=test_deleted+test_skipped}`: test-integrity rules the phase is asked to break.
    allow: tuple[IntegrityRule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The phase as JSON-ready data."""
        return {
            "phase_id": self.phase_id,
            "title": self.title,
            "description": self.description,
            "category": _value(self.category),
            "complexity": _value(self.complexity),
            "mode": _value(self.mode),
            "done": self.done,
            "allow": [rule.value for rule in self.allow],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanPhase:
        """Parse `to_json()` output."""
        return cls(
            phase_id=str(data["phase_id"]),
            title=str(data["title"]),
            description=str(data.get("description", "")),
            category=_enum(TaskCategory, data.get("category")),
            complexity=_enum(Complexity, data.get("complexity")),
            mode=_enum(BuilderMode, data.get("mode")),
            done=bool(data.get("done", False)),
            allow=_allowed("+".join(map(str, data.get("allow", ())))),
        )


@dataclass(frozen=True)
class PlanTier:
    """A group of phases under one `## Tier` heading."""

    tier_id: str
    title: str = ""
    notes: str = ""
    phases: tuple[PlanPhase, ...] = ()

    @property
    def undone(self) -> tuple[PlanPhase, ...]:
        """The phases still to do."""
        return tuple(phase for phase in self.phases if not phase.done)

    def to_json(self) -> dict[str, Any]:
        """The tier as JSON-ready data."""
        return {
            "tier_id": self.tier_id,
            "title": self.title,
            "notes": self.notes,
            "phases": [phase.to_json() for phase in self.phases],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlanTier:
        """Parse `to_json()` output."""
        phases = tuple(PlanPhase.from_json(item) for item in data.get("phases", ()))
        return cls(
            str(data["tier_id"]), str(data.get("title", "")), str(data.get("notes", "")), phases
        )


@dataclass(frozen=True)
class Plan:
    """Tiers of phases, the text before them, and what the parser had to say about the input."""

    tiers: tuple[PlanTier, ...]
    warnings: tuple[str, ...] = ()
    preamble: str = ""

    @property
    def phases(self) -> tuple[PlanPhase, ...]:
        """Every phase, tier after tier."""
        return tuple(phase for tier in self.tiers for phase in tier.phases)

    @property
    def undone_count(self) -> int:
        """How many phases are left to do."""
        return sum(len(tier.undone) for tier in self.tiers)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON-ready data."""
        return {
            "preamble": self.preamble,
            "tiers": [tier.to_json() for tier in self.tiers],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Parse `to_json()` output."""
        tiers = tuple(PlanTier.from_json(item) for item in data.get("tiers", ()))
        warnings = tuple(str(item) for item in data.get("warnings", ()))
        return cls(tiers, warnings, str(data.get("preamble", "")))


@dataclass(frozen=True)
class RunSelection:
    """The part of a plan one run does, and what is left for the next `autopack:run` label."""

    plan_for_this_run: Plan
    remaining_tier_ids: tuple[str, ...]
    note: str


@dataclass
class _PhaseDraft:
    line: str
    done: bool
    lines: list[str] = field(default_factory=list)


@dataclass
class _TierDraft:
    title: str
    notes: list[str] = field(default_factory=list)
    phases: list[_PhaseDraft] = field(default_factory=list)


def parse_plan(title: str, body: str | None) -> Plan:
    """Read an issue's title and body as a plan; never raises, problems become warnings."""
    warnings: list[str] = []
    text = _clean_body(body or "", warnings)
    lines = text.split("\n")
    preamble: list[str] = []
    tiers: list[_TierDraft] = []
    phase: _PhaseDraft | None = None
    fence: tuple[str, str] | None = None  # (indent, marker) of the open code fence
    for line in lines:
        if phase is not None:
            if fence is not None or not line.strip() or line[0] in " \t":
                phase.lines.append(line)
                fence = _track_fence(line, fence)
                continue
            phase = None
        target = tiers[-1].notes if tiers else preamble
        if fence is None:
            heading = _HEADING.match(line)
            tier_match = _TIER.match((heading.group(1) or "").strip()) if heading else None
            if tier_match:
                tiers.append(_TierDraft(_clip(tier_match.group(1).strip(), "tier title", warnings)))
                continue
            item = _ITEM.match(line)
            if item:
                if not tiers:
                    tiers.append(_TierDraft(""))
                phase = _PhaseDraft(item.group(2) or "", item.group(1) != " ")
                tiers[-1].phases.append(phase)
                continue
        target.append(line)
        fence = _track_fence(line, fence)
    if not any(tier.phases for tier in tiers):
        only = PlanPhase("T1.P1", _issue_title(title, warnings), _block(lines, True, warnings))
        return Plan((PlanTier("T1", phases=(only,)),), tuple(warnings))
    built = tuple(_build_tier(index, draft, warnings) for index, draft in enumerate(tiers, 1))
    return Plan(built, tuple(warnings), _block(preamble, False, warnings))


def has_checklist(body: str | None) -> bool:
    """True when the body holds a checklist item outside code fences: it is a written plan."""
    fence: tuple[str, str] | None = None
    for line in _clean_body(body or "", []).split("\n"):
        if fence is None and _ITEM.match(line):
            return True
        fence = _track_fence(line, fence)
    return False


def render_plan(plan: Plan) -> str:
    """The plan as markdown in the format `parse_plan` reads (ids are positional)."""
    out: list[str] = []
    if plan.preamble:
        out += [plan.preamble, ""]
    for number, tier in enumerate(plan.tiers, 1):
        out.append(f"## Tier {number}: {tier.title}" if tier.title else f"## Tier {number}")
        if tier.notes:
            out += ["", tier.notes]
        out.append("")
        for phase in tier.phases:
            out.append(f"- [{'x' if phase.done else ' '}] {_item_text(phase)}".rstrip())
            out += [f"  {line}" if line else "" for line in phase.description.split("\n")]
            if out[-1]:
                out.append("")
    return "\n".join(out).strip("\n") + "\n"


def split_plan(plan: Plan, max_phases: int) -> list[Plan]:
    """Split a plan into runs of at most `max_phases` phases to do, whole tiers where possible.

    A tier is cut only when it alone has more than `max_phases` phases to do; done phases cost
    nothing and stay beside their neighbours; tiers with nothing to do are left out.
    """
    if max_phases < 1:
        raise ValueError("max_phases must be at least 1")
    runs: list[list[PlanTier]] = []
    used = max_phases  # forces a new run for the first unit
    for unit in _units(plan.tiers, max_phases):
        cost = len(unit.undone)
        if used + cost > max_phases:
            runs.append([])
            used = 0
        runs[-1].append(unit)
        used += cost
    return [replace(plan, tiers=tuple(tiers)) for tiers in runs]


def select_for_run(plan: Plan, run_scope: RunScope | str, max_phases: int) -> RunSelection:
    """The phases this run does under `run_scope`, and which tiers remain for the next label."""
    scope = RunScope(run_scope)
    runs = split_plan(plan, max_phases)
    if not runs:
        note = "Nothing to do: every phase in the plan is already checked."
        return RunSelection(replace(plan, tiers=()), (), note)
    chosen = runs[0]
    if scope is RunScope.SINGLE_TIER:
        chosen = replace(chosen, tiers=chosen.tiers[:1])
    done_here = {phase.phase_id for phase in chosen.phases}
    remaining = tuple(
        tier.tier_id
        for tier in plan.tiers
        if any(phase.phase_id not in done_here for phase in tier.undone)
    )
    shown = ", ".join(_describe(tier) for tier in chosen.tiers)
    if remaining:
        left = ", ".join(remaining)
        note = f"This run does {shown}. Left for the next `autopack:run` label: {left}."
    else:
        note = f"This run does {shown}: every remaining phase of the plan."
    return RunSelection(chosen, remaining, note)


def _units(tiers: Iterable[PlanTier], max_phases: int) -> Iterable[PlanTier]:
    for tier in tiers:
        if not tier.undone:
            continue
        chunk: list[PlanPhase] = []
        count = 0
        for phase in tier.phases:
            if not phase.done and count == max_phases:
                yield replace(tier, phases=tuple(chunk))
                chunk, count = [], 0
            chunk.append(phase)
            count += not phase.done
        yield replace(tier, phases=tuple(chunk))


def _describe(tier: PlanTier) -> str:
    count = len(tier.undone)
    title = f" ({tier.title})" if tier.title else ""
    return f"{tier.tier_id}{title}: {count} phase{'s' if count != 1 else ''}"


def _build_tier(number: int, draft: _TierDraft, warnings: list[str]) -> PlanTier:
    tier_id = f"T{number}"
    phases = []
    for index, item in enumerate(draft.phases, 1):
        phase_id = f"{tier_id}.P{index}"
        head, attrs = _split_attrs(item.line.strip())
        values = _parse_attrs(phase_id, attrs, warnings)
        title = _clip(head, f"{phase_id} title", warnings)
        if not title:
            warnings.append(f"{phase_id}: the checklist item has no title")
            title = UNTITLED
        phases.append(
            PlanPhase(
                phase_id,
                title,
                _block(item.lines, True, warnings),
                _enum(TaskCategory, values.get("category")),
                _enum(Complexity, values.get("complexity")),
                _enum(BuilderMode, values.get("mode")),
                item.done,
                _allowed(values.get("allow", "")),
            )
        )
    return PlanTier(tier_id, draft.title, _block(draft.notes, False, warnings), tuple(phases))


def _split_attrs(text: str) -> tuple[str, str | None]:
    match = _ATTRS.match(text)
    if match is None:
        return text, None
    inner = match.group(2)
    if inner.strip() and "=" not in inner:
        return text, None  # braces that are part of the title, not an attribute block
    return match.group(1).strip(), inner


def _parse_attrs(phase_id: str, attrs: str | None, warnings: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for token in re.split(r"[\s,]+", (attrs or "").strip()):
        if not token:
            continue
        key, sep, raw = token.partition("=")
        key, value = key.strip().lower(), raw.strip().strip("\"'").lower()
        kind = _ATTR_TYPES.get(key)
        if not sep or kind is None:
            shown = _short(token)
            warnings.append(
                f"{phase_id}: ignored {shown!r}; expected category=, complexity=, mode=, allow="
            )
        elif kind is IntegrityRule:
            rules = {member.value for member in IntegrityRule}
            if value and all(part in rules for part in value.split("+")):
                values[key] = value
            else:
                expected = "+".join(sorted(rules))
                warnings.append(
                    f"{phase_id}: ignored {key}={_short(value)!r}; expected some of {expected}"
                )
        elif value not in {member.value for member in kind}:
            allowed = ", ".join(member.value for member in kind)
            warnings.append(
                f"{phase_id}: ignored {key}={_short(value)!r}; expected one of {allowed}"
            )
        else:
            values[key] = value
    return values


def _item_text(phase: PlanPhase) -> str:
    pairs = [("category", phase.category), ("complexity", phase.complexity), ("mode", phase.mode)]
    attrs = " ".join(f"{key}={value.value}" for key, value in pairs if value is not None)
    if phase.allow:
        attrs = f"{attrs} allow={'+'.join(rule.value for rule in phase.allow)}".strip()
    # A title ending in braces would be read back as an attribute block, so always add one.
    if attrs or phase.title.endswith("}"):
        return f"{phase.title} {{{attrs}}}"
    return phase.title


def _allowed(value: str) -> tuple[IntegrityRule, ...]:
    """`test_deleted+test_skipped` as rules, each once, in a stable order (unknown ones dropped)."""
    names = {part.strip().lower() for part in value.split("+")}
    return tuple(rule for rule in IntegrityRule if rule.value in names)


def _block(lines: Sequence[str], dedent: bool, warnings: list[str]) -> str:
    """Canonical text of a block: no trailing spaces or outer blank lines, fences closed."""
    kept = [line.rstrip() for line in lines]
    fence: tuple[str, str] | None = None
    for line in kept:
        fence = _track_fence(line, fence)
    if fence is not None:
        warnings.append("a code fence was never closed; closed it at the end of its block")
        kept.append(fence[0] + fence[1])
    text = "\n".join(kept).strip("\n")
    return textwrap.dedent(text) if dedent else text


def _track_fence(line: str, fence: tuple[str, str] | None) -> tuple[str, str] | None:
    match = _FENCE.match(line)
    if match is None:
        return fence
    indent, marker = match.groups()
    if fence is None:
        return indent, marker
    closing = line.strip()
    if (
        closing[0] == fence[1][0]
        and len(closing) >= len(fence[1])
        and closing == closing[0] * len(closing)
    ):
        return None
    return fence


def _clean_body(body: str, warnings: list[str]) -> str:
    raw = body.encode("utf-8", "replace")  # lone surrogates become '?'
    if len(raw) > MAX_BODY_BYTES:
        warnings.append(f"the issue body is over {MAX_BODY_BYTES} bytes; only the start was read")
        raw = raw[:MAX_BODY_BYTES]
    text = raw.decode("utf-8", "ignore")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _issue_title(title: str, warnings: list[str]) -> str:
    text = title.encode("utf-8", "replace")[: MAX_TITLE_CHARS * 8].decode("utf-8", "ignore")
    flat = " ".join(text.split())
    return _clip(flat, "issue title", warnings) or UNTITLED


def _clip(text: str, what: str, warnings: list[str]) -> str:
    if len(text) <= MAX_TITLE_CHARS:
        return text
    warnings.append(f"the {what} is over {MAX_TITLE_CHARS} characters; it was shortened")
    return text[:MAX_TITLE_CHARS].strip()


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _value(member: TaskCategory | Complexity | BuilderMode | None) -> str | None:
    return None if member is None else member.value


_E = TypeVar("_E", TaskCategory, Complexity, BuilderMode)


def _enum(kind: type[_E], value: object) -> _E | None:
    return None if value is None else kind(str(value))
