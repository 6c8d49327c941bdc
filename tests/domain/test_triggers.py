"""Which deliveries drive runs, table-driven over GitHub's own example payloads."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from app.domain.payload import MalformedPayload, Payload, parse_payload
from app.domain.triggers import (
    RETRY_ACTION,
    Identity,
    Trigger,
    TriggerKind,
    classify,
    may_matter,
    permission_allows,
)
from tests.conftest import load_payload
from tests.hostile_payloads import Target, hostile_deliveries

ME = Identity(app_id=4242, bot_login="autopack[bot]")
BOT = {"login": "autopack[bot]", "type": "Bot"}
# What every handled delivery carries, for the short hand-written ones below.
PARTS = {
    "repository": {"full_name": "acme/widgets"},
    "sender": {"login": "alice", "type": "User"},
    "issue": {"number": 7},
    "comment": {"body": ""},
}


SAME_REPO_PULL = {
    "head": {"sha": "a" * 40, "repo": {"full_name": "acme/widgets"}},
    "base": {"sha": "b" * 40, "repo": {"full_name": "acme/widgets"}},
}


def typed(event: str, data: dict[str, Any]) -> Payload:
    """The payload as the endpoint and the worker see it."""
    return parse_payload(event, json.dumps(data))


def payload(name: str, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(load_payload(name))
    for dotted, value in changes.items():
        target = data
        *parents, last = dotted.split("__")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    return data


def labeled(label: str, **changes: Any) -> dict[str, Any]:
    return payload("issues.labeled", label__name=label, **changes)


def edited(changed: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = payload("issues.opened", action="edited", **changes)
    data["changes"] = changed
    data["issue"]["labels"] = [{"name": "autopack:run"}]
    return data


def comment(body: str, **changes: Any) -> dict[str, Any]:
    return payload("issue_comment.created", comment__body=body, **changes)


def action(
    identifier: str, app_id: int = ME.app_id, external: str = "o/r#7/run-1"
) -> dict[str, Any]:
    return payload(
        "check_run.requested_action",
        requested_action__identifier=identifier,
        check_run__app__id=app_id,
        check_run__external_id=external,
    )


CASES = [
    ("issues", labeled("autopack:run"), TriggerKind.START),
    ("issues", labeled("autopack:run", issue__state="closed"), TriggerKind.IGNORE),
    ("issues", labeled("autopack:run", issue__pull_request={"url": "x"}), TriggerKind.IGNORE),
    ("issues", labeled("bug"), TriggerKind.IGNORE),
    ("issues", labeled("autopack:cancel"), TriggerKind.CANCEL),
    ("issues", payload("issues.unlabeled", label__name="autopack:run"), TriggerKind.CANCEL),
    ("issues", payload("issues.unlabeled", label__name="bug"), TriggerKind.IGNORE),
    ("issues", payload("issues.opened"), TriggerKind.IGNORE),
    ("issues", payload("issues.opened", action="closed"), TriggerKind.CANCEL),
    ("issues", labeled("autopack:run", sender=BOT), TriggerKind.IGNORE),
    ("issues", edited({"body": {"from": "old"}}), TriggerKind.BODY_EDITED),
    ("issues", edited({"title": {"from": "old"}}), TriggerKind.IGNORE),
    ("issues", edited({"body": {"from": "old"}}, sender=BOT), TriggerKind.IGNORE),
    (
        "issues",
        payload("issues.unlabeled", label__name="autopack:run", sender=BOT),
        TriggerKind.IGNORE,
    ),
    ("issue_comment", comment("/autopack cancel"), TriggerKind.CANCEL),
    ("issue_comment", comment("Thanks!\n\n/autopack plan\n"), TriggerKind.PLAN),
    ("issue_comment", comment("  /AUTOPACK Plan  "), TriggerKind.PLAN),
    ("issue_comment", comment("please /autopack cancel this"), TriggerKind.IGNORE),
    ("issue_comment", comment("/autopack dance"), TriggerKind.IGNORE),
    ("issue_comment", comment("/autopack cancel", sender=BOT), TriggerKind.IGNORE),
    ("issue_comment", comment("/autopack cancel", comment__user__type="Bot"), TriggerKind.IGNORE),
    ("issue_comment", comment("/autopack cancel", action="edited"), TriggerKind.IGNORE),
    ("check_run", action(RETRY_ACTION), TriggerKind.RETRY),
    ("check_run", action(RETRY_ACTION, app_id=1), TriggerKind.IGNORE),
    ("check_run", action("lgtm"), TriggerKind.IGNORE),
    ("check_run", action(RETRY_ACTION, external=""), TriggerKind.IGNORE),
    ("check_run", payload("check_run.completed"), TriggerKind.IGNORE),
    ("check_suite", payload("check_suite.completed"), TriggerKind.IGNORE),
    ("pull_request", payload("pull_request.opened"), TriggerKind.IGNORE),
]


@pytest.mark.parametrize(("event", "data", "kind"), CASES)
def test_classify(event: str, data: dict[str, Any], kind: TriggerKind) -> None:
    trigger = classify(event, typed(event, data), ME)
    assert trigger.kind is kind
    if kind is TriggerKind.IGNORE:
        assert trigger.reason
        assert not trigger.needs_permission
    else:
        assert trigger.needs_permission
        assert trigger.repository == data["repository"]["full_name"]
        assert trigger.sender == data["sender"]["login"]


def test_start_names_the_issue() -> None:
    data = labeled("autopack:run")
    assert classify("issues", typed("issues", data), ME) == Trigger(
        TriggerKind.START, data["repository"]["full_name"], data["issue"]["number"], "Codertocat"
    )


def test_retry_names_issue_and_check_run() -> None:
    data = action(RETRY_ACTION)
    trigger = classify("check_run", typed("check_run", data), ME)
    assert trigger.issue_number == 7
    assert trigger.check_run_id == data["check_run"]["id"]


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [
        ("admin", True),
        ("maintain", True),
        ("write", True),
        ("triage", False),
        ("read", False),
        ("none", False),
        (None, False),
        ("", False),
    ],
)
def test_permission(permission: str | None, allowed: bool) -> None:
    assert permission_allows(permission) is allowed


@given(hostile_deliveries(Target(repository="Codertocat/Hello-World", app_id=ME.app_id)))
def test_odd_payloads_are_malformed_or_classified(delivery: tuple[str, dict[str, Any]]) -> None:
    name, data = delivery
    try:
        payload = typed(name, data)
    except MalformedPayload:
        event(f"{name}: malformed")
        return
    # Whatever passed the parser is typed: deciding on it never raises.
    kind = classify(name, payload, ME).kind
    may_matter(name, payload, ME.app_id)
    event(f"{name}: {kind}")


# -- may_matter: what the web endpoint may leave out before storing ------------------------------

_EVENTS = ["issues", "issue_comment", "check_run", "check_suite", "pull_request"]
_ACTIONS = [
    "labeled",
    "unlabeled",
    "closed",
    "opened",
    "created",
    "edited",
    "completed",
    "requested_action",
    "rerequested",
    "synchronize",
]
_LABELS = ["autopack:run", "autopack:cancel", "autopack:running", "bug"]
_BODIES = [
    "/autopack plan",
    "/autopack cancel",
    "/autopack dance",
    "looks good",
    "x /autopack plan",
]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(_EVENTS))
    sender = draw(st.sampled_from([BOT, {"login": "alice", "type": "User"}]))
    app_id = draw(st.sampled_from([4242, 99]))
    data: dict[str, Any] = {
        "action": draw(st.sampled_from(_ACTIONS)),
        "sender": sender,
        "repository": {"full_name": "acme/widgets"},
        "issue": {
            "number": 7,
            "state": draw(st.sampled_from(["open", "closed"])),
            "labels": draw(st.lists(st.sampled_from([{"name": x} for x in _LABELS]), max_size=2)),
        },
        "label": {"name": draw(st.sampled_from(_LABELS))},
        "comment": {"body": draw(st.sampled_from(_BODIES)), "user": sender},
        "requested_action": {"identifier": RETRY_ACTION},
        "changes": draw(st.sampled_from([None, {}, {"body": {"from": "old"}}])),
    }
    data[name] = {"app": {"id": app_id}, "external_id": "acme/widgets#7/r1", "id": 5}
    if name == "pull_request":
        head = draw(st.sampled_from(["acme/widgets", "someone/fork"]))
        data[name] = {
            "head": {"sha": "a" * 40, "repo": {"full_name": head}},
            "base": {"sha": "b" * 40, "repo": {"full_name": "acme/widgets"}},
        }
    return name, data


@given(deliveries())
def test_may_matter_keeps_everything_classify_acts_on(delivery: tuple[str, dict[str, Any]]) -> None:
    event, data = delivery
    payload = typed(event, data)
    if classify(event, payload, ME).kind is not TriggerKind.IGNORE:
        assert may_matter(event, payload, ME.app_id)


@pytest.mark.parametrize(
    ("event", "data", "kept"),
    [
        ("issues", labeled("autopack:run"), True),
        ("issues", labeled("autopack:running", sender=BOT), False),
        ("issues", payload("issues.labeled", action="unlabeled", label__name="bug"), False),
        ("issues", payload("issues.opened"), False),
        ("issues", edited({"body": {"from": "old"}}), True),
        ("issues", edited({"title": {"from": "old"}}), False),
        ("issues", {**edited({"body": {"from": "old"}}), "issue": {"number": 7}}, False),
        ("check_run", {"action": "completed", "check_run": {"id": 5, "app": {"id": 1}}}, True),
        ("check_run", {"action": "completed", "check_run": {"id": 5, "app": {"id": 4242}}}, False),
        ("check_run", {"action": "completed", "check_run": {"id": 5}}, True),
        ("check_run", {"action": "created", "check_run": {"id": 5, "app": {"id": 1}}}, False),
        (
            "check_run",
            {"action": "requested_action", "check_run": {"id": 5, "app": {"id": 4242}}},
            True,
        ),
        ("check_suite", {"action": "completed", "check_suite": {"app": {"id": 1}}}, False),
        ("check_suite", {"action": "completed", "check_suite": {"app": {"id": 4242}}}, False),
        ("issue_comment", {"action": "edited", "comment": {"body": "/autopack plan"}}, False),
        ("issue_comment", {"action": "created", "comment": {"body": "/autopack plan"}}, True),
        # A pull request inside the repository: its branch's push covers the ruleset check.
        ("pull_request", {"action": "opened", "pull_request": SAME_REPO_PULL}, False),
        ("installation", {"action": "created", "installation": {"id": 1}}, True),
        ("installation_repositories", {"action": "added", "installation": {"id": 1}}, True),
        # A commit status wakes a CI wait once it is a result; pending changes no verdict.
        ("status", {"state": "failure", "sha": "a" * 40}, True),
        ("status", {"state": "success", "sha": "a" * 40}, True),
        ("status", {"state": "pending", "sha": "a" * 40}, False),
    ],
)
def test_may_matter_examples(event: str, data: dict[str, Any], kept: bool) -> None:
    assert may_matter(event, typed(event, {**PARTS, **data}), ME.app_id) is kept
