"""How a phase that names no category gets one: keyword and path rules, strong evidence only.

Pure. A `{category=…}` in the plan always wins (the compiler never asks). Otherwise the rules
are tried in order on the title, then on the paths the phase names, then on the description;
a high-risk category (the playbook's table, `taxonomy.HIGH_RISK`) is never given by the
description alone, and its default keywords are terms that name the risk outright ("oauth",
"database migration"), not everyday words such as "token", "login", "index" or "mapping".
docs/ruleset.md lists the default table.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.domain.paths import glob_match
from app.domain.taxonomy import HIGH_RISK, TaskCategory

Glob = Annotated[str, Field(min_length=1, max_length=200, pattern=r"[^/]")]


class CategoryRule(BaseModel):
    """Classifies a phase that names no category: any keyword or path glob matches."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    category: TaskCategory
    """The task_category given on a match."""
    keywords: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = ()
    """Words or phrases (case-insensitive, plural allowed) looked for in title and description."""
    paths: tuple[Glob, ...] = ()
    """Path globs (gitignore-like) matched against the paths a phase names."""


def _kw(category: TaskCategory, *keywords: str, paths: Sequence[str] = ()) -> CategoryRule:
    return CategoryRule(category=category, keywords=keywords, paths=tuple(paths))


DEFAULT_CATEGORY_RULES: tuple[CategoryRule, ...] = (
    _kw(TaskCategory.SECURITY_AUTH, "authentication", "authorization", "oauth", "openid",
        "saml", "sso", "jwt", "csrf", "xss", "sql injection", "access control", "security",
        "vulnerability", "encryption", "password hashing", "two-factor", "2fa", "mfa"),
    _kw(TaskCategory.SCHEMA_CHANGE, "database migration", "schema migration", "db migration",
        "database schema", "db schema", "alembic", "api contract",
        paths=("**/migrations/**", "*.sql", "*.proto")),
    _kw(TaskCategory.CROSS_CUTTING_REFACTOR, "rename across", "across the codebase",
        "codebase-wide", "cross-cutting"),
    _kw(TaskCategory.BULK_OPERATION, "bulk edit", "bulk rename", "bulk update", "bulk change",
        "every file", "all files", "mass rename", "mass update"),
    _kw(TaskCategory.INDEX_REGISTRY_MAINTENANCE, "plugin registry", "registry entries",
        "registry maintenance", "index maintenance", "reindex", "rebuild the index"),
    _kw(TaskCategory.REFACTOR, "refactor", "refactoring", "restructure", "rename"),
    _kw(TaskCategory.BUGFIX, "fix", "fixed", "bug", "crash", "regression", "broken"),
    _kw(TaskCategory.DOCS, "docs", "documentation", "readme", "changelog", "docstring",
        paths=("docs/**", "*.md", "*.rst")),
    _kw(TaskCategory.TESTS, "test", "testing", "coverage", "pytest",
        paths=("tests/**", "test_*.py", "*_test.py", "*_test.go", "*.spec.*", "*.test.*")),
)  # fmt: skip


@dataclass(frozen=True)
class Classification:
    """A phase's category and, for people, what gave it."""

    category: TaskCategory
    reason: str


def classify(
    title: str,
    description: str,
    paths: Iterable[str] = (),
    rules: Sequence[CategoryRule] = DEFAULT_CATEGORY_RULES,
) -> Classification:
    """The task_category of a phase that names none, and why (see the module docstring)."""
    for rule in rules:
        if keyword := _mentioned(title, rule.keywords):
            return Classification(rule.category, f"the title mentions “{keyword}”")
    wanted = tuple(paths)
    for rule in rules:
        for glob in rule.paths:
            if any(glob_match(glob, path) for path in wanted):
                return Classification(rule.category, f"a path it names matches “{glob}”")
    for rule in rules:
        if rule.category in HIGH_RISK:
            continue  # too weak a signal for a category that changes how a phase is handled
        if keyword := _mentioned(description, rule.keywords):
            return Classification(rule.category, f"the description mentions “{keyword}”")
    return Classification(TaskCategory.FEATURE, "no rule matched")


def _mentioned(text: str, keywords: Iterable[str]) -> str | None:
    return next((k for k in keywords if _keyword_pattern(k).search(text)), None)


@functools.lru_cache(maxsize=1024)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = r"[\s_-]+".join(re.escape(word) for word in keyword.split())
    return re.compile(rf"(?<!\w){words}(?:e?s)?(?!\w)", re.IGNORECASE)
