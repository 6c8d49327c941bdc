"""app.yml asks for exactly what the code uses: the events it acts on, the permissions it needs.

The events come from the routing table (app/engine/routes: what the endpoint stores and the worker
dispatches), checked on GitHub's example payloads; the permissions from a static scan of every
GitHub API route the code calls, mapped to the permission GitHub requires for it.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.domain.payload import EVENT_PARTS, parse_payload
from app.domain.ruleset import RULESET_PATH
from app.domain.triggers import (
    RUN_LABEL,
    Identity,
    TriggerKind,
    classify,
    config_change,
    may_matter,
)
from app.engine.routes import EVENTS, ROUTES
from app.web.webhooks import HANDLED_EVENTS
from tests.conftest import load_payload

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = yaml.safe_load((ROOT / "app.yml").read_text(encoding="utf-8"))
ME = Identity(app_id=4242, bot_login="autopack[bot]")
# GitHub delivers these to every App, subscribed or not (and refuses them in default_events).
SENT_TO_EVERY_APP = frozenset({"installation", "installation_repositories"})


def _samples() -> Iterator[tuple[str, dict[str, Any]]]:
    """GitHub's example payloads, and the variants of them that Autopack acts on."""
    for name in (
        "check_run.completed",
        "check_run.requested_action",
        "check_suite.completed",
        "installation.created",
        "installation_repositories.added",
        "issue_comment.created",
        "issues.labeled",
        "issues.opened",
        "pull_request.opened",
        "push",
        "status",
    ):
        yield name.split(".")[0], load_payload(name)
    labeled = copy.deepcopy(load_payload("issues.labeled"))
    labeled["label"]["name"] = RUN_LABEL
    yield "issues", labeled
    comment = copy.deepcopy(load_payload("issue_comment.created"))
    comment["comment"]["body"] = "/autopack plan"
    yield "issue_comment", comment
    push = copy.deepcopy(load_payload("push"))
    push["commits"][0]["modified"] = [RULESET_PATH]
    yield "push", push
    fork = copy.deepcopy(load_payload("pull_request.opened"))
    fork["pull_request"]["head"]["repo"]["full_name"] = "someone/fork"
    yield "pull_request", fork


def _acted_on(event: str, data: dict[str, Any]) -> bool:
    """Whether a worker handler does something with the delivery (payload alone decides)."""
    payload = parse_payload(event, json.dumps(data))
    if event in SENT_TO_EVERY_APP:
        return ROUTES.handles(event, payload)
    if config_change(event, payload) is not None:
        return True
    if event == "check_run" and payload.action == "completed":
        return True  # RunIntake wakes the runs waiting for CI on its head
    if event == "status" and payload.state != "pending":
        return True  # so does a commit status that reached its result
    return classify(event, payload, ME).kind is not TriggerKind.IGNORE


def test_the_events_acted_on_are_the_handled_ones_and_app_yml_subscribes_to_them() -> None:
    acted = {
        event
        for event, payload in _samples()
        if event in HANDLED_EVENTS
        and may_matter(event, parse_payload(event, json.dumps(payload)), None)
        and ROUTES.handles(event, parse_payload(event, json.dumps(payload)))
        and _acted_on(event, payload)
    }
    assert acted == EVENTS  # no event stored that nothing acts on
    assert HANDLED_EVENTS == EVENTS  # the endpoint stores what the table routes
    assert set(EVENT_PARTS) == EVENTS  # and parses the parts of exactly those
    assert sorted(MANIFEST["default_events"]) == sorted(EVENTS - SENT_TO_EVERY_APP)


def test_every_stored_sample_has_a_handler() -> None:
    for event, data in _samples():
        payload = parse_payload(event, json.dumps(data))
        if event in EVENTS and may_matter(event, payload, None):
            assert ROUTES.handles(event, payload), (event, payload.action)


def test_events_outside_the_routing_are_dropped_before_storing() -> None:
    # check_suite: every check run in it sends its own `completed`; that is the wake-up.
    dropped = {event for event, _ in _samples()} - EVENTS
    assert dropped == {"check_suite"}
    assert "check_suite" not in MANIFEST["default_events"]


# -- permissions -----------------------------------------------------------------------------------

# GitHub's permission for each API family (docs: "Permissions required for GitHub Apps"), first
# match wins; None: App-JWT routes that need no installation permission.
ROUTE_PERMISSIONS: tuple[tuple[str, str | None], ...] = (
    (r"^/app(/|$)|^/app-manifests/", None),
    (r"^/repos/[^/]+/[^/]+/(git/|contents/|tarball/|commits/[^/]+$)", "contents"),
    (r"^/repos/[^/]+/[^/]+/(check-runs|check-suites|commits/[^/]+/check-)", "checks"),
    (r"^/repos/[^/]+/[^/]+/(statuses/|commits/[^/]+/status)", "statuses"),
    (r"^/repos/[^/]+/[^/]+/actions/", "actions"),
    (r"^/repos/[^/]+/[^/]+/issues", "issues"),
    (r"^/repos/[^/]+/[^/]+/pulls", "pull_requests"),
    (r"^/repos/[^/]+/[^/]+(/branches|/collaborators/[^/]+/permission)?$", "metadata"),
)
GRAPHQL_PERMISSIONS = {"markPullRequestReadyForReview": ("pull_requests", "write")}
_METHODS = {"getitem": "GET", "getiter": "GET", "post": "POST", "patch": "PATCH", "put": "PUT"}
_METHODS["delete"] = "DELETE"
# A whole string that is an API path: `/repos/{owner}/{repo}/...`, `/app/...`, or an f-string on
# a base URL or a stored `/repos/owner/name` prefix (`{}` stands for an f-string's holes).
_API_PATH = re.compile(
    r"(\{\})?(/repos/\{[^}]*\}(/\{[^}]*\})?|/app\b|/installation\b)[^\s`'\"]*"
    r"|\{\}/(git|check-runs|issues|pulls|contents)/[^\s`'\"]*"
)


