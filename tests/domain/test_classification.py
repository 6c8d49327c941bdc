"""Phase classification: strong evidence only, high-risk never from a description alone."""

from __future__ import annotations

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.domain.classification import DEFAULT_CATEGORY_RULES, CategoryRule, classify
from app.domain.ruleset import load_ruleset
from app.domain.taxonomy import HIGH_RISK, TaskCategory

# The ordinary words issue 13 names: none of them makes a phase high-risk on its own.
ORDINARY = ("token", "login", "permission", "schema", "migration", "index", "mapping")


@pytest.mark.parametrize(
    ("title", "description", "paths", "expected"),
    [
        ("Add OAuth sign-in", "", (), TaskCategory.SECURITY_AUTH),
        ("Harden the authentication flow", "", (), TaskCategory.SECURITY_AUTH),
        ("Fix a CSRF hole in the form", "", (), TaskCategory.SECURITY_AUTH),  # earlier rule wins
        ("Author page", "", (), TaskCategory.FEATURE),  # whole words only
        ("Add a database migration for users", "", (), TaskCategory.SCHEMA_CHANGE),
        ("Update the DB Schema", "", (), TaskCategory.SCHEMA_CHANGE),
        ("Rename across the code base", "", (), TaskCategory.CROSS_CUTTING_REFACTOR),
        ("Refactor the worker", "", (), TaskCategory.REFACTOR),
        ("Bulk update headers", "", (), TaskCategory.BULK_OPERATION),
        ("Keep the plugin registry sorted", "", (), TaskCategory.INDEX_REGISTRY_MAINTENANCE),
        ("Update the README", "", (), TaskCategory.DOCS),
        ("Write docs for the API", "", (), TaskCategory.DOCS),
        ("More tests for the parser", "", (), TaskCategory.TESTS),
        ("Fix the crash on empty input", "", (), TaskCategory.BUGFIX),
        ("Bug: wrong total", "", (), TaskCategory.BUGFIX),
        ("Suffix rules", "", (), TaskCategory.FEATURE),  # "fix" inside a word does not count
        ("Add a dashboard", "", (), TaskCategory.FEATURE),
        ("Add a dashboard", "", ("app/migrations/0002_x.py",), TaskCategory.SCHEMA_CHANGE),
        ("Add a dashboard", "", ("docs/guide.md",), TaskCategory.DOCS),
        ("Add a dashboard", "", ("tests/test_ui.py",), TaskCategory.TESTS),
        ("Add a dashboard", "Needs tests.", (), TaskCategory.TESTS),
        ("Add a dashboard", "Behind the login.", ("docs/x.md",), TaskCategory.DOCS),  # paths first
        ("Write tests", "Change the schema.", (), TaskCategory.TESTS),  # the title wins
        # Everyday words are not evidence of risk.
        ("Add login page", "", (), TaskCategory.FEATURE),
        ("Rotate API tokens", "", (), TaskCategory.FEATURE),
        ("Check permissions on delete", "", (), TaskCategory.FEATURE),
        ("Add a migration for users", "", (), TaskCategory.FEATURE),
        ("Fix the login token refresh", "", (), TaskCategory.BUGFIX),
        ("Build the search index", "", (), TaskCategory.FEATURE),
        ("Add the settings module", "", (), TaskCategory.FEATURE),
        # A high-risk category is never given by the description alone.
        ("Add a dashboard", "Uses OAuth under the hood.", (), TaskCategory.FEATURE),
        ("Add a dashboard", "Needs a database migration.", (), TaskCategory.FEATURE),
        ("Add a dashboard", "See the docs; uses OAuth.", (), TaskCategory.DOCS),
    ],
)
def test_default_table(
    title: str, description: str, paths: tuple[str, ...], expected: TaskCategory
) -> None:
    assert classify(title, description, paths).category is expected


@pytest.mark.parametrize(
    ("title", "description", "paths", "reason"),
    [
        ("Add OAuth sign-in", "", (), "the title mentions “oauth”"),
        ("Add a dashboard", "", ("docs/a.md",), "a path it names matches “docs/**”"),
        ("Add a dashboard", "Update the readme too.", (), "the description mentions “readme”"),
        ("Add a dashboard", "", (), "no rule matched"),
    ],
)
def test_the_reason_says_what_gave_the_category(
    title: str, description: str, paths: tuple[str, ...], reason: str
) -> None:
    assert classify(title, description, paths).reason == reason


def test_repository_rules_replace_the_defaults_and_obey_the_same_limits() -> None:
    text = """\
categories:
  rules:
    - {category: docs, keywords: [handbook], paths: ["manual/**"]}
    - {category: security_auth, keywords: [login]}
"""
    rules = load_ruleset(text).categories.rules
    assert classify("Update the handbook", "", (), rules).category is TaskCategory.DOCS
    assert classify("x", "", ("manual/a.txt",), rules).category is TaskCategory.DOCS
    assert classify("Add OAuth", "", (), rules).category is TaskCategory.FEATURE  # replaced
    assert classify("Add login", "", (), rules).category is TaskCategory.SECURITY_AUTH
    # The repository chose "login" as evidence, but still only in the title.
    assert classify("Add a page", "Behind the login.", (), rules).category is TaskCategory.FEATURE
    assert DEFAULT_CATEGORY_RULES[0] == CategoryRule(
        category=TaskCategory.SECURITY_AUTH, keywords=DEFAULT_CATEGORY_RULES[0].keywords
    )


FILLERS = ("add", "the", "a", "page", "refresh", "for", "users", "cache", "new")
# Every other word is a filler: two ordinary words side by side ("schema migration") are a
# phrase that does name the risk.
sentences = st.lists(
    st.tuples(st.sampled_from(FILLERS), st.sampled_from(FILLERS + ORDINARY)), max_size=8
).map(lambda pairs: [word for pair in pairs for word in pair])


@settings(max_examples=300, deadline=None)
@given(title=sentences.filter(bool), description=sentences)
def test_ordinary_words_never_make_a_phase_high_risk(
    title: list[str], description: list[str]
) -> None:
    used = set(title) & set(ORDINARY)
    event("an ordinary word in the title" if used else "no ordinary word in the title")
    found = classify(" ".join(title), " ".join(description))
    assert found.category not in HIGH_RISK
