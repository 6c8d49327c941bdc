"""Priority 3: issues, comments, labels, permissions, pulls and the ready-for-review mutation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakegithub.receiver import Receiver
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.testkit import api, first_installation

REPO = "/repos/acme/widgets"


@pytest.fixture
def sim(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> FakeGitHub:
    fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets", {"README.md": "hi\n"})
    fakegithub.webhook_url = webhook_receiver.url
    return fakegithub


async def test_issue_lifecycle_and_events(sim: FakeGitHub, webhook_receiver: Receiver) -> None:
    number = await sim.open_issue("acme/widgets", "Add a thing", "please", user="alice")
    await sim.label_issue("acme/widgets", number, "autopack:run", sender="alice")
    async with api(sim, first_installation(sim)) as gh:
        status, labels = await gh.post(
            f"{REPO}/issues/{number}/labels", {"labels": ["in-progress"]}
        )
        assert (status, [x["name"] for x in labels]) == (200, ["autopack:run", "in-progress"])
        status, comment = await gh.post(f"{REPO}/issues/{number}/comments", {"body": "on it"})
        assert status == 201
        status, edited = await gh.patch(f"{REPO}/issues/comments/{comment['id']}", {"body": "done"})
        assert (status, edited["id"], edited["body"]) == (200, comment["id"], "done")
        status, body = await gh.delete(f"{REPO}/issues/{number}/labels/nope")
        assert (status, body["message"]) == (404, "Label does not exist")
        status, remaining = await gh.delete(f"{REPO}/issues/{number}/labels/in-progress")
        assert [x["name"] for x in remaining] == ["autopack:run"]
        status, issue = await gh.patch(f"{REPO}/issues/{number}", {"state": "closed", "body": "x"})
        assert (issue["state"], issue["body"], issue["comments"]) == ("closed", "x", 1)
        _, open_list = await gh.get(f"{REPO}/issues")
        _, closed = await gh.get(f"{REPO}/issues?state=closed&labels=autopack:run")
        _, comments = await gh.get(f"{REPO}/issues/{number}/comments")
    assert open_list == []
    assert [i["number"] for i in closed] == [number]
    assert [c["body"] for c in comments] == ["done"]
    await sim.idle()
    events = [
        (r.event, r.payload.get("action"), r.payload["sender"]["login"])
        for r in webhook_receiver.received
    ]
    bot = "autopack[bot]"
    assert events == [
        ("issues", "opened", "alice"),
        ("issues", "labeled", "alice"),
        ("issues", "labeled", bot),
        ("issue_comment", "created", bot),
        ("issue_comment", "edited", bot),
        ("issues", "unlabeled", bot),
        ("issues", "edited", bot),
        ("issues", "closed", bot),
    ]
    edited_payload = webhook_receiver.received[4].payload
    assert edited_payload["changes"] == {"body": {"from": "on it"}}
    assert edited_payload["comment"]["performed_via_github_app"]["slug"] == "autopack"
    assert webhook_receiver.received[0].payload["installation"]["id"] == first_installation(sim).id
    assert webhook_receiver.received[0].payload["organization"]["login"] == "acme"


@pytest.mark.parametrize(
    ("role", "permission"),
    [
        ("admin", "admin"),
        ("maintain", "write"),
        ("write", "write"),
        ("triage", "read"),
        ("read", "read"),
        ("none", "none"),
    ],
)
async def test_permission_reports_legacy_scale(sim: FakeGitHub, role: str, permission: str) -> None:
    sim.set_permission("acme/widgets", "bob", role)
    async with api(sim, first_installation(sim)) as gh:
        status, body = await gh.get(f"{REPO}/collaborators/bob/permission")
    assert status == 200
    assert (body["permission"], body["role_name"], body["user"]["login"]) == (
        permission,
        role,
        "bob",
    )


async def test_permission_unknown_user_is_404(sim: FakeGitHub) -> None:
    async with api(sim, first_installation(sim)) as gh:
        status, _ = await gh.get(f"{REPO}/collaborators/ghost/permission")
    assert status == 404


async def test_pulls(sim: FakeGitHub, webhook_receiver: Receiver) -> None:
    await sim.push("acme/widgets", "feature", {"f.txt": "x\n"})
    async with api(sim, first_installation(sim)) as gh:
        status, pr = await gh.post(
            f"{REPO}/pulls", {"title": "T", "head": "feature", "base": "main", "draft": True}
        )
        assert (status, pr["draft"], pr["head"]["ref"]) == (201, True, "feature")
        status, body = await gh.post(
            f"{REPO}/pulls", {"title": "T", "head": "acme:feature", "base": "main"}
        )
        assert status == 422
        assert "already exists" in body["errors"][0]["message"]
        _, by_head = await gh.get(f"{REPO}/pulls?head=acme:feature&state=open")
        _, other = await gh.get(f"{REPO}/pulls?head=acme:nope")
        assert [p["number"] for p in by_head] == [pr["number"]]
        assert other == []
        query = (
            "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id})"
            " { pullRequest { isDraft } } }"
        )
        status, data = await gh.post(
            "/graphql", {"query": query, "variables": {"id": pr["node_id"]}}
        )
        assert data["data"]["markPullRequestReadyForReview"]["pullRequest"]["isDraft"] is False
        _, got = await gh.get(f"{REPO}/pulls/{pr['number']}")
        assert got["draft"] is False
        status, closed = await gh.patch(
            f"{REPO}/pulls/{pr['number']}", {"state": "closed", "title": "T2"}
        )
        assert (closed["state"], closed["title"]) == ("closed", "T2")
    await sim.idle()
    assert [e for e in webhook_receiver.events() if e[0] == "pull_request"] == [
        ("pull_request", "opened"),
        ("pull_request", "ready_for_review"),
        ("pull_request", "edited"),
        ("pull_request", "closed"),
    ]


@pytest.mark.parametrize(
    ("body", "field_or_message"),
    [
        ({"title": "T", "head": "main", "base": "main"}, "No commits between main and main"),
        ({"title": "T", "head": "missing", "base": "main"}, "head"),
        ({"title": "T", "head": "feature", "base": "missing"}, "base"),
        ({"head": "feature", "base": "main"}, "title"),
    ],
)
async def test_pull_validation(
    sim: FakeGitHub, body: dict[str, str], field_or_message: str
) -> None:
    await sim.push("acme/widgets", "feature", {"f.txt": "x\n"})
    async with api(sim, first_installation(sim)) as gh:
        status, answer = await gh.post(f"{REPO}/pulls", body)
    assert status == 422
    error = answer["errors"][0]
    assert field_or_message in (error.get("field"), error.get("message"))


EDITOR = """query($owner: String!, $name: String!, $number: Int!) {
  repository(owner: $owner, name: $name) {
    issue(number: $number) { lastEditedAt editor { __typename login } }
  }
}"""


async def test_the_last_editor_of_an_issue_description(sim: FakeGitHub) -> None:
    number = await sim.open_issue("acme/widgets", "Plan", "first", user="alice")

    async def editor(issue: int, owner: str = "acme") -> Any:
        variables = {"owner": owner, "name": "widgets", "number": issue}
        async with api(sim, first_installation(sim)) as gh:
            status, data = await gh.post("/graphql", {"query": EDITOR, "variables": variables})
        assert status == 200
        return data

    never = await editor(number)
    assert never == {"data": {"repository": {"issue": {"lastEditedAt": None, "editor": None}}}}
    await sim.edit_issue("acme/widgets", number, "second", sender="mallory")
    edited = (await editor(number))["data"]["repository"]["issue"]
    assert edited["editor"] == {"__typename": "User", "login": "mallory"}
    assert edited["lastEditedAt"]
    async with api(sim, first_installation(sim)) as gh:
        await gh.patch(f"{REPO}/issues/{number}", {"title": "Renamed"})  # a title is no body
        after_title = (await editor(number))["data"]["repository"]["issue"]
        assert after_title["editor"]["login"] == "mallory"
        await gh.patch(f"{REPO}/issues/{number}", {"body": "third"})
    by_app = (await editor(number))["data"]["repository"]["issue"]
    assert by_app["editor"] == {"__typename": "Bot", "login": "autopack"}  # no [bot] in GraphQL
    missing = await editor(999)
    assert missing["data"] == {"repository": {"issue": None}}
    assert missing["errors"][0]["type"] == "NOT_FOUND"
    elsewhere = await editor(number, owner="nobody")
    assert elsewhere["data"] == {"repository": None}
    assert sim.unknown_routes == []


async def test_other_graphql_is_unknown(sim: FakeGitHub) -> None:
    async with api(sim, first_installation(sim)) as gh:
        await gh.post("/graphql", {"query": "query { viewer { login } }"})
    assert len(sim.unknown_routes) == 1
    sim.unknown_routes.clear()


async def test_push_to_pr_head_sends_synchronize(
    sim: FakeGitHub, webhook_receiver: Receiver
) -> None:
    await sim.push("acme/widgets", "feature", {"f.txt": "x\n"})
    async with api(sim, first_installation(sim)) as gh:
        await gh.post(f"{REPO}/pulls", {"title": "T", "head": "feature", "base": "main"})
    after = await sim.push("acme/widgets", "feature", {"f.txt": "y\n"})
    await sim.idle()
    sync = [
        r.payload for r in webhook_receiver.received if r.payload.get("action") == "synchronize"
    ]
    assert sync[0]["after"] == after
    assert sync[0]["pull_request"]["head"]["sha"] == after
