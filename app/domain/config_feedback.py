"""What Autopack says about a repository's `.github/autopack.yml` before any run starts.

Pure: the file's bytes (None when the commit has no such file) and the names of the operator's
profiles in, a `ConfigFeedback` out. The engine shows it as the "Autopack config" check run on
the commit that changed the file, so a maintainer learns of every problem (with its line and a
"did you mean") when pushing, not when a run is refused.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from app.domain.ruleset import RULESET_PATH, SCHEMA_ID, Ruleset, load_ruleset, ruleset_errors

CHECK_NAME = "Autopack config"
MODELINE = f"# yaml-language-server: $schema={SCHEMA_ID}"


class Level(StrEnum):
    """How bad a problem is: a failure refuses runs, a warning only weakens them."""

    FAILURE = "failure"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file; `line` is 1-based, None when it has no place."""

    line: int | None
    message: str
    level: Level = Level.FAILURE


@dataclass(frozen=True)
class ConfigFeedback:
    """The verdict on one version of the file, as a check run shows it."""

    conclusion: str  # success | neutral | failure
    title: str
    summary: str
    problems: tuple[Problem, ...]


def missing_default_builder(builders: Collection[str]) -> str:
    """Why a repository without the file cannot run here, and the two ways to fix it."""
    if not builders:
        return (
            f"This repository has no `{RULESET_PATH}`, so runs would use the builder profile "
            "`default`, and this Autopack deployment defines no builder profiles at all: the "
            "operator has to add one to AUTOPACK_CONFIG (`[builders.default]`, docs/builders.md)."
        )
    names = ", ".join(f"`{name}`" for name in sorted(builders))
    return (
        f"This repository has no `{RULESET_PATH}`, so runs use the builder profile `default`, "
        "which this Autopack deployment does not define. Add the file with `builder: <profile>` "
        f"naming one of its profiles ({names}), or ask the operator to define "
        "`[builders.default]` in AUTOPACK_CONFIG."
    )


def unknown_builders(ruleset: Ruleset, builders: Collection[str]) -> list[tuple[str, str]]:
    """(key, name) for each builder profile the ruleset names that is not in `builders` (the
    profiles this deployment lets a repository name)."""
    named = [("builder", ruleset.builder)] if ruleset.builders.default is None else []
    named += [(f"builders.{key}", name) for key, name in ruleset.builders if name is not None]
    return [(key, name) for key, name in named if name not in builders]


def review_ruleset(
    text: bytes | None, builders: Collection[str], auditors: Collection[str]
) -> ConfigFeedback:
    """Every problem of the file against the schema and the profiles this deployment lets a
    repository name (`builders`, `auditors`)."""
    errors = ruleset_errors(text)
    problems = [Problem(error.line, error.message) for error in errors]
    builder: str | None
    auditor: str | None
    routed: list[tuple[str, str]] = []
    if text is None:
        builder, auditor = "default", None
    elif not errors:
        ruleset = load_ruleset(text)
        builder, auditor = ruleset.builder, ruleset.auditor
        routed = [(k, n) for k, n in unknown_builders(ruleset, builders) if k != "builder"]
    else:  # the names as written, when the schema problems are elsewhere
        builder, auditor = _top_level_name(text, "builder"), _top_level_name(text, "auditor")
    problems += _profile_problems(text, builder, auditor, builders, auditors)
    line = _key_line(text or b"", "builders")
    problems += [
        Problem(line, _unknown_message(key, name, builders, "runs are refused"))
        for key, name in routed
    ]
    problems.sort(key=lambda p: (p.line is None, p.line or 0))
    return _feedback(text, tuple(problems))


def unreadable(reason: str) -> ConfigFeedback:
    """The verdict on a file GitHub would not hand over (a directory, a link, too large)."""
    return _feedback(b"", (Problem(None, f"`{RULESET_PATH}` cannot be read: {reason}"),))


def _profile_problems(
    text: bytes | None,
    builder: str | None,
    auditor: str | None,
    builders: Collection[str],
    auditors: Collection[str],
) -> list[Problem]:
    if text is None and builder not in builders:
        return [Problem(None, missing_default_builder(builders))]
    source = text or b""
    problems: list[Problem] = []
    if builder is not None and builder not in builders:
        problems.append(_unknown(source, "builder", builder, builders, "runs are refused"))
    if auditor is not None and auditor not in auditors:
        consequence = "runs go without an auditor"
        problems.append(_unknown(source, "auditor", auditor, auditors, consequence, Level.WARNING))
    return problems


def _unknown(
    text: bytes,
    key: str,
    name: str,
    known: Collection[str],
    consequence: str,
    level: Level = Level.FAILURE,
) -> Problem:
    return Problem(_key_line(text, key), _unknown_message(key, name, known, consequence), level)


def _unknown_message(key: str, name: str, known: Collection[str], consequence: str) -> str:
    kind = "auditor" if key == "auditor" else "builder"
    return (
        f"{key}: {name!r} is not {'an' if kind == 'auditor' else 'a'} {kind} profile this "
        f"Autopack deployment lets repositories name{_choices(name, known)}; {consequence}"
    )


def _feedback(text: bytes | None, problems: tuple[Problem, ...]) -> ConfigFeedback:
    failures = sum(1 for p in problems if p.level is Level.FAILURE)
    footer = (
        f"Runs read `{RULESET_PATH}` from the default branch when they start. Editors check it "
        f"as you type with this first line:\n\n```yaml\n{MODELINE}\n```\n\n"
        "Every key is described in docs/ruleset.md."
    )
    if not problems:
        state = "is valid" if text is not None else "is absent: runs use the defaults"
        return ConfigFeedback(
            "success", f"{RULESET_PATH} {state}", f"`{RULESET_PATH}` {state}.\n\n{footer}", ()
        )
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"**{count}** in `{RULESET_PATH}`:", ""]
    for problem in problems:
        where = f"line {problem.line}: " if problem.line is not None else ""
        marker = "❌" if problem.level is Level.FAILURE else "⚠️"
        lines.append(f"- {marker} {where}{problem.message}")
    summary = "\n".join(lines) + f"\n\n{footer}"
    conclusion = "failure" if failures else "neutral"
    return ConfigFeedback(conclusion, f"{count} in {RULESET_PATH}", summary, problems)


def _top_level_name(text: bytes, key: str) -> str | None:
    """A top-level `key: name` as written (plain or quoted), read without parsing the YAML."""
    source = text.decode("utf-8", "replace")
    pattern = rf"^{re.escape(key)}\s*:\s*(['\"]?)([A-Za-z0-9][A-Za-z0-9_.-]{{0,63}})\1\s*(#.*)?$"
    match = re.search(pattern, source, re.MULTILINE)
    if match is None or (not match.group(1) and match.group(2) in ("null", "Null", "NULL")):
        return None
    return match.group(2)


def _key_line(text: bytes, key: str) -> int | None:
    """The line of a top-level key (for profile names, which the schema cannot know)."""
    source = text.decode("utf-8", "replace")
    match = re.search(rf"^{re.escape(key)}\s*:", source, re.MULTILINE)
    return source.count("\n", 0, match.start()) + 1 if match else None


def _choices(name: str, known: Collection[str]) -> str:
    if not known:
        return " (it defines none)"
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f" (it defines {', '.join(sorted(known))}{hint})"
