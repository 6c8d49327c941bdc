"""Query and path parameters of the API and the dashboard, checked strictly in one place.

A bad value is a `BadParameter` naming the parameter; the API answers it with a JSON 400 and the
dashboard with a 400 page. Values reach the read model only as what they claim to be (a number of
ASCII digits, an `owner/name`, a cursor this server handed out), never as text the database might
choke on (a NUL, a date out of range).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime

from multidict import MultiMapping

from app.web.readmodel import STATUS_FILTERS, BadCursor, decode_cursor

# GitHub's rules: owners are alphanumerics and single hyphens; names also allow `.` and `_`.
OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")
NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")
NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit also takes "²"
# Cursors are URL-safe base64 without padding (app/web/readmodel.encode_cursor).
CURSOR = re.compile(r"[A-Za-z0-9_-]{1,512}")


class BadParameter(Exception):
    """A query or path parameter with a value the API does not accept."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


def check_names(query: MultiMapping[str], allowed: Collection[str]) -> None:
    """Refuse a parameter the page does not take (a misspelt filter must not list everything)
    and one given more than once."""
    for name in query:
        if name not in allowed:
            raise BadParameter(name[:100], "unknown query parameter")
        if len(query.getall(name)) > 1:
            raise BadParameter(name, "given more than once")


def integer(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer from low to high, or the default when absent."""
    raw = query.get(name)
    if raw is None:
        return default
    if not NUMBER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadParameter(name, f"must be an integer from {low} to {high}")
    return int(raw)


def repository(query: Mapping[str, str]) -> str | None:
    """`owner/name`, or None when absent."""
    raw = query.get("repository")
    if raw is None:
        return None
    owner, _, name = raw.partition("/")
    if not (OWNER.fullmatch(owner) and _repository_name(name)):
        raise BadParameter("repository", "must be owner/name, e.g. acme/widgets")
    return raw


def repository_path(owner: str, name: str) -> str:
    """`owner/name` from the `{owner}` and `{repo}` path parameters."""
    if not OWNER.fullmatch(owner):
        raise BadParameter("owner", "not a GitHub account name")
    if not _repository_name(name):
        raise BadParameter("repo", "not a GitHub repository name")
    return f"{owner}/{name}"


def _repository_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None and name not in (".", "..")


def since(query: Mapping[str, str]) -> datetime | None:
    """An ISO 8601 time with a zone, in UTC; None when absent."""
    raw = query.get("since")
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            raise ValueError("no zone")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParameter(
            "since", "must be an ISO 8601 time with a zone, e.g. 2024-05-01T00:00:00Z"
        ) from None


def status(query: Mapping[str, str]) -> str | None:
    """A run state, `active` or `terminal`; None when absent."""
    raw = query.get("status")
    if raw is None:
        return None
    if raw not in STATUS_FILTERS:
        raise BadParameter("status", "must be a run state (e.g. DONE_SUCCESS), active or terminal")
    return raw


def cursor(query: Mapping[str, str]) -> str | None:
    """A page cursor this server handed out; None when absent."""
    raw = query.get("cursor")
    if raw is None:
        return None
    try:
        if not CURSOR.fullmatch(raw):
            raise BadCursor(raw)
        decode_cursor(raw)
    except BadCursor:
        raise BadParameter("cursor", "not a cursor from this API") from None
    return raw
