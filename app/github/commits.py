"""The governed write path: the only code that writes git refs, and only integration refs.

Whatever a caller asks, a ref outside the integration prefix, the default branch and any
protected branch are refused before a request is made. A change lands with the fewest calls
GitHub allows (one tree on `base_tree`, one commit, one ref update with `force: false`), and
every commit carries trailers so a retried push finds the commit that already landed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import gidgethub

from app.domain.change import Change, ChangeKind, EntryType

TRAILER_RUN = "Autopack-Run"
TRAILER_PHASE = "Autopack-Phase"
TRAILER_ATTEMPT = "Autopack-Attempt"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class GitHubWriter(Protocol):
    """What the write path needs of a GitHub client (gidgethub's `GitHubAPI` satisfies it)."""

    async def getitem(self, url: str, url_vars: dict[str, str] | None = ...) -> Any: ...

    async def post(self, url: str, url_vars: dict[str, str] | None = ..., *, data: Any) -> Any: ...

    async def patch(self, url: str, url_vars: dict[str, str] | None = ..., *, data: Any) -> Any: ...


class RefRefused(Exception):
    """The write path will not touch this ref, whoever asks."""


class BranchMoved(Exception):
    """The branch is not where the caller expected: someone else moved it. Never forced."""

    def __init__(self, branch: str, expected: str, actual: str | None) -> None:
        super().__init__(
            f"branch {branch!r} moved: expected {expected[:12]}, found "
            f"{actual[:12] if actual else 'no branch'}; refusing to force"
        )
        self.branch = branch
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class RefPolicy:
    """Which refs may be written: integration branches and snapshot tags, nothing else."""

    default_branch: str
    prefix: str = "autopack/"
    protected: frozenset[str] = frozenset()
    tag_prefix: str = "autopack/"

    def check(self, ref: str) -> str:
        """Return the full ref name (`refs/...`) if writable, else raise RefRefused."""
        full = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
        if any(part in ("", ".", "..") for part in full.split("/")) or any(
            bad in full for bad in (" ", "~", "^", ":", "\\", "?", "*", "[", "@{")
        ):
            raise RefRefused(f"{ref!r} is not a valid ref name")
        if full.startswith("refs/heads/"):
            branch = full.removeprefix("refs/heads/")
            if branch == self.default_branch:
                raise RefRefused(f"{branch!r} is the default branch; Autopack never writes it")
            if branch in self.protected:
                raise RefRefused(f"{branch!r} is a protected branch")
            if not branch.startswith(self.prefix):
                raise RefRefused(f"{branch!r} is outside the integration prefix {self.prefix!r}")
            return full
        if full.startswith("refs/tags/") and full.removeprefix("refs/tags/").startswith(
            self.tag_prefix
        ):
            return full
        raise RefRefused(f"{ref!r} is neither an integration branch nor a snapshot tag")


@dataclass(frozen=True)
class Attempt:
    """Identifies one phase attempt; written as commit trailers."""

    run_id: str
    phase_id: str
    attempt: int

    def __post_init__(self) -> None:
        for value in (self.run_id, self.phase_id):
            if not _SAFE_ID.match(value):
                raise ValueError(f"{value!r} is not a safe identifier for a trailer or ref")
        if self.attempt < 1:
            raise ValueError("attempt numbers start at 1")

    def trailers(self) -> str:
        """The trailer block appended to the commit message."""
        return (
            f"{TRAILER_RUN}: {self.run_id}\n"
            f"{TRAILER_PHASE}: {self.phase_id}\n"
            f"{TRAILER_ATTEMPT}: {self.attempt}"
        )

    def matches(self, message: str) -> bool:
        """True when a commit message carries exactly this attempt's trailers."""
        return parse_trailers(message) == {
            TRAILER_RUN: self.run_id,
            TRAILER_PHASE: self.phase_id,
            TRAILER_ATTEMPT: str(self.attempt),
        }


def parse_trailers(message: str) -> dict[str, str]:
    """Autopack's trailers from the last paragraph of a commit message."""
    paragraph = message.strip().split("\n\n")[-1]
    found = {}
    for line in paragraph.splitlines():
        key, _, value = line.partition(": ")
        if key in (TRAILER_RUN, TRAILER_PHASE, TRAILER_ATTEMPT):
            found[key] = value.strip()
    return found


@dataclass(frozen=True)
class BranchHead:
    """A branch's head commit and its tree (the `base_tree` of the next push)."""

    commit_sha: str
    tree_sha: str


@dataclass(frozen=True)
class PushResult:
    """Where a push ended: the commit on the branch; `created` is False when the branch already
    held this attempt's commit (found by its trailers after a non-fast-forward answer)."""

    commit_sha: str
    tree_sha: str
    created: bool


def tree_items(change: Change) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Tree entries for a change: inline text, `sha: None` deletes; binary contents to upload."""
    items: list[dict[str, Any]] = []
    binaries: list[bytes] = []
    for file in change.files:
        if file.entry_type is EntryType.SUBMODULE:
            raise ValueError(f"{file.path}: submodules are never pushed by Autopack")
        item: dict[str, Any] = {"path": file.path, "mode": file.entry_type.git_mode, "type": "blob"}
        if file.kind is ChangeKind.DELETED:
            item["sha"] = None
        else:
            content = file.content or b""
            try:
                item["content"] = content.decode("utf-8")
            except UnicodeDecodeError:
                binaries.append(content)
                item["sha"] = len(binaries) - 1  # replaced by the uploaded blob's sha
        items.append(item)
    return items, binaries


class GovernedWriter:
    """Writes integration branches and snapshot tags of one repository, nothing else."""

    def __init__(self, gh: GitHubWriter, repository: str, policy: RefPolicy) -> None:
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise ValueError(f"{repository!r} is not owner/name")
        self._gh = gh
        self._repo = f"/repos/{owner}/{name}"
        self._policy = policy

    async def branch_head(self, branch: str) -> BranchHead | None:
        """Where an integration branch points (commit and tree), or None if it does not exist."""
        ref = self._policy.check(branch)
        head = await self._head(ref)
        if head is None:
            return None
        commit = await self._gh.getitem(f"{self._repo}/git/commits/{head}")
        return BranchHead(commit_sha=head, tree_sha=commit["tree"]["sha"])

    async def create_branch(self, branch: str, from_sha: str) -> None:
        """Create an integration branch at `from_sha`; already there at that sha is fine."""
        ref = self._policy.check(branch)
        await self._create_ref(ref, from_sha)

    async def snapshot(self, run_id: str, phase_id: str, commit_sha: str) -> str:
        """Tag a green phase as `refs/tags/autopack/<run>/<phase>`; idempotent."""
        Attempt(run_id, phase_id, 1)  # validates both ids
        ref = self._policy.check(f"refs/tags/{self._policy.tag_prefix}{run_id}/{phase_id}")
        await self._create_ref(ref, commit_sha)
        return ref

    async def push(
        self,
        branch: str,
        change: Change,
        *,
        expected_head: str,
        base_tree: str,
        message: str,
        attempt: Attempt,
    ) -> PushResult:
        """Commit `change` on `branch`, whose head must be `expected_head` (tree `base_tree`).

        Three calls for a text-only change. A non-fast-forward answer means the branch moved:
        if its head is this very attempt's commit (a retry after a crash), that commit is the
        result; otherwise BranchMoved is raised and nothing is forced.
        """
        ref = self._policy.check(branch)
        if change.empty:
            # A retry after a crash that came after the push: the workspace already has the
            # pushed tree as its base, so nothing is left to commit. The branch says whether
            # this attempt's commit landed.
            landed, _ = await self._landed(ref, expected_head, attempt)
            if landed is not None:
                return landed
            raise ValueError("an empty change is never committed")
        items, binaries = tree_items(change)
        for item in items:
            if isinstance(item.get("sha"), int):
                item["sha"] = await self._upload_blob(binaries[item["sha"]])
        tree = await self._gh.post(
            f"{self._repo}/git/trees", data={"base_tree": base_tree, "tree": items}
        )
        full_message = f"{message.strip()}\n\n{attempt.trailers()}\n"
        commit = await self._gh.post(
            f"{self._repo}/git/commits",
            data={"message": full_message, "tree": tree["sha"], "parents": [expected_head]},
        )
        try:
            await self._gh.patch(
                f"{self._repo}/git/{ref}", data={"sha": commit["sha"], "force": False}
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code != 422:
                raise
            return await self._already_landed(branch, ref, expected_head, attempt)
        return PushResult(commit_sha=commit["sha"], tree_sha=tree["sha"], created=True)

    async def _already_landed(
        self, branch: str, ref: str, expected_head: str, attempt: Attempt
    ) -> PushResult:
        landed, head = await self._landed(ref, expected_head, attempt)
        if landed is None:
            raise BranchMoved(branch, expected_head, head)
        return landed

    async def landed(self, branch: str, expected_head: str, attempt: Attempt) -> PushResult | None:
        """This attempt's commit on top of `expected_head`, if it is the branch's head."""
        found, _ = await self._landed(self._policy.check(branch), expected_head, attempt)
        return found

    async def _landed(
        self, ref: str, expected_head: str, attempt: Attempt
    ) -> tuple[PushResult | None, str | None]:
        """The branch head, with the result when it is this attempt's commit on `expected_head`."""
        head = await self._head(ref)
        if head is not None:
            commit = await self._gh.getitem(f"{self._repo}/git/commits/{head}")
            parents = [parent["sha"] for parent in commit["parents"]]
            if parents == [expected_head] and attempt.matches(commit["message"]):
                result = PushResult(commit_sha=head, tree_sha=commit["tree"]["sha"], created=False)
                return result, head
        return None, head

    async def _head(self, ref: str) -> str | None:
        try:
            found = await self._gh.getitem(f"{self._repo}/git/ref/{ref.removeprefix('refs/')}")
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            raise
        sha: str = found["object"]["sha"]
        return sha

    async def _create_ref(self, ref: str, sha: str) -> None:
        try:
            await self._gh.post(f"{self._repo}/git/refs", data={"ref": ref, "sha": sha})
        except gidgethub.BadRequest as exc:
            if exc.status_code != 422:
                raise
            current = await self._head(ref)
            if current != sha:
                raise BranchMoved(ref, sha, current) from exc

    async def _upload_blob(self, content: bytes) -> str:
        blob = await self._gh.post(
            f"{self._repo}/git/blobs",
            data={"content": base64.b64encode(content).decode(), "encoding": "base64"},
        )
        sha: str = blob["sha"]
        return sha


def protected_branches(branches: Iterable[dict[str, Any]]) -> frozenset[str]:
    """Names of protected branches from a `GET /repos/{o}/{r}/branches` listing."""
    return frozenset(branch["name"] for branch in branches if branch.get("protected"))
