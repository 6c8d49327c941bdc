"""The one GraphQL read the simulator answers: who last edited an issue's description.

`repository(owner:, name:) { issue(number:) { lastEditedAt editor { __typename login } } }`, its
arguments as variables (`$owner`, `$name`, `$number`) or literals. As on GitHub: `editor` and
`lastEditedAt` are null for a description never edited, a bot's login comes without `[bot]`,
and a repository the installation cannot see, or a number that is no issue (a pull request
included), is null in `data` with a NOT_FOUND error.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakegithub.core import Actor, Core

_QUERY = re.compile(
    r"^\s*query\b[^{]*\{\s*repository\s*\(\s*owner\s*:\s*(?P<owner>\$\w+|\"[^\"]*\")\s*,"
    r"\s*name\s*:\s*(?P<name>\$\w+|\"[^\"]*\")\s*\)\s*\{\s*issue\s*\(\s*number\s*:\s*"
    r"(?P<number>\$\w+|\d+)\s*\)\s*\{\s*(?P<fields>[^{}]*editor\s*\{[^{}]*\}[^{}]*)\}\s*\}\s*\}\s*$",
    re.S,
)
_FIELDS = {"lastEditedAt", "editor", "__typename", "login"}


def asks_for_editor(query: str) -> bool:
    """True for the query this module answers (and only the fields it knows)."""
    found = _QUERY.match(query)
    return found is not None and set(re.findall(r"\w+", found["fields"])) <= _FIELDS


def answer(core: Core, who: Actor, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The GraphQL response body for the editor query."""
    found = _QUERY.match(query)
    assert found is not None

    def argument(name: str) -> Any:
        text = found[name]
        if text.startswith("$"):
            return variables.get(text[1:])
        return text.strip('"') if text.startswith('"') else int(text)

    owner, name, number = argument("owner"), argument("name"), argument("number")
    repo = core.world.get_repo(str(owner), str(name))
    if repo is None or not who.installation.covers(repo):
        message = f"Could not resolve to a Repository with the name '{owner}/{name}'."
        return _not_found({"repository": None}, ["repository"], message)
    issue = repo.issues.get(number) if isinstance(number, int) else None
    if issue is None or issue.pull is not None:
        message = f"Could not resolve to an Issue with the number of {number}."
        return _not_found({"repository": {"issue": None}}, ["repository", "issue"], message)
    editor = None
    if issue.editor is not None:
        bot = issue.editor.type == "Bot"
        login = issue.editor.login.removesuffix("[bot]") if bot else issue.editor.login
        editor = {"__typename": "Bot" if bot else "User", "login": login}
    data = {"lastEditedAt": issue.last_edited_at, "editor": editor}
    return {"data": {"repository": {"issue": data}}}


def _not_found(data: dict[str, Any], path: list[str], message: str) -> dict[str, Any]:
    error = {"type": "NOT_FOUND", "path": path, "locations": [{"line": 2, "column": 3}]}
    return {"data": data, "errors": [{**error, "message": message}]}
