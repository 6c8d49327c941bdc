"""Git object values and their byte encoding, hashed exactly as git hashes them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "MODE_TYPES",
    "SUBMODULE_MODE",
    "SYMLINK_MODE",
    "TREE_MODE",
    "Commit",
    "GitError",
    "InvalidObject",
    "ObjectNotFound",
    "Signature",
    "Tag",
    "TreeEntry",
    "decode_commit",
    "decode_tag",
    "decode_tree",
    "encode_commit",
    "encode_tag",
    "encode_tree",
    "git_date",
    "hash_object",
    "is_sha",
    "iso_date",
    "valid_name",
]


class GitError(Exception):
    """A git data failure; str(error) is the message GitHub would answer with."""


class ObjectNotFound(GitError):
    """The object does not exist (or is not of the type asked for): HTTP 404."""


class InvalidObject(GitError):
    """The request would build an invalid object: HTTP 422."""


@dataclass(frozen=True)
class Signature:
    """Author, committer or tagger: name, email and an ISO 8601 date with timezone."""

    name: str
    email: str
    date: str


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree object; ``path`` is a single name, ``mode`` as GitHub spells it."""

    path: str
    mode: str
    type: str
    sha: str


@dataclass(frozen=True)
class Commit:
    """A decoded commit object."""

    sha: str
    tree: str
    parents: tuple[str, ...]
    author: Signature
    committer: Signature
    message: str


@dataclass(frozen=True)
class Tag:
    """A decoded annotated tag object."""

    sha: str
    tag: str
    message: str
    object_sha: str
    object_type: str
    tagger: Signature


TREE_MODE = "040000"
SYMLINK_MODE = "120000"
SUBMODULE_MODE = "160000"
# GitHub's five tree modes and the object type each one points at.
MODE_TYPES: dict[str, str] = {
    "100644": "blob",
    "100755": "blob",
    SYMLINK_MODE: "blob",
    TREE_MODE: "tree",
    SUBMODULE_MODE: "commit",
}

_SHA_RE = re.compile(r"[0-9a-f]{40}")
_IDENT_RE = re.compile(rb"^(.*?) ?<([^<>\n]*)> (-?\d+) ([+-])(\d\d)(\d\d)$")


def is_sha(value: object) -> bool:
    """True for a full lowercase 40-hex object id."""
    return isinstance(value, str) and _SHA_RE.fullmatch(value) is not None


def valid_name(name: object) -> bool:
    """True for a name git accepts as one tree entry (no slash, not ., .., .git)."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and name.casefold() != ".git"
        and "/" not in name
        and "\0" not in name
    )


def hash_object(obj_type: str, body: bytes) -> str:
    """The object id git gives ``body`` stored as ``obj_type``."""
    header = f"{obj_type} {len(body)}\0".encode()
    return hashlib.sha1(header + body, usedforsecurity=False).hexdigest()


def git_date(iso: str) -> tuple[int, str]:
    """ISO 8601 date -> (unix seconds, "+hhmm"); a date without timezone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        raise InvalidObject(f"{iso!r} is not a valid date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    seconds = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    return seconds, f"{sign}{hours:02d}{mins:02d}"


def iso_date(seconds: int, tz: str) -> str:
    """(unix seconds, "+hhmm") -> ISO 8601, "Z" for a zero offset (how GitHub prints dates)."""
    minutes = int(tz[1:3]) * 60 + int(tz[3:5])
    if tz.startswith("-"):
        minutes = -minutes
    moment = datetime.fromtimestamp(seconds, timezone(timedelta(minutes=minutes)))
    text = moment.isoformat()
    return text[:-6] + "Z" if minutes == 0 else text


def _encode_ident(role: str, sig: Signature) -> bytes:
    for value in (sig.name, sig.email):
        if not isinstance(value, str) or any(c in value for c in "<>\n\0"):
            raise InvalidObject(f"{role}.name and {role}.email must not contain <, > or newlines")
    seconds, tz = git_date(sig.date)
    return f"{role} {sig.name} <{sig.email}> {seconds} {tz}\n".encode()


def _decode_ident(value: bytes) -> Signature:
    match = _IDENT_RE.match(value)
    if match is None:
        raise InvalidObject(f"malformed identity {value!r}")
    name, email, seconds, sign, hh, mm = match.groups()
    tz = (sign + hh + mm).decode()
    return Signature(
        name.decode(errors="replace"), email.decode(errors="replace"), iso_date(int(seconds), tz)
    )


def _tree_sort_key(entry: TreeEntry) -> bytes:
    # git compares names as if every subtree name ended with "/".
    name = entry.path.encode()
    return name + b"/" if entry.mode == TREE_MODE else name


def encode_tree(entries: Iterable[TreeEntry]) -> bytes:
    """Tree body in git's order; the tree mode is written "40000" inside the object."""
    parts = []
    for entry in sorted(entries, key=_tree_sort_key):
        mode = entry.mode.lstrip("0")
        parts.append(f"{mode} {entry.path}".encode() + b"\0" + bytes.fromhex(entry.sha))
    return b"".join(parts)


def decode_tree(body: bytes) -> list[TreeEntry]:
    """Tree body -> entries, modes spelled as GitHub reports them ("040000")."""
    entries: list[TreeEntry] = []
    pos = 0
    while pos < len(body):
        space = body.index(b" ", pos)
        nul = body.index(b"\0", space)
        mode = body[pos:space].decode().rjust(6, "0")
        name = body[space + 1 : nul].decode(errors="surrogateescape")
        sha = body[nul + 1 : nul + 21].hex()
        entries.append(TreeEntry(name, mode, MODE_TYPES.get(mode, "blob"), sha))
        pos = nul + 21
    return entries


def encode_commit(
    tree: str, parents: Iterable[str], author: Signature, committer: Signature, message: str
) -> bytes:
    """Commit body exactly as git writes it (message kept byte for byte)."""
    head = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
    return (
        head.encode()
        + _encode_ident("author", author)
        + _encode_ident("committer", committer)
        + b"\n"
        + message.encode()
    )


def _split_headers(body: bytes) -> tuple[dict[bytes, list[bytes]], str]:
    head, _, message = body.partition(b"\n\n")
    headers: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\n"):
        if line.startswith(b" "):
            continue  # continuation of a multi-line header such as gpgsig
        key, _, value = line.partition(b" ")
        headers.setdefault(key, []).append(value)
    return headers, message.decode(errors="replace")


def decode_commit(sha: str, body: bytes) -> Commit:
    """Commit body -> Commit; dates come back in ISO 8601 with the stored offset."""
    headers, message = _split_headers(body)
    return Commit(
        sha=sha,
        tree=headers[b"tree"][0].decode(),
        parents=tuple(p.decode() for p in headers.get(b"parent", [])),
        author=_decode_ident(headers[b"author"][0]),
        committer=_decode_ident(headers[b"committer"][0]),
        message=message,
    )


def encode_tag(
    tag: str, message: str, object_sha: str, object_type: str, tagger: Signature
) -> bytes:
    """Annotated tag body exactly as git writes it."""
    head = f"object {object_sha}\ntype {object_type}\ntag {tag}\n".encode()
    return head + _encode_ident("tagger", tagger) + b"\n" + message.encode()


def decode_tag(sha: str, body: bytes) -> Tag:
    """Tag body -> Tag."""
    headers, message = _split_headers(body)
    return Tag(
        sha=sha,
        tag=headers[b"tag"][0].decode(errors="replace"),
        message=message,
        object_sha=headers[b"object"][0].decode(),
        object_type=headers[b"type"][0].decode(),
        tagger=_decode_ident(headers[b"tagger"][0]),
    )
