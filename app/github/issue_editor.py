"""Who last edited an issue's description: only GraphQL says (REST's issue, events and timeline
record no body edit).

`Issue.editor` is the actor of the newest edit of the body (null when it was never edited, or for
a deleted account, which GitHub shows as "ghost"). GraphQL names a GitHub App's bot without the
`[bot]` REST puts on it; it is added back so the login means the same as in webhooks and REST.
"""

from __future__ import annotations

from app.github.pulls import graphql_endpoint
from app.github.repo import GitHubClient, repo_vars

GHOST = "ghost"  # GitHub's stand-in for a deleted account

_LAST_EDITOR = """
query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    issue(number: $number) {
      lastEditedAt
      editor { __typename login }
    }
  }
}
"""


async def last_body_editor(gh: GitHubClient, repo: str, number: int) -> str | None:
    """The login of whoever last edited the issue's description; None if nobody ever did."""
    variables = repo_vars(repo)
    data = await gh.graphql(
        _LAST_EDITOR,
        endpoint=graphql_endpoint(gh.base_url),
        owner=variables["owner"],
        name=variables["repo"],
        number=number,
    )
    issue = ((data or {}).get("repository") or {}).get("issue") or {}
    if not issue.get("lastEditedAt"):
        return None
    editor = issue.get("editor") or {}
    login = editor.get("login")
    if not isinstance(login, str) or not login:
        return GHOST
    return f"{login}[bot]" if editor.get("__typename") == "Bot" else login
