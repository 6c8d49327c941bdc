"""The per-repository "Autopack backlog" issue: found by its label and hidden marker, created once,
then edited in place after every run (in the spirit of a dependency dashboard)."""

from __future__ import annotations

from contextlib import aclosing

from app.github.comments import cap_body
from app.github.create import create_once
from app.github.repo import GitHubClient, repo_vars

BACKLOG_LABEL = "autopack:backlog"


async def find_backlog_issue(gh: GitHubClient, repo: str, marker: str) -> int | None:
    """The number of the issue carrying `marker`, open or closed, if there is one."""
    url = "/repos/{owner}/{repo}/issues{?labels,state,per_page}"
    variables = {**repo_vars(repo), "labels": BACKLOG_LABEL, "state": "all", "per_page": 100}
    issues = gh.getiter(url, variables)
    async with aclosing(issues):
        async for issue in issues:
            # The label narrows the search; the marker proves the issue is ours, not a namesake.
            if str(issue.get("body") or "").startswith(marker):
                return int(issue["number"])
    return None


async def upsert_backlog_issue(
    gh: GitHubClient, repo: str, title: str, marker: str, body: str, *, create: bool
) -> int | None:
    """Edit the backlog issue's body (its state and title stay the maintainers'), or create it
    when `create` (there is something to show); returns its number, None if there is none.

    Looking it up each time, rather than remembering its number, makes a create after a crash
    find the issue the first attempt made instead of opening a second one.
    """
    if not body.startswith(marker):
        raise ValueError("the backlog issue body must start with its marker")
    number = await find_backlog_issue(gh, repo, marker)
    variables = repo_vars(repo)
    if number is not None:
        await gh.patch(
            "/repos/{owner}/{repo}/issues/{number}",
            {**variables, "number": number},
            data={"body": cap_body(body)},
        )
        return number
    if not create:
        return None
    return await create_once(
        gh,
        "/repos/{owner}/{repo}/issues",
        variables,
        {"title": title, "body": cap_body(body), "labels": [BACKLOG_LABEL]},
        identify=lambda created: int(created["number"]),
        find=lambda: find_backlog_issue(gh, repo, marker),
    )
