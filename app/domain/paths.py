"""Repository paths: gitignore-like glob matching, and paths made safe to show or to key on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from fnmatch import fnmatchcase

MAX_SHOWN_PATH = 200


def glob_match(pattern: str, path: str) -> bool:
    """Gitignore-like match of a repository path against a glob (see the rules below).

    A pattern without a '/' (other than a trailing one) matches at any depth; otherwise it is
    anchored at the root. `**` as a whole component matches zero or more directories, a
    trailing `/**` everything inside a directory; `*`, `?` and `[...]` never cross a '/'. A
    pattern that matches a directory matches everything under it; a trailing '/' matches
    directories only. Matching is case-sensitive, as git is.
    """
    dir_only = pattern.endswith("/")
    body = pattern.rstrip("/")
    anchored = "/" in body
    parts = body.lstrip("/").split("/")
    if len(parts) > 1 and parts[-1] == "**":
        parts.pop()
        dir_only = True
    if not anchored:
        parts.insert(0, "**")
    names = path.split("/")
    states = _closure({0}, parts)
    for depth, name in enumerate(names, start=1):
        states = _closure(_step(states, parts, name), parts)
        if not states:
            return False
        if len(parts) in states and (depth < len(names) or not dir_only):
            return True
    return False


def matches_any(globs: Sequence[str], path: str) -> str | None:
    """The first of `globs` that `path` matches, or None."""
    return next((glob for glob in globs if glob_match(glob, path)), None)


def _step(states: set[int], parts: Sequence[str], name: str) -> set[int]:
    following: set[int] = set()
    for index in states:
        if index == len(parts):
            continue
        if parts[index] == "**":
            following.add(index)
        elif fnmatchcase(name, parts[index]):
            following.add(index + 1)
    return following


def _closure(states: set[int], parts: Sequence[str]) -> set[int]:
    result = set(states)
    for index in sorted(states):
        while index < len(parts) and parts[index] == "**":
            index += 1
            result.add(index)
    return result


def show_path(path: str) -> str:
    """A path made safe for evidence and logs: control characters escaped, length capped."""
    shown = _printable(path)
    if len(shown) > MAX_SHOWN_PATH:
        shown = shown[:MAX_SHOWN_PATH] + "…"
    return shown


def key_path(path: str) -> str:
    """A path for an issue_key: stable, printable and bounded (long ones end in a digest)."""
    shown = _printable(path)
    if len(shown) <= MAX_SHOWN_PATH:
        return shown
    digest = hashlib.sha256(path.encode("utf-8", errors="surrogatepass")).hexdigest()[:12]
    return f"{shown[:MAX_SHOWN_PATH]}…{digest}"


def _printable(path: str) -> str:
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in path)
