"""Repository reads: the repository, branches, contents, commits, tarballs, permissions."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from tests.fakegithub import render
from tests.fakegithub.respond import ApiError, core_of, not_found, paginate, repo_of
from tests.fakegithub.routes_git import b64_lines
from tests.fakegithub.state import Repo, World, node_id

routes = web.RouteTableDef()
R = "/repos/{owner}/{repo}"
# GitHub's permission API reports the five roles on the old three-level scale.
LEGACY_PERMISSION = {
    "admin": "admin",
    "maintain": "write",
    "write": "write",
    "triage": "read",
    "read": "read",
    "none": "none",
}


@routes.get(R)
async def get_repo(request: web.Request) -> web.Response:
    """GET /repos/{o}/{r}."""
    return web.json_response(render.repo(core_of(request).world, repo_of(request)))


def render_commit(world: World, repo: Repo, sha: str) -> dict[str, Any]:
    """commit (the repos/commits shape: git commit wrapped with GitHub users)."""
    commit = repo.git.get_commit(sha)
    api = f"{world.api_url}/repos/{repo.full_name}"
    html = f"{render.HTML}/{repo.full_name}/commit/{sha}"

    def who(email: str) -> dict[str, Any] | None:
        login = email.split("+", 1)[-1].split("@", 1)[0] if "noreply" in email else ""
        found = world.find_user(login) if login else None
        return render.user(world, found) if found else None

    def sig(name: str, email: str, date: str) -> dict[str, str]:
        return {"name": name, "email": email, "date": date}

    a, c = commit.author, commit.committer
    return {
        "sha": sha,
        "node_id": node_id("Commit", int(sha[:7], 16)),
        "url": f"{api}/commits/{sha}",
        "html_url": html,
        "comments_url": f"{api}/commits/{sha}/comments",
        "commit": {
            "url": f"{api}/git/commits/{sha}",
            "author": sig(a.name, a.email, a.date),
            "committer": sig(c.name, c.email, c.date),
            "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{api}/git/trees/{commit.tree}"},
            "comment_count": 0,
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": who(a.email),
        "committer": who(c.email),
        "parents": [
            {
                "sha": p,
                "url": f"{api}/commits/{p}",
                "html_url": f"{render.HTML}/{repo.full_name}/commit/{p}",
            }
            for p in commit.parents
        ],
    }


def _branches(repo: Repo) -> list[tuple[str, str]]:
    return sorted(
        (ref.removeprefix("refs/heads/"), sha)
        for ref, sha in repo.refs.items()
        if ref.startswith("refs/heads/")
    )


@routes.get(R + "/branches")
async def list_branches(request: web.Request) -> web.Response:
    """GET branches (?protected=true filters)."""
    repo = repo_of(request)
    world = core_of(request).world
    api = f"{world.api_url}/repos/{repo.full_name}"
    only = request.query.get("protected")
    items = []
    for name, sha in _branches(repo):
        protected = name in repo.protected
        if only is not None and (only == "true") != protected:
            continue
        items.append(
            {
                "name": name,
                "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
                "protected": protected,
                "protection_url": f"{api}/branches/{name}/protection",
            }
        )
    return paginate(request, items)


@routes.get(R + "/branches/{branch:.+}")
async def get_branch(request: web.Request) -> web.Response:
    """GET branches/{branch}."""
    repo = repo_of(request)
    world = core_of(request).world
    name = request.match_info["branch"]
    sha = repo.refs.get(f"refs/heads/{name}")
    if sha is None:
        raise ApiError(404, "Branch not found")
    api = f"{world.api_url}/repos/{repo.full_name}"
    protected = name in repo.protected
    return web.json_response(
        {
            "name": name,
            "commit": render_commit(world, repo, sha),
            "_links": {
                "self": f"{api}/branches/{name}",
                "html": f"{render.HTML}/{repo.full_name}/tree/{name}",
            },
            "protected": protected,
            "protection": {
                "enabled": protected,
                "required_status_checks": {
                    "enforcement_level": "non_admins" if protected else "off",
                    "contexts": [],
                    "checks": [],
                },
            },
            "protection_url": f"{api}/branches/{name}/protection",
        }
    )


def _content_entry(
    world: World, repo: Repo, ref: str, path: str, kind: str, sha: str, size: int
) -> dict[str, Any]:
    api = f"{world.api_url}/repos/{repo.full_name}"
    self_url = f"{api}/contents/{path}?ref={ref}"
    git_url = f"{api}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html = f"{render.HTML}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    download = (
        f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}"
        if kind == "file"
        else None
    )
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": self_url,
        "git_url": git_url,
        "html_url": html,
        "download_url": download,
        "_links": {"self": self_url, "git": git_url, "html": html},
    }


@routes.get(R + "/contents")
@routes.get(R + "/contents/{path:.*}")
async def get_contents(request: web.Request) -> web.Response:
    """GET contents/{path}?ref=: a base64 file or a directory listing; 404 when absent."""
    repo = repo_of(request)
    world = core_of(request).world
    ref = request.query.get("ref") or repo.default_branch
    commit = repo.resolve(ref)
    if commit is None:
        raise ApiError(404, f"No commit found for the ref {ref}")
    path = request.match_info.get("path", "").strip("/")
    tree = repo.git.get_commit(commit).tree
    entries = {p: e for p, e in repo.git.read_tree_recursive(tree)}
    if path and path not in entries:
        not_found()
    if path and entries[path].type == "blob":
        entry = entries[path]
        data = repo.git.get_blob(entry.sha)
        body = _content_entry(world, repo, ref, path, "file", entry.sha, len(data))
        body.update({"content": b64_lines(data), "encoding": "base64"})
        return web.json_response(body)
    folder_sha = tree if not path else entries[path].sha
    listing = []
    for entry in repo.git.get_tree(folder_sha):
        full = f"{path}/{entry.path}" if path else entry.path
        kind = {"blob": "file", "tree": "dir", "commit": "submodule"}[entry.type]
        size = len(repo.git.get_blob(entry.sha)) if entry.type == "blob" else 0
        listing.append(_content_entry(world, repo, ref, full, kind, entry.sha, size))
    return web.json_response(listing)


@routes.get(R + "/commits/{ref:[^/]+}")
async def get_commit(request: web.Request) -> web.Response:
    """GET commits/{ref} (without stats and files)."""
    repo = repo_of(request)
    ref = request.match_info["ref"]
    sha = repo.resolve(ref)
    if sha is None:
        raise ApiError(422, f"No commit found for SHA: {ref}")
    return web.json_response(render_commit(core_of(request).world, repo, sha))


@routes.get(R + "/tarball")
@routes.get(R + "/tarball/{ref:.*}")
async def tarball(request: web.Request) -> web.Response:
    """GET tarball/{ref}: 302 to a one-off download URL on this server."""
    repo = repo_of(request)
    core = core_of(request)
    ref = request.match_info.get("ref") or repo.default_branch
    sha = repo.resolve(ref)
    if sha is None:
        not_found()
    token = secrets.token_urlsafe(16)
    core.world.downloads[token] = (repo.full_name, sha)
    location = f"{core.world.api_url}/_codeload/{repo.full_name}/legacy.tar.gz/{sha}?token={token}"
    return web.Response(status=302, headers={"Location": location})


@routes.get("/_codeload/{owner}/{repo}/legacy.tar.gz/{sha}")
async def codeload(request: web.Request) -> web.Response:
    """The download behind the tarball redirect: gzip tar, top folder owner-repo-sha7."""
    world = core_of(request).world
    wanted = world.downloads.get(request.query.get("token", ""))
    owner, name, sha = (request.match_info[k] for k in ("owner", "repo", "sha"))
    if wanted is None or wanted != (f"{owner}/{name}", sha):
        raise ApiError(404, "Not Found")
    repo = world.get_repo(owner, name)
    assert repo is not None
    folder = f"{repo.owner.login}-{repo.name}-{sha[:7]}"
    data = repo.git.tarball(sha, folder)
    headers = {
        "Content-Type": "application/x-gzip",
        "Content-Disposition": f"attachment; filename={folder}.tar.gz",
    }
    return web.Response(body=data, headers=headers)


@routes.get(R + "/collaborators/{username}/permission")
async def permission(request: web.Request) -> web.Response:
    """GET collaborators/{user}/permission: maintain reads as write, triage as read."""
    repo = repo_of(request)
    world = core_of(request).world
    login = request.match_info["username"]
    found = world.find_user(login)
    if found is None or found.type == "Organization":
        raise ApiError(404, f"{login} is not a user")
    if found.login.lower() == repo.owner.login.lower():
        role = "admin"
    else:
        role = repo.permissions.get(login.lower(), "none" if repo.private else "read")
    user = render.user(world, found)
    legacy = LEGACY_PERMISSION[role]
    user["permissions"] = {
        "admin": role == "admin",
        "maintain": role in ("admin", "maintain"),
        "push": legacy in ("admin", "write"),
        "triage": role in ("admin", "maintain", "write", "triage"),
        "pull": role != "none",
    }
    user["role_name"] = role
    return web.json_response({"permission": legacy, "role_name": role, "user": user})
