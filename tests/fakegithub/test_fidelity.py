"""Priority 8: responses validate against @octokit/openapi; webhooks match the octokit examples.

The schemas and webhook shapes come from tests/fakegithub/schemas.json (see refresh_schemas.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.fakegithub.ci import CIScript
from tests.fakegithub.receiver import Receiver
from tests.fakegithub.refresh_schemas import json_type
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.testkit import Api, api, first_installation

SCHEMAS = json.loads(Path(__file__).with_name("schemas.json").read_text(encoding="utf-8"))
REPO = "/repos/acme/widgets"
GADGETS = "acme/gadgets"  # CI through GitHub Actions


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` to JSON Schema (type lists / anyOf null)."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            {name: _nullable(sub) for name, sub in v.items()}
            if k == "properties" and isinstance(v, dict)
            else _nullable(v)
        )
        for k, v in node.items()
        if k != "nullable"
    }
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _pattern(template: str) -> re.Pattern[str]:
    method, path, status = template.split(" ")
    greedy = "/git/" in path or "{path}" in path
    regex = re.sub(r"\{path\}", ".+", path)
    regex = re.sub(r"\{ref\}", ".+" if greedy else "[^/]+", regex)
    regex = re.sub(r"\{[^}]+\}", "[^/]+", regex)
    return re.compile(f"{method} {regex} {status}")


ROUTES = {key: _pattern(key) for key in SCHEMAS["routes"]}


def _route(method: str, path: str, status: int) -> str | None:
    line = f"{method} {path} {status}"
    matches = [key for key, pattern in ROUTES.items() if pattern.fullmatch(line)]
    # The most literal template wins (".../commits/{ref}/check-runs" over ".../commits/{ref}").
    return max(matches, key=lambda k: len(re.sub(r"\{[^}]+\}", "", k)), default=None)


class Recorder(Api):
    """An Api that keeps every answer for validation."""

    answers: list[tuple[str, str, int, Any]]

    async def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data, headers = await super().call(method, path, body, **kw)
        self.answers.append((method, path.split("?")[0], status, data))
        return status, data, headers


async def _exercise(sim: FakeGitHub, gh: Recorder) -> None:
    """Call every route the schema file covers, at least once."""
    main = sim.repo("acme/widgets").ref("heads/main")
    await gh.get(REPO)
    await gh.get(f"{REPO}/branches")
    await gh.get(f"{REPO}/branches/main")
    await gh.get(f"{REPO}/contents/README.md")
    await gh.get(f"{REPO}/commits/main")
    _, blob = await gh.post(f"{REPO}/git/blobs", {"content": "x", "encoding": "utf-8"})
    await gh.get(f"{REPO}/git/blobs/{blob['sha']}")
    _, base = await gh.get(f"{REPO}/git/commits/{main}")
    _, tree = await gh.post(
        f"{REPO}/git/trees",
        {
            "base_tree": base["tree"]["sha"],
            "tree": [{"path": "x", "mode": "100644", "sha": blob["sha"]}],
        },
    )
    await gh.get(f"{REPO}/git/trees/{tree['sha']}?recursive=1")
    _, commit = await gh.post(
        f"{REPO}/git/commits", {"message": "m", "tree": tree["sha"], "parents": [main]}
    )
    await gh.post(f"{REPO}/git/refs", {"ref": "refs/heads/feature", "sha": main})
    await gh.patch(f"{REPO}/git/refs/heads/feature", {"sha": commit["sha"]})
    await gh.get(f"{REPO}/git/ref/heads/feature")
    await gh.get(f"{REPO}/git/matching-refs/heads/")
    _, tag = await gh.post(
        f"{REPO}/git/tags", {"tag": "v1", "message": "m", "object": main, "type": "commit"}
    )
    await gh.get(f"{REPO}/git/tags/{tag['sha']}")
    _, issue = await gh.post(f"{REPO}/issues", {"title": "T", "body": "B", "labels": ["x"]})
    number = issue["number"]
    await gh.get(f"{REPO}/issues")
    await gh.get(f"{REPO}/issues/{number}")
    await gh.patch(f"{REPO}/issues/{number}", {"body": "B2"})
    _, comment = await gh.post(f"{REPO}/issues/{number}/comments", {"body": "c"})
    await gh.get(f"{REPO}/issues/{number}/comments")
    await gh.get(f"{REPO}/issues/comments/{comment['id']}")
    await gh.patch(f"{REPO}/issues/comments/{comment['id']}", {"body": "c2"})
    await gh.post(f"{REPO}/issues/{number}/labels", {"labels": ["y"]})
    await gh.delete(f"{REPO}/issues/{number}/labels/y")
    await gh.get(f"{REPO}/collaborators/alice/permission")
    _, pull = await gh.post(
        f"{REPO}/pulls", {"title": "P", "head": "feature", "base": "main", "draft": True}
    )
    await gh.get(f"{REPO}/pulls?head=acme:feature")
    await gh.get(f"{REPO}/pulls/{pull['number']}")
    await gh.post(f"{REPO}/issues/{pull['number']}/labels", {"labels": ["z"]})
    await gh.patch(f"{REPO}/pulls/{pull['number']}", {"body": "changed"})
    _, run = await gh.post(
        f"{REPO}/check-runs",
        {"name": "autopack", "head_sha": commit["sha"], "status": "in_progress"},
    )
    await gh.get(f"{REPO}/check-runs/{run['id']}")
    await gh.patch(
        f"{REPO}/check-runs/{run['id']}",
        {
            "conclusion": "success",
            "output": {
                "title": "t",
                "summary": "s",
                "annotations": [
                    {
                        "path": "x",
                        "start_line": 1,
                        "end_line": 1,
                        "annotation_level": "notice",
                        "message": "m",
                    }
                ],
            },
            "actions": [{"label": "Retry", "description": "again", "identifier": "retry"}],
        },
    )
    await gh.get(f"{REPO}/check-runs/{run['id']}/annotations")
    await sim.idle()
    await gh.get(f"{REPO}/commits/{commit['sha']}/check-runs")
    _, suites = await gh.get(f"{REPO}/commits/{commit['sha']}/check-suites")
    for suite in suites["check_suites"]:
        await gh.get(f"{REPO}/check-suites/{suite['id']}")
        await gh.post(f"{REPO}/check-suites/{suite['id']}/rerequest")
    await gh.get("/installation/repositories")
    await sim.click_action(run["id"], "retry")
    await sim.rerequest_check_run(run["id"])
    await sim.push("acme/widgets", "feature", {"y": "y"})
    await gh.patch(f"{REPO}/issues/{number}", {"state": "closed"})
    await gh.patch(f"{REPO}/issues/{number}", {"state": "open"})
    await gh.patch(f"{REPO}/pulls/{pull['number']}", {"state": "closed"})
    await gh.patch(f"{REPO}/pulls/{pull['number']}", {"state": "open"})
    await gh.delete(f"{REPO}/issues/{pull['number']}/labels/z")
    await gh.delete(f"{REPO}/issues/comments/{comment['id']}")
    await sim.idle()
    await _exercise_ci_routes(sim, gh, commit["sha"])


async def _exercise_ci_routes(sim: FakeGitHub, gh: Recorder, sha: str) -> None:
    """Commit statuses (and their webhook) and GitHub Actions workflow runs."""
    status = {"state": "failure", "context": "ci/jenkins", "description": "1 test failed"}
    await gh.post(f"{REPO}/statuses/{sha}", {**status, "target_url": "https://ci.invalid/1"})
    await gh.post(f"{REPO}/statuses/{sha}", {"state": "success"})
    await gh.get(f"{REPO}/commits/{sha}/statuses")
    await gh.get(f"{REPO}/commits/{sha}/status")
    head = await sim.push(GADGETS, "feature", {"a.txt": "1"})
    await sim.idle()
    _, listing = await gh.get(f"/repos/{GADGETS}/actions/runs?head_sha={head}")
    run_id = listing["workflow_runs"][0]["id"]
    await gh.post(f"/repos/{GADGETS}/actions/runs/{run_id}/rerun-failed-jobs")
    await sim.idle()
    await gh.get(f"/repos/{GADGETS}/actions/runs/{run_id}")


async def _exercise_app_routes(sim: FakeGitHub, gh: Recorder) -> None:
    from gidgethub.apps import get_jwt

    token = get_jwt(app_id=str(sim.app.id), private_key=sim.app.private_key_pem)
    headers = {"Authorization": f"Bearer {token}"}
    inst = first_installation(sim)
    await gh.call("GET", "/app", headers=headers)
    await gh.call("GET", "/app/installations", headers=headers)
    await gh.call("POST", f"/app/installations/{inst.id}/access_tokens", headers=headers)
    _, deliveries, _ = await gh.call("GET", "/app/hook/deliveries", headers=headers)
    await gh.call("GET", f"/app/hook/deliveries/{deliveries[0]['id']}", headers=headers)
    # The manifest flow: the browser's form post, then the code exchanged for the new app.
    manifest = {"name": "Fidelity", "url": "https://x.example", "redirect_url": "http://r.example/"}
    async with gh.session.post(
        f"{sim.url}/settings/apps/new?state=s1",
        data={"manifest": json.dumps(manifest)},
        allow_redirects=False,
    ) as response:
        location = response.headers["Location"]
    code = location.split("code=")[1].split("&")[0]
    _, created, _ = await gh.call("POST", f"/app-manifests/{code}/conversions", headers={})
    new_jwt = get_jwt(app_id=str(created["id"]), private_key=created["pem"])
    await gh.call(
        "PATCH",
        "/app/hook/config",
        {"secret": "s" * 32},
        headers={"Authorization": f"Bearer {new_jwt}"},
    )


@pytest.fixture
async def answers(
    fakegithub: FakeGitHub, webhook_receiver: Receiver
) -> list[tuple[str, str, int, Any]]:
    fakegithub.install("acme")
    fakegithub.create_repo("acme/widgets", ci=CIScript.pass_(names=("tests",)))
    fakegithub.create_repo(GADGETS, ci=CIScript.flaky(names=("tests",)).through("actions"))
    fakegithub.set_permission("acme/widgets", "alice", "maintain")
    fakegithub.webhook_url = webhook_receiver.url
    await fakegithub.open_issue("acme/widgets", "by a person", "b")
    async with api(fakegithub, first_installation(fakegithub)) as plain:
        gh = Recorder(fakegithub, plain.session)
        gh.answers = []
        await _exercise(fakegithub, gh)
        await _exercise_app_routes(fakegithub, gh)
    return gh.answers


async def test_responses_match_openapi(answers: list[tuple[str, str, int, Any]]) -> None:
    covered: set[str] = set()
    for method, path, status, body in answers:
        assert status < 400, (method, path, status, body)
        key = _route(method, path, status)
        if key is None:
            continue
        schema = _nullable(SCHEMAS["schemas"][SCHEMAS["routes"][key]])
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(body), key=str)
        assert not errors, (key, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]])
        covered.add(key)
    assert covered == set(SCHEMAS["routes"])


def _check_shape(
    where: str, mine: dict[str, Any], shape: dict[str, Any], exempt: set[str]
) -> list[str]:
    problems = []
    missing = set(shape["required"]) - set(mine) - exempt
    if missing:
        problems.append(f"{where}: missing {sorted(missing)}")
    for key, value in mine.items():
        seen = set(shape["types"].get(key, []))
        kind = json_type(value)
        if seen and kind != "null" and "null" not in seen and kind not in seen:
            problems.append(f"{where}.{key}: {kind}, examples have {sorted(seen)}")
    return problems


async def test_webhooks_match_octokit_examples(
    answers: list[tuple[str, str, int, Any]], webhook_receiver: Receiver
) -> None:
    shapes = SCHEMAS["webhooks"]
    checked = set()
    problems: list[str] = []
    for received in webhook_receiver.received:
        payload = received.payload
        name = received.event + (f".{payload['action']}" if "action" in payload else "")
        if name not in shapes:
            continue
        shape = shapes[name]
        checked.add(name)
        extra = set(payload) - set(shape["allowed"]) - {"installation", "organization"}
        if extra:
            problems.append(f"{name}: keys no example has: {sorted(extra)}")
        problems += _check_shape(name, payload, shape, {"organization", "installation"})
        for key, nested in shape["nested"].items():
            if isinstance(payload.get(key), dict):
                problems += _check_shape(f"{name}.{key}", payload[key], nested, set())
    assert not problems, "\n".join(problems)
    assert checked >= {
        "issues.opened",
        "issues.edited",
        "issues.labeled",
        "issues.reopened",
        "issue_comment.created",
        "issue_comment.edited",
        "issue_comment.deleted",
        "pull_request.opened",
        "pull_request.labeled",
        "pull_request.unlabeled",
        "pull_request.synchronize",
        "pull_request.closed",
        "pull_request.reopened",
        "check_run.created",
        "check_run.completed",
        "check_run.requested_action",
        "check_run.rerequested",
        "check_suite.completed",
        "check_suite.rerequested",
        "push",
        "status",
    }