def _text(node: ast.AST) -> str | None:
    """A string literal, or an f-string with `{}` for its holes."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) or "{}" for part in node.values)
    return None


def _normalise(path: str) -> str:
    """`{}/git/commits/{}`, `{}/repos/{}/tarball/{}` and `/repos/{owner}/{repo}/x{?y}` alike."""
    path = re.sub(r"\{\?[^}]*\}", "", path).split("?")[0]
    path = re.sub(r"^\{\}(?=/repos/|/app\b|/installation\b)", "", path)  # the API base URL
    path = re.sub(r"^/repos/\{[^}]*\}(/\{[^}]*\})?", "/repos/X/X", path)
    path = re.sub(r"^\{\}(?=/)", "/repos/X/X", path)  # a stored repository prefix
    return re.sub(r"\{[^}]*\}", "X", path)


def _skipped(tree: ast.AST) -> set[int]:
    """Docstrings and the paths of our own routes (`router.add_get(...)`): not API calls."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr.startswith("add_"):
            assert isinstance(node, ast.Call)
            skip.update(id(arg) for arg in node.args)
    return skip


def _calls() -> set[tuple[str, str]]:
    """(method, path) of every API route called in app/; method "ANY" when not visible."""
    found: set[tuple[str, str]] = set()
    for source in (ROOT / "app").rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        skip = _skipped(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                method = _METHODS.get(node.func.attr)
                text = _text(node.args[0]) if node.args else None
                if method and text is not None and _API_PATH.fullmatch(text):
                    found.add((method, _normalise(text)))
                    skip.add(id(node.args[0]))
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "create_once":
                # create_once(gh, path, ...) POSTs (app/github/create.py).
                text = _text(node.args[1]) if len(node.args) > 1 else None
                if text is not None and _API_PATH.fullmatch(text):
                    found.add(("POST", _normalise(text)))
                    skip.add(id(node.args[1]))
        for node in ast.walk(tree):
            text = _text(node)
            if text is None or id(node) in skip:
                continue
            if _API_PATH.fullmatch(text):
                found.add(("ANY", _normalise(text)))
            mutation = re.match(r"\s*mutation\b[^{]*\{\s*(\w+)", text)
            if mutation:
                found.add(("GRAPHQL", mutation.group(1)))
    return found


def _required() -> dict[str, str]:
    needed: dict[str, str] = {}

    def need(permission: str, level: str) -> None:
        if needed.get(permission) != "write":
            needed[permission] = level

    for method, path in sorted(_calls()):
        if method == "GRAPHQL":
            if path in GRAPHQL_PERMISSIONS:
                need(*GRAPHQL_PERMISSIONS[path])
            continue
        rule = next((perm for pattern, perm in ROUTE_PERMISSIONS if re.search(pattern, path)), "")
        assert rule != "", f"{method} {path}: add the route's permission to ROUTE_PERMISSIONS"
        if rule is not None:
            need(rule, "read" if method in ("GET", "ANY") else "write")
    return needed


def test_the_scan_sees_the_calls_it_is_about() -> None:
    calls = _calls()
    assert ("POST", "/repos/X/X/check-runs") in calls
    assert ("POST", "/repos/X/X/git/refs") in calls  # an f-string on a stored repo prefix
    assert ("ANY", "/repos/X/X/tarball/X") in calls  # a URL built for a download
    assert ("GRAPHQL", "markPullRequestReadyForReview") in calls
    assert ("ANY", "/app") in calls  # the readiness check: `{base}/app` with the App's JWT


def test_every_permission_the_code_needs_is_declared_and_none_besides() -> None:
    declared: dict[str, str] = MANIFEST["default_permissions"]
    needed = _required()
    for permission, level in needed.items():
        assert permission in declared, f"app.yml lacks {permission}: {level}"
        if level == "write":
            assert declared[permission] == "write", f"{permission} must be write"
    unused = set(declared) - set(needed)
    assert not unused, f"app.yml asks for permissions nothing uses: {unused}"
    over = {p for p, level in declared.items() if level == "write" and needed.get(p) == "read"}
    assert not over, f"write asked where read is enough: {over}"
    assert "workflows" not in declared  # opt-in, documented in app.yml for allow_workflow_changes


@pytest.mark.parametrize(
    ("method", "path", "permission"),
    [
        ("GET", "/repos/X/X/commits/X/status", "statuses"),
        ("POST", "/repos/X/X/actions/runs/X/rerun-failed-jobs", "actions"),
        ("GET", "/repos/X/X/branches", "metadata"),
        ("GET", "/repos/X/X/commits/X/check-runs", "checks"),
        ("GET", "/repos/X/X/commits/X", "contents"),
        ("GET", "/repos/X/X/contents/X", "contents"),
    ],
)
def test_the_route_table_maps_the_families(method: str, path: str, permission: str) -> None:
    assert next(p for pattern, p in ROUTE_PERMISSIONS if re.search(pattern, path)) == permission
