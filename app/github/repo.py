"""Repository reads the engine needs: default branch head, protection, files, permissions, issues.

Read-only by design: nothing here writes to GitHub (CI reads and re-runs are in `ci_status.py`).
Every function takes a gidgethub-style client and returns typed values; URL parts supplied by
callers go through URI templates, never f-strings.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import gidgethub

from app.github.commits import protected_branches as _protected_names

# GitHub's maximum page size: fewer round trips on every paginated read.
PER_PAGE = 100
# The contents API inlines files up to 1 MB; larger ones come without content.
CONTENTS_INLINE_LIMIT = 1024 * 1024


class GitHubClient(Protocol):
    """What the edge modules need of a client (gidgethub's `GitHubAPI` satisfies it)."""

    base_url: str

    async def getitem(self, url: str, url_vars: Mapping[str, Any] | None = ...) -> Any: ...

    def getiter(
        self,
        url: str,
        url_vars: Mapping[str, Any] | None = ...,
        *,
        iterable_key: str | None = ...,
    ) -> AsyncGenerator[Any, None]: ...

    async def post(
        self,
        url: str,
        url_vars: Mapping[str, Any] | None = ...,
        *,
        data: Any,
        extra_headers: dict[str, str] | None = ...,
    ) -> Any: ...

    async def patch(
        self, url: str, url_vars: Mapping[str, Any] | None = ..., *, data: Any
    ) -> Any: ...

    async def delete(self, url: str, url_vars: Mapping[str, Any] | None = ...) -> None: ...

    async def graphql(self, query: str, *, endpoint: str = ..., **variables: Any) -> Any: ...

    async def sleep(self, seconds: float) -> None: ...


class RepositoryEmpty(Exception):
    """The repository has no commits (its default branch does not exist yet)."""


class NotAFile(Exception):
    """The path names a directory, symlink or submodule, not a regular file."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path!r} is a {kind}, not a file")
        self.path = path
        self.kind = kind


class FileTooLarge(Exception):
    """The file is larger than the caller allows; it was not decoded."""

    def __init__(self, path: str, size: int, max_bytes: int) -> None:
        super().__init__(f"{path!r} is {size} bytes, over the limit of {max_bytes}")
        self.path = path
        self.size = size
        self.max_bytes = max_bytes


class DefaultHead(NamedTuple):
    """The default branch and the commit it points at (unpacks as `(branch, sha)`)."""

    branch: str
    sha: str


@dataclass(frozen=True)
class IssueView:
    """What the engine needs of an issue (or a pull request seen through the issues API)."""

    number: int
    title: str
    body: str
    state: str
    labels: tuple[str, ...]
    is_pull_request: bool


def repo_vars(repo: str) -> dict[str, str]:
    """`owner/name` as URI template variables; ValueError for anything else."""
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise ValueError(f"{repo!r} is not owner/name")
    return {"owner": owner, "repo": name}


def is_status(exc: gidgethub.HTTPException, *statuses: int) -> bool:
    """True when a gidgethub error carries one of the given HTTP statuses."""
    return int(exc.status_code) in statuses


async def default_branch_head(gh: GitHubClient, repo: str) -> DefaultHead:
    """The default branch's name and head commit (two calls)."""
    variables = repo_vars(repo)
    data = await gh.getitem("/repos/{owner}/{repo}", variables)
    branch = str(data["default_branch"])
    try:
        ref = await gh.getitem(
            "/repos/{owner}/{repo}/git/ref/heads/{+branch}", {**variables, "branch": branch}
        )
    except gidgethub.HTTPException as exc:
        # GitHub answers 409 "Git Repository is empty"; a missing branch is 404.
        if is_status(exc, 404, 409):
            raise RepositoryEmpty(f"{repo} has no commits on {branch!r}") from exc
        raise
    return DefaultHead(branch, str(ref["object"]["sha"]))


async def protected_branches(gh: GitHubClient, repo: str) -> frozenset[str]:
    """Names of the repository's protected branches (all pages)."""
    listing = [
        branch
        async for branch in gh.getiter(
            "/repos/{owner}/{repo}/branches{?protected,per_page}",
            {**repo_vars(repo), "protected": "true", "per_page": PER_PAGE},
        )
    ]
    return _protected_names(listing)


async def read_file(
    gh: GitHubClient, repo: str, path: str, ref: str, max_bytes: int
) -> bytes | None:
    """A file's bytes at `ref`; None when absent; FileTooLarge/NotAFile otherwise."""
    clean = path.strip("/")
    if not clean or any(part in ("", ".", "..") for part in clean.split("/")):
        raise ValueError(f"{path!r} is not a repository file path")
    try:
        data = await gh.getitem(
            "/repos/{owner}/{repo}/contents/{+path}{?ref}",
            {**repo_vars(repo), "path": clean, "ref": ref},
        )
    except gidgethub.HTTPException as exc:
        if is_status(exc, 404):
            return None
        raise
    if isinstance(data, list):
        raise NotAFile(clean, "directory")
    kind = str(data.get("type"))
    if kind != "file":
        raise NotAFile(clean, kind)
    size = int(data.get("size", 0))
    if size > max_bytes:
        raise FileTooLarge(clean, size, max_bytes)
    if data.get("encoding") != "base64":
        # GitHub leaves `content` empty (encoding "none") for files over 1 MB.
        raise FileTooLarge(clean, size, CONTENTS_INLINE_LIMIT)
    try:
        content = base64.b64decode(str(data.get("content", "")))
    except binascii.Error as exc:
        raise ValueError(f"{clean!r}: GitHub sent undecodable content") from exc
    if len(content) > max_bytes:
        raise FileTooLarge(clean, len(content), max_bytes)
    return content


async def sender_permission(gh: GitHubClient, repo: str, login: str) -> str:
    """The sender's permission (admin, write, read or none; maintain reads as write)."""
    try:
        data = await gh.getitem(
            "/repos/{owner}/{repo}/collaborators/{login}/permission",
            {**repo_vars(repo), "login": login},
        )
    except gidgethub.HTTPException as exc:
        if is_status(exc, 404):
            return "none"
        raise
    return str(data.get("permission") or "none")


async def get_issue(gh: GitHubClient, repo: str, number: int) -> IssueView:
    """An issue's title, body, state and label names."""
    data = await gh.getitem(
        "/repos/{owner}/{repo}/issues/{number}", {**repo_vars(repo), "number": number}
    )
    return IssueView(
        number=int(data["number"]),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        state=str(data["state"]),
        labels=tuple(str(label["name"]) for label in data.get("labels", [])),
        is_pull_request=data.get("pull_request") is not None,
    )
