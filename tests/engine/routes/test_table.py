"""The composed routing table reaches every route module's handlers for the event and action they
claim, each exactly once, and nothing for what no module claims.

Both are shown by dispatching: a key dispatched through one module's own routes and through
ROUTES must make the same calls on the handlers' dependencies (a stand-in that only records),
and those calls must not be empty.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.domain.payload import Payload, parse_payload
from app.engine.routes import (
    ROUTES,
    Deps,
    Routes,
    check_actions,
    ci_wake,
    installations,
    ruleset_check,
    run_triggers,
)
from app.store.inbox import InboxDelivery
from tests.conftest import load_payload

MODULES = (installations, run_triggers, check_actions, ci_wake, ruleset_check)
# An example of each event, to dress as any action.
EXAMPLES = {
    "installation": "installation.created",
    "installation_repositories": "installation_repositories.added",
    "issues": "issues.labeled",
    "issue_comment": "issue_comment.created",
    "check_run": "check_run.completed",
    "status": "status",
    "push": "push",
    "pull_request": "pull_request.opened",
    "check_suite": "check_suite.completed",
    "ping": "ping",
}
CLAIMED = sorted(
    (module.__name__.rpartition(".")[2], event, action or "")
    for module in MODULES
    for event, action in module.routes.keys
)


class Recorder:
    """Stands in for every dependency of the route handlers; notes each method called."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self._name, self._calls = name, calls

    def __getattr__(self, method: str) -> Any:
        async def record(*args: object, **kwargs: object) -> None:
            self._calls.append(f"{self._name}.{method}")

        return record


def dressed(event: str, action: str) -> tuple[InboxDelivery, Payload]:
    data = load_payload(EXAMPLES[event])
    if action:
        data["action"] = action
    body = json.dumps(data)
    delivery = InboxDelivery(1, "d-1", event, action or None, None, body, 1)
    return delivery, parse_payload(event, body)


async def calls(routes: Routes, event: str, action: str) -> list[str]:
    made: list[str] = []
    deps = Deps(
        Recorder("installations", made),  # type: ignore[arg-type]
        Recorder("intake", made),  # type: ignore[arg-type]
        Recorder("config_check", made),  # type: ignore[arg-type]
    )
    await routes.dispatch(*dressed(event, action), deps)
    return made


def test_the_table_is_the_modules_tables_and_no_key_is_claimed_twice() -> None:
    keys = [key for module in MODULES for key in module.routes.keys]
    assert len(keys) == len(set(keys))
    assert ROUTES.keys == set(keys)


@pytest.mark.parametrize(("module", "event", "action"), CLAIMED)
async def test_each_claimed_key_reaches_its_handler_once_through_the_table(
    module: str, event: str, action: str
) -> None:
    (routes,) = (m.routes for m in MODULES if m.__name__.endswith(f".{module}"))
    alone = await calls(routes, event, action)
    assert alone  # the handler acted on the example
    assert await calls(ROUTES, event, action) == alone
    assert ROUTES.handles(event, dressed(event, action)[1])


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ("issues", "opened"),
        ("issues", "assigned"),
        ("issue_comment", "edited"),
        ("check_run", "created"),
        ("check_run", "rerequested"),
        ("check_suite", "completed"),
        ("pull_request", "closed"),
        ("ping", ""),
    ],
)
async def test_what_no_module_claims_reaches_nothing(event: str, action: str) -> None:
    assert await calls(ROUTES, event, action) == []
    assert not ROUTES.handles(event, dressed(event, action)[1])
