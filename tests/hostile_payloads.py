"""Hostile webhook payloads for hypothesis: GitHub's own examples of every handled event, set up
to drive Autopack (run label, commands, our check run's button, ...), with what Autopack reads
replaced by JSON values of any type.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from app.domain.payload import Payload
from tests.conftest import load_payload

# The top-level parts Autopack reads (app/domain/payload.py); mutations go there and below.
READ_PARTS = tuple(Payload.model_fields)
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Target:
    """Who the examples are rewritten to name: a repository the test's GitHub knows, etc."""

    repository: str = "acme/widgets"
    installation_id: int = 1
    app_id: int = 4242
    sender: str = "alice"
    issue: int = 1


def examples(target: Target) -> list[tuple[str, dict[str, Any]]]:
    """One delivery per handled event and action that can drive something, naming `target`."""
    owner = target.repository.partition("/")[0]
    repository = {"full_name": target.repository, "name": target.repository.partition("/")[2]}
    installation = {"id": target.installation_id, "node_id": "x"}
    sender = {"login": target.sender, "type": "User"}
    run_label = {"name": "autopack:run"}

    def base(name: str, **parts: Any) -> dict[str, Any]:
        data = copy.deepcopy(load_payload(name))
        data.update(repository=repository, installation=installation, sender=sender)
        if "issue" in data:
            data["issue"].update(number=target.issue, state="open", labels=[run_label])
            data["issue"].pop("pull_request", None)
        data.update(parts)
        return data

    def comment(body: str) -> dict[str, Any]:
        data = base("issue_comment.created")
        data["comment"].update(body=body, user=sender)
        return data

    check_run = {
        "id": 5,
        "head_sha": "a" * 40,
        "external_id": f"{target.repository}#{target.issue}/run",
        "app": {"id": target.app_id},
    }
    accounts = {"login": owner, "type": "Organization"}
    repos = [{"id": 11, "full_name": target.repository, "private": False}]
    installed = {**load_payload("installation.created")["installation"]}
    installed.update(id=target.installation_id, account=accounts)
    return [
        ("issues", base("issues.labeled", label=run_label)),
        ("issues", base("issues.labeled", label={"name": "autopack:cancel"})),
        ("issues", base("issues.unlabeled", label=run_label)),
        ("issues", base("issues.opened", action="closed")),
        ("issues", base("issues.opened", action="edited", changes={"body": {"from": "old"}})),
        ("issue_comment", comment("/autopack plan")),
        ("issue_comment", comment("/autopack cancel")),
        (
            "check_run",
            base(
                "check_run.requested_action",
                check_run=check_run,
                requested_action={"identifier": "autopack-retry"},
            ),
        ),
        ("check_run", base("check_run.completed", check_run={**check_run, "app": {"id": 1}})),
        ("check_suite", base("check_suite.completed")),
        ("pull_request", base("pull_request.opened")),
        (
            "installation",
            {
                "action": "created",
                "installation": installed,
                "repositories": repos,
                "sender": sender,
            },
        ),
        ("installation", {"action": "suspend", "installation": installed, "sender": sender}),
        (
            "installation_repositories",
            {
                "action": "added",
                "installation": installed,
                "repositories_added": repos,
                "repositories_removed": [],
                "sender": sender,
            },
        ),
    ]


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["autopack:run", "/autopack plan", "acme/widgets", "alice", "Bot"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["id", "name", "login", "x"]), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(data: dict[str, Any], depth: int = 3) -> list[Path]:
    """Every place under the read parts, to that depth (absent parts too: they may be added)."""
    found: list[Path] = [(part,) for part in READ_PARTS]

    def walk(value: Any, path: Path) -> None:
        if len(path) >= depth:
            return
        items: list[tuple[str | int, Any]] = []
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        for key, child in items:
            found.append((*path, key))
            walk(child, (*path, key))

    for part in READ_PARTS:
        if part in data:
            walk(data[part], (part,))
    return found


def _put(data: dict[str, Any], path: Path, value: Any) -> None:
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@st.composite
def hostile(draw: st.DrawFn, example: dict[str, Any]) -> dict[str, Any]:
    """`example` with up to three of the values Autopack reads replaced by any JSON value (none:
    the example as it is, so that what a valid delivery drives is reached too)."""
    data = copy.deepcopy(example)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(_paths(data)))
        _put(data, path, draw(json_values))
    return data


def hostile_deliveries(target: Target) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """An event and a hostile payload built on one of `examples(target)`."""
    return st.sampled_from(examples(target)).flatmap(
        lambda pair: hostile(pair[1]).map(lambda data: (pair[0], data))
    )
