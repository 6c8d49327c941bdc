"""Git data routes: blobs, trees, commits, refs and tags, with GitHub's answers to misuse."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from tests.fakegithub import render
from tests.fakegithub.gitstore import GitError, InvalidObject, ObjectNotFound, Signature
from tests.fakegithub.respond import (
    ApiError,
    actor,
    body_of,
    core_of,
    invalid,
    not_found,
    paginate,
    repo_of,
)
from tests.fakegithub.state import Repo, World, node_id, now_iso

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}/git"
UNSIGNED = {"verified": False, "reason": "unsigned", "signature": None, "payload": None}


def b64_lines(data: bytes) -> str:
    """Base64 wrapped at 60 characters per line, as GitHub returns file contents."""
    text = base64.b64encode(data).decode()
    return "".join(text[i : i + 60] + "\n" for i in range(0, len(text), 60))


def _api(world: World, repo: Repo) -> str:
    return f"{world.api_url}/repos/{repo.full_name}"


def render_commit(world: World, repo: Repo, sha: str) -> dict[str, Any]:
    """git-commit."""
    commit = repo.git.get_commit(sha)
    api = _api(world, repo)

    def sig(s: Signature) -> dict[str, str]:
        return {"name": s.name, "email": s.email, "date": s.date}

    return {
        "sha": sha,
        "node_id": node_id("Commit", int(sha[:7], 16)),
        "url": f"{api}/git/commits/{sha}",
        "html_url": f"{render.HTML}/{repo.full_name}/commit/{sha}",
        "author": sig(commit.author),
        "committer": sig(commit.committer),
        "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
        "message": commit.message,
        "parents": [
            {
                "sha": p,
                "url": f"{api}/git/commits/{p}",
                "html_url": f"{render.HTML}/{repo.full_name}/commit/{p}",
            }
            for p in commit.parents
        ],
        "verification": {**UNSIGNED, "verified_at": None},
    }


def render_ref(world: World, repo: Repo, ref: str) -> dict[str, Any]:
    """git-ref."""
    sha = repo.refs[ref]
    kind = repo.git.object_type(sha)
    return {
        "ref": ref,
        "node_id": node_id("Ref", abs(hash((repo.id, ref))) % 10**9),
        "url": f"{_api(world, repo)}/git/{ref}",
        "object": {"type": kind, "sha": sha, "url": f"{_api(world, repo)}/git/{kind}s/{sha}"},
    }


def render_tree(world: World, repo: Repo, sha: str, recursive: bool) -> dict[str, Any]:
    """git-tree."""
    pairs = (
        repo.git.read_tree_recursive(sha)
        if recursive
        else [(e.path, e) for e in repo.git.get_tree(sha)]
    )
    items = []
    for path, entry in pairs:
        item: dict[str, Any] = {
            "path": path,
            "mode": entry.mode,
            "type": entry.type,
            "sha": entry.sha,
        }
        if entry.type == "blob":
            item["size"] = len(repo.git.get_blob(entry.sha))
            item["url"] = f"{_api(world, repo)}/git/blobs/{entry.sha}"
        elif entry.type == "tree":
            item["url"] = f"{_api(world, repo)}/git/trees/{entry.sha}"
        items.append(item)
    return {
        "sha": sha,
        "url": f"{_api(world, repo)}/git/trees/{sha}",
        "tree": items,
        "truncated": False,
    }


def _signature(value: Any, default: Signature, role: str) -> Signature:
    if value is None:
        return default
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in ("name", "email")
    ):
        invalid(f"Invalid request.\n\n{role}.name and {role}.email are required.")
    date = value.get("date") or default.date
    return Signature(value["name"], value["email"], date)


def _git(call: Any, *args: Any) -> Any:
    """Run a store operation, mapping its errors to GitHub's answers."""
    try:
        return call(*args)
    except ObjectNotFound:
        not_found()
    except InvalidObject as exc:
        invalid(str(exc))


@routes.post(R + "/blobs")
async def create_blob(request: web.Request) -> web.Response:
    """POST git/blobs (utf-8 or base64)."""
    repo = repo_of(request)
    body = await body_of(request)
    content, encoding = body.get("content"), body.get("encoding", "utf-8")
    if not isinstance(content, str):
        invalid('Invalid request.\n\n"content" wasn\'t supplied.')
    if encoding == "utf-8":
        data = content.encode()
    elif encoding == "base64":
        try:
            data = base64.b64decode(content, validate=False)
        except binascii.Error:
            invalid("Invalid request.\n\ncontent is not valid Base64.")
    else:
        invalid(f"encoding must be either utf-8 or base64, not {encoding}")
    sha = repo.git.put_blob(data)
    url = f"{_api(core_of(request).world, repo)}/git/blobs/{sha}"
    return web.json_response({"url": url, "sha": sha}, status=201)


