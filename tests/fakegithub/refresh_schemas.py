"""Extract the response schemas of the routes the simulator serves from @octokit/openapi.

Refresh with:
    npm pack @octokit/openapi@23.0.2 @octokit/webhooks-examples@7.6.1
    mkdir openapi examples
    tar xzf octokit-openapi-23.0.2.tgz -C openapi
    tar xzf octokit-webhooks-examples-7.6.1.tgz -C examples
    python tests/fakegithub/refresh_schemas.py \
        openapi/package/generated/api.github.com.json \
        examples/package/api.github.com/index.json

The output, tests/fakegithub/schemas.json, is {"routes": {"METHOD /path STATUS": n},
"schemas": [schema, ...], "webhooks": {"event.action": shape}}: dereferenced JSON schemas, each
stored once however many routes share it, with one known description bug fixed (an installation's
`account` is inlined as allOf[Simple User, Enterprise], which nothing can satisfy; the component
says anyOf), with descriptions and examples stripped (they are most
of the bytes and validate nothing); and for the webhooks the simulator sends, the keys every
example has, the keys any example has, and the JSON types seen, at the top level and one level
down.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("schemas.json")

# (method, OpenAPI path, success status) for every route test_fidelity.py validates.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/app", "200"),
    ("GET", "/app/installations", "200"),
    ("POST", "/app/installations/{installation_id}/access_tokens", "201"),
    ("GET", "/installation/repositories", "200"),
    ("GET", "/app/hook/deliveries", "200"),
    ("GET", "/app/hook/deliveries/{delivery_id}", "200"),
    ("GET", "/repos/{owner}/{repo}", "200"),
    ("GET", "/repos/{owner}/{repo}/branches", "200"),
    ("GET", "/repos/{owner}/{repo}/branches/{branch}", "200"),
    ("GET", "/repos/{owner}/{repo}/contents/{path}", "200"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}", "200"),
    ("POST", "/repos/{owner}/{repo}/git/blobs", "201"),
    ("GET", "/repos/{owner}/{repo}/git/blobs/{file_sha}", "200"),
    ("POST", "/repos/{owner}/{repo}/git/trees", "201"),
    ("GET", "/repos/{owner}/{repo}/git/trees/{tree_sha}", "200"),
    ("POST", "/repos/{owner}/{repo}/git/commits", "201"),
    ("GET", "/repos/{owner}/{repo}/git/commits/{commit_sha}", "200"),
    ("POST", "/repos/{owner}/{repo}/git/refs", "201"),
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}", "200"),
    ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}", "200"),
    ("GET", "/repos/{owner}/{repo}/git/matching-refs/{ref}", "200"),
    ("POST", "/repos/{owner}/{repo}/git/tags", "201"),
    ("GET", "/repos/{owner}/{repo}/git/tags/{tag_sha}", "200"),
    ("POST", "/repos/{owner}/{repo}/issues", "201"),
    ("GET", "/repos/{owner}/{repo}/issues", "200"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}", "200"),
    ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}", "200"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "201"),
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments", "200"),
    ("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}", "200"),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}", "200"),
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels", "200"),
    ("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}", "200"),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", "200"),
    ("POST", "/repos/{owner}/{repo}/pulls", "201"),
    ("GET", "/repos/{owner}/{repo}/pulls", "200"),
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}", "200"),
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}", "200"),
    ("POST", "/repos/{owner}/{repo}/check-runs", "201"),
    ("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}", "200"),
    ("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}", "200"),
    ("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", "200"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs", "200"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/check-suites", "200"),
    ("GET", "/repos/{owner}/{repo}/check-suites/{check_suite_id}", "200"),
    ("POST", "/repos/{owner}/{repo}/statuses/{sha}", "201"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/statuses", "200"),
    ("GET", "/repos/{owner}/{repo}/commits/{ref}/status", "200"),
    ("GET", "/repos/{owner}/{repo}/actions/runs", "200"),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}", "200"),
    ("POST", "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs", "201"),
    ("POST", "/app-manifests/{code}/conversions", "201"),
    ("PATCH", "/app/hook/config", "200"),
)

_DROP = frozenset({"description", "example", "examples", "externalDocs", "summary"})


def _strip(node: Any) -> Any:
    """Drop documentation-only keys, recursively (but keep properties named like them)."""
    if isinstance(node, dict):
        titles = {m.get("title") for m in node.get("allOf", []) if isinstance(m, dict)}
        if titles == {"Simple User", "Enterprise"}:
            node = {("anyOf" if k == "allOf" else k): v for k, v in node.items()}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                out[key] = {name: _strip(sub) for name, sub in value.items()}
            elif key not in _DROP:
                out[key] = _strip(value)
        return out
    if isinstance(node, list):
        return [_strip(item) for item in node]
    return node


def deref(node: Any, spec: dict[str, Any], depth: int = 0) -> Any:
    """Inline every local $ref (GitHub's description has no cycles on these routes)."""
    if depth > 40:
        raise ValueError("$ref nesting too deep: a cycle?")
    if isinstance(node, list):
        return [deref(item, spec, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return deref(target, spec, depth + 1)
    return {key: deref(value, spec, depth) for key, value in node.items()}


def extract(spec: dict[str, Any]) -> dict[str, Any]:
    """Return {"routes": {"METHOD /path STATUS": index}, "schemas": [...]} for ROUTES."""
    routes: dict[str, int] = {}
    schemas: list[Any] = []
    seen: dict[str, int] = {}
    for method, path, status in ROUTES:
        response = spec["paths"][path][method.lower()]["responses"][status]
        response = deref(response, spec)
        schema = _strip(response["content"]["application/json"]["schema"])
        text = json.dumps(schema, sort_keys=True)
        if text not in seen:
            seen[text] = len(schemas)
            schemas.append(schema)
        routes[f"{method} {path} {status}"] = seen[text]
    return {"routes": routes, "schemas": schemas}


# Webhook (event, action) pairs the simulator sends; action None for action-less events.
WEBHOOKS: tuple[tuple[str, str | None], ...] = (
    ("issues", "opened"),
    ("issues", "edited"),
    ("issues", "reopened"),
    ("issues", "labeled"),
    ("issues", "unlabeled"),
    ("issue_comment", "created"),
    ("issue_comment", "edited"),
    ("issue_comment", "deleted"),
    ("pull_request", "opened"),
    ("pull_request", "closed"),
    ("pull_request", "reopened"),
    ("pull_request", "ready_for_review"),
    ("pull_request", "synchronize"),
    ("pull_request", "labeled"),
    ("pull_request", "unlabeled"),
    ("check_run", "created"),
    ("check_run", "completed"),
    ("check_run", "requested_action"),
    ("check_run", "rerequested"),
    ("check_suite", "completed"),
    ("check_suite", "rerequested"),
    ("installation", "created"),
    ("push", None),
    ("status", None),
)


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _shape(objects: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [set(o) for o in objects]
    types: dict[str, set[str]] = {}
    for obj in objects:
        for key, value in obj.items():
            types.setdefault(key, set()).add(json_type(value))
    return {
        "required": sorted(set.intersection(*keys)),
        "allowed": sorted(set.union(*keys)),
        "types": {k: sorted(v) for k, v in sorted(types.items())},
    }


def webhook_shapes(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """{"event.action": shape with a "nested" shape per object-valued top-level key}."""
    by_event = {entry["name"]: entry["examples"] for entry in examples}
    result: dict[str, Any] = {}
    for event, action in WEBHOOKS:
        found = [e for e in by_event[event] if e.get("action") == action]
        shape = _shape(found)
        nested = {}
        for key in shape["allowed"]:
            values = [e[key] for e in found if isinstance(e.get(key), dict)]
            if values:
                nested[key] = _shape(values)
        shape["nested"] = nested
        result[f"{event}.{action}" if action else event] = shape
    return result


def main(argv: list[str]) -> int:
    """Read the OpenAPI description and the webhook examples; write schemas.json."""
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    examples = json.loads(Path(argv[2]).read_text(encoding="utf-8"))
    out = extract(spec)
    out["webhooks"] = webhook_shapes(examples)
    OUT.write_text(json.dumps(out, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
