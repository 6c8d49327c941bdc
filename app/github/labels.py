"""The run-status labels on an issue: exactly one of running, done or failed follows the run."""

from __future__ import annotations

from enum import StrEnum

import gidgethub

from app.github.repo import GitHubClient, is_status, repo_vars


class RunLabel(StrEnum):
    """The label that shows where a run stands."""

    RUNNING = "autopack:running"
    DONE = "autopack:done"
    FAILED = "autopack:failed"


_BY_STATE = {"running": RunLabel.RUNNING, "done": RunLabel.DONE, "failed": RunLabel.FAILED}


def run_label(state: RunLabel | str) -> RunLabel:
    """A `RunLabel` from itself, its label name, or "running" / "done" / "failed"."""
    if isinstance(state, RunLabel):
        return state
    if state in _BY_STATE:
        return _BY_STATE[state]
    try:
        return RunLabel(state)
    except ValueError:
        raise ValueError(f"{state!r} is not a run label state") from None


async def set_run_labels(
    gh: GitHubClient, repo: str, issue: int, state: RunLabel | str
) -> tuple[str, ...]:
    """Add the state's label and remove the other run labels; return the issue's labels."""
    wanted = run_label(state)
    variables = {**repo_vars(repo), "number": issue}
    # Adding answers with the issue's labels, so one call tells us what to remove.
    current = await gh.post(
        "/repos/{owner}/{repo}/issues/{number}/labels", variables, data={"labels": [wanted.value]}
    )
    names = [str(label["name"]) for label in current]
    for other in RunLabel:
        if other is wanted or other.value not in names:
            continue
        try:
            await gh.delete(
                "/repos/{owner}/{repo}/issues/{number}/labels/{name}",
                {**variables, "name": other.value},
            )
        except gidgethub.HTTPException as exc:
            if not is_status(exc, 404):  # already gone (someone else removed it): fine
                raise
        names.remove(other.value)
    return tuple(names)