@routes.get(R + "/blobs/{sha}")
async def get_blob(request: web.Request) -> web.Response:
    """GET git/blobs/{sha}."""
    repo = repo_of(request)
    sha = request.match_info["sha"]
    data: bytes = _git(repo.git.get_blob, sha)
    return web.json_response(
        {
            "sha": sha,
            "node_id": node_id("Blob", int(sha[:7], 16)),
            "size": len(data),
            "url": f"{_api(core_of(request).world, repo)}/git/blobs/{sha}",
            "content": b64_lines(data),
            "encoding": "base64",
        }
    )


@routes.post(R + "/trees")
async def create_tree(request: web.Request) -> web.Response:
    """POST git/trees (base_tree, inline content, sha: null deletes)."""
    repo = repo_of(request)
    body = await body_of(request)
    if "tree" not in body:
        invalid('Invalid request.\n\n"tree" wasn\'t supplied.')
    base = body.get("base_tree")
    sha = _git(repo.git.create_tree, body["tree"], base)
    return web.json_response(render_tree(core_of(request).world, repo, sha, False), status=201)


@routes.get(R + "/trees/{sha}")
async def get_tree(request: web.Request) -> web.Response:
    """GET git/trees/{sha or ref}[?recursive=1]."""
    repo = repo_of(request)
    wanted = request.match_info["sha"]
    sha = wanted
    commit = repo.resolve(wanted)
    if commit is not None:
        sha = repo.git.get_commit(commit).tree
    try:
        if repo.git.object_type(sha) != "tree":
            not_found()
    except GitError:
        not_found()
    recursive = request.query.get("recursive") not in (None, "", "0", "false")
    return web.json_response(render_tree(core_of(request).world, repo, sha, recursive))


@routes.post(R + "/commits")
async def create_commit(request: web.Request) -> web.Response:
    """POST git/commits (author/committer default to the app's bot, now)."""
    repo = repo_of(request)
    body = await body_of(request)
    for key in ("message", "tree"):
        if not isinstance(body.get(key), str):
            invalid(f'Invalid request.\n\n"{key}" wasn\'t supplied.')
    parents = body.get("parents", [])
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        invalid("Invalid request.\n\nFor 'properties/parents', it is not an array of strings.")
    bot = actor(request).user
    default = Signature(bot.login, f"{bot.id}+{bot.login}@users.noreply.github.com", now_iso())
    author = _signature(body.get("author"), default, "author")
    committer = _signature(body.get("committer"), author, "committer")
    sha = _git(repo.git.put_commit, body["tree"], parents, body["message"], author, committer)
    return web.json_response(render_commit(core_of(request).world, repo, sha), status=201)


@routes.get(R + "/commits/{sha}")
async def get_commit(request: web.Request) -> web.Response:
    """GET git/commits/{sha}."""
    repo = repo_of(request)
    sha = request.match_info["sha"]
    _git(repo.git.get_commit, sha)
    return web.json_response(render_commit(core_of(request).world, repo, sha))


def _valid_ref_name(ref: str) -> bool:
    parts = ref.split("/")
    return (
        ref.startswith("refs/")
        and len(parts) >= 3
        and all(parts)
        and not any(bad in ref for bad in ("..", " ", "~", "^", ":", "\\", "?", "*", "["))
        and not ref.endswith((".lock", "."))
    )


@routes.post(R + "/refs")
async def create_ref(request: web.Request) -> web.Response:
    """POST git/refs: 422 when it exists, the name is bad or the object is missing."""
    repo = repo_of(request)
    body = await body_of(request)
    ref, sha = body.get("ref"), body.get("sha")
    if not isinstance(ref, str) or not isinstance(sha, str):
        invalid('Invalid request.\n\n"ref" and "sha" are required.')
    if not _valid_ref_name(ref):
        invalid("Reference name must start with 'refs/' and have at least two slashes.")
    if sha not in repo.git:
        invalid("Object does not exist")
    if ref in repo.refs:
        invalid("Reference already exists")
    core_of(request).set_ref(repo, ref, sha, actor(request).user)
    return web.json_response(render_ref(core_of(request).world, repo, ref), status=201)


@routes.get(R + "/ref/{ref:.+}")
async def get_ref(request: web.Request) -> web.Response:
    """GET git/ref/{ref} (exact match only)."""
    repo = repo_of(request)
    ref = "refs/" + request.match_info["ref"]
    if ref not in repo.refs:
        not_found()
    return web.json_response(render_ref(core_of(request).world, repo, ref))


