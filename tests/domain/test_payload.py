"""The typed edge of a delivery: GitHub's payloads parse, anything of the wrong shape is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.domain.payload import EVENT_PARTS, MalformedPayload, parse_payload
from tests.conftest import PAYLOADS, load_payload


@pytest.mark.parametrize("path", sorted(PAYLOADS.glob("*.json")), ids=lambda p: p.stem)
def test_every_github_example_parses(path: Path) -> None:
    event = path.stem.partition(".")[0]
    payload = parse_payload(event, path.read_bytes())
    assert payload.action == json.loads(path.read_bytes()).get("action")


def test_labeled_issue_reads_as_typed_values() -> None:
    payload = parse_payload("issues", json.dumps(load_payload("issues.labeled")))
    assert payload.repository_name == "Codertocat/Hello-World"
    assert payload.sender is not None
    assert payload.sender.login == "Codertocat"
    assert payload.issue is not None
    assert payload.issue.number == 1
    assert payload.label is not None
    assert payload.label.name == "bug"
    assert payload.installation_id is None


def _with(name: str, **parts: Any) -> bytes:
    return json.dumps({**load_payload(name), **parts}).encode()


def _comment_by(user: Any) -> bytes:
    data = load_payload("issue_comment.created")
    data["comment"]["user"] = user
    return json.dumps(data).encode()


DEEP = b'{"action": "labeled", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"


@pytest.mark.parametrize(
    ("event", "body", "message"),
    [
        ("check_run", _with("check_run.completed", check_run="x"), "check_run: "),
        ("issues", _with("issues.labeled", label="x"), "label: "),
        ("issues", _with("issues.labeled", label=["autopack:run"]), "label: "),
        ("issues", _with("issues.labeled", label={"name": 5}), "label.name: "),
        ("issue_comment", _comment_by("x"), "comment.user: "),
        ("issue_comment", _comment_by({"login": "a/b"}), "comment.user.login: "),
        ("installation", _with("installation.created", installation="x"), "installation: "),
        ("issues", _with("issues.labeled", repository=5), "repository: "),
        ("issues", _with("issues.labeled", repository={"full_name": "../x"}), "repository."),
        ("issues", _with("issues.labeled", sender=[]), "sender: "),
        ("issues", _with("issues.labeled", action=7), "action: "),
        ("issues", _with("issues.labeled", issue={"number": "1"}), "issue.number: "),
        ("issues", _with("issues.labeled", issue={"number": 2**31}), "issue.number: "),
        ("issues", _with("issues.labeled", issue={"number": True}), "issue.number: "),
        ("issues", _with("issues.labeled", issue={"number": 1.0}), "issue.number: "),
        ("issues", _with("issues.labeled", changes={"body": "x"}), "changes.body: "),
        ("installation", _with("installation.created", repositories={"id": 1}), "repositories"),
        (
            "check_run",
            _with("check_run.completed", check_run=None),
            "the check_run delivery has no",
        ),
        ("issues", _with("issues.labeled", issue=None), "the issues delivery has no issue"),
        ("issues", DEEP, "the body is not valid JSON: recursion limit exceeded"),
        ("issues", b'{"action": "\xff"}', "the body is not valid JSON: "),
        ("issues", b'{"action": "\\ud800"}', "the body is not valid JSON: "),
        ("issues", b"[]", "the body is not a JSON object"),
        ("issues", b"", "the body is not valid JSON: "),
    ],
)
def test_wrong_shapes_are_malformed(event: str, body: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload) as raised:
        parse_payload(event, body)
    assert str(raised.value).startswith(message)


def test_events_without_parts_of_their_own_still_need_json() -> None:
    assert parse_payload("ping", b'{"zen": "Design for failure."}').action is None
    assert "ping" not in EVENT_PARTS
    with pytest.raises(MalformedPayload):
        parse_payload("ping", b"not json")