@routes.get(R + "/refs/{ref:.+}")
async def get_refs_legacy(request: web.Request) -> web.Response:
    """GET git/refs/{ref}: the legacy read (exact match object, else prefix matches)."""
    repo = repo_of(request)
    ref = "refs/" + request.match_info["ref"]
    world = core_of(request).world
    if ref in repo.refs:
        return web.json_response(render_ref(world, repo, ref))
    matches = sorted(r for r in repo.refs if r.startswith(ref))
    if not matches:
        not_found()
    return web.json_response([render_ref(world, repo, r) for r in matches])


@routes.get(R + "/matching-refs/{ref:.*}")
async def matching_refs(request: web.Request) -> web.Response:
    """GET git/matching-refs/{prefix}."""
    repo = repo_of(request)
    prefix = "refs/" + request.match_info["ref"]
    world = core_of(request).world
    items = [render_ref(world, repo, r) for r in sorted(repo.refs) if r.startswith(prefix)]
    return paginate(request, items)


def _check_protected(repo: Repo, ref: str) -> None:
    if ref.startswith("refs/heads/") and ref.removeprefix("refs/heads/") in repo.protected:
        invalid(f"Protected branch update failed for {ref}.")


@routes.patch(R + "/refs/{ref:.+}")
async def update_ref(request: web.Request) -> web.Response:
    """PATCH git/refs/{ref}: fast-forward only unless force is true."""
    repo = repo_of(request)
    body = await body_of(request)
    ref = "refs/" + request.match_info["ref"]
    sha, force = body.get("sha"), body.get("force", False)
    if not isinstance(sha, str):
        invalid('Invalid request.\n\n"sha" wasn\'t supplied.')
    if ref not in repo.refs:
        invalid("Reference does not exist")
    if sha not in repo.git:
        invalid("Object does not exist")
    _check_protected(repo, ref)
    current = repo.refs[ref]
    if not force and sha != current:
        both_commits = all(repo.git.object_type(s) == "commit" for s in (current, sha))
        if not both_commits or not repo.git.is_ancestor(current, sha):
            invalid("Update is not a fast forward")
    core_of(request).set_ref(repo, ref, sha, actor(request).user)
    return web.json_response(render_ref(core_of(request).world, repo, ref))


@routes.delete(R + "/refs/{ref:.+}")
async def delete_ref(request: web.Request) -> web.Response:
    """DELETE git/refs/{ref}: 204, or 422 when it does not exist."""
    repo = repo_of(request)
    ref = "refs/" + request.match_info["ref"]
    if ref not in repo.refs:
        invalid("Reference does not exist")
    _check_protected(repo, ref)
    core_of(request).set_ref(repo, ref, None, actor(request).user)
    return web.Response(status=204)


def render_tag(world: World, repo: Repo, sha: str) -> dict[str, Any]:
    """git-tag."""
    tag = repo.git.get_tag(sha)
    api = _api(world, repo)
    return {
        "node_id": node_id("Tag", int(sha[:7], 16)),
        "sha": sha,
        "url": f"{api}/git/tags/{sha}",
        "tag": tag.tag,
        "message": tag.message,
        "tagger": {"name": tag.tagger.name, "email": tag.tagger.email, "date": tag.tagger.date},
        "object": {
            "type": tag.object_type,
            "sha": tag.object_sha,
            "url": f"{api}/git/{tag.object_type}s/{tag.object_sha}",
        },
        "verification": {**UNSIGNED, "verified_at": None},
    }


@routes.post(R + "/tags")
async def create_tag(request: web.Request) -> web.Response:
    """POST git/tags (the tag object; a tag ref is made separately, as on GitHub)."""
    repo = repo_of(request)
    body = await body_of(request)
    for key in ("tag", "message", "object", "type"):
        if not isinstance(body.get(key), str):
            invalid(f'Invalid request.\n\n"{key}" wasn\'t supplied.')
    bot = actor(request).user
    default = Signature(bot.login, f"{bot.id}+{bot.login}@users.noreply.github.com", now_iso())
    tagger = _signature(body.get("tagger"), default, "tagger")
    sha = _git(repo.git.put_tag, body["tag"], body["message"], body["object"], body["type"], tagger)
    return web.json_response(render_tag(core_of(request).world, repo, sha), status=201)


@routes.get(R + "/tags/{sha}")
async def get_tag(request: web.Request) -> web.Response:
    """GET git/tags/{sha}."""
    repo = repo_of(request)
    sha = request.match_info["sha"]
    _git(repo.git.get_tag, sha)
    return web.json_response(render_tag(core_of(request).world, repo, sha))


__all__ = ["ApiError", "b64_lines", "render_commit", "render_ref", "routes"]
