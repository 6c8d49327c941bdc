"""Secret-looking content: private keys and tokens of known shapes, found in linear time.

Python's `re` backtracks, so no pattern here is searched over a whole line with an open-ended
quantifier that could fail late. Tokens are found by one pass over maximal runs of token
characters (each match starts where the last ended), and each run is then checked with an
anchored pattern over that run alone: total work stays linear in the scanned bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class SecretKind(StrEnum):
    """The shape of a secret; also the rule name shown in evidence."""

    PRIVATE_KEY = "private_key"
    GITHUB_TOKEN = "github_token"  # noqa: S105 (a kind name)
    GITHUB_FINE_GRAINED_TOKEN = "github_fine_grained_token"  # noqa: S105 (a kind name)
    AWS_ACCESS_KEY_ID = "aws_access_key_id"
    SLACK_TOKEN = "slack_token"  # noqa: S105 (a kind name)
    OPENAI_API_KEY = "openai_api_key"
    PASSWORD_ASSIGNMENT = "password_assignment"  # noqa: S105 (a kind name)

    @property
    def generic(self) -> bool:
        """True for heuristic shapes that only warrant a minor warning."""
        return self is SecretKind.PASSWORD_ASSIGNMENT


@dataclass(frozen=True)
class SecretHit:
    """One secret-looking value: where it is and a masked form safe to show anywhere."""

    kind: SecretKind
    line: int
    masked: str


_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
# (kind, anchored pattern over one token, how many leading characters are a public prefix)
_TOKEN_SHAPES: tuple[tuple[SecretKind, re.Pattern[str], int], ...] = (
    (SecretKind.GITHUB_TOKEN, re.compile(r"gh[pousr]_[A-Za-z0-9]{36}"), 4),
    (SecretKind.GITHUB_FINE_GRAINED_TOKEN, re.compile(r"github_pat_[A-Za-z0-9_]{82}"), 11),
    (SecretKind.AWS_ACCESS_KEY_ID, re.compile(r"AKIA[0-9A-Z]{16}"), 4),
    (SecretKind.SLACK_TOKEN, re.compile(r"xox[baprs]-[0-9]{6,}-[A-Za-z0-9\-]{6,}"), 5),
    (SecretKind.OPENAI_API_KEY, re.compile(r"sk-[A-Za-z0-9_\-]{32,}"), 3),
)
_PEM_HEADER = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# A PEM body line (or an escaped one-line PEM's body after the header): long base64 runs.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}")
_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9])(?:password|passwd|pwd)[\"']?[ \t]*[:=][ \t]*([\"'])([^\"'\r\n]{4,})\1",
    re.IGNORECASE,
)
_PLACEHOLDER_START = ("$", "{", "<", "%", "*")
_PEM_FOOTER = re.compile(r"-----END (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY(?: BLOCK)?-----")
# One body line of a key, after line breaks (real or escaped as in JSON) and PEM headers.
_PEM_CHUNK = re.compile(r"(?:\s|\\[nr])*+(?:(?:Proc-Type|DEK-Info):[^\n\\]*+|[A-Za-z0-9+/=]{20,}+)")
_PEM_REDACTED = "-----BEGIN … PRIVATE KEY----- (redacted)"
_PEM_LOOKAHEAD_LINES = 3


def mask(value: str, keep: int = 0) -> str:
    """A value with everything after its first `keep` (public prefix) characters hidden."""
    return f"{value[:keep]}**** ({len(value)} chars)"


def classify_token(token: str) -> tuple[SecretKind, int] | None:
    """The secret kind a single token has (and its public prefix length), or None."""
    for kind, pattern, keep in _TOKEN_SHAPES:
        if pattern.fullmatch(token) is None:
            continue
        if kind is SecretKind.OPENAI_API_KEY and not _looks_random(token[keep:]):
            continue
        return kind, keep
    return None


def scan(content: bytes) -> tuple[SecretHit, ...]:
    """Secret-looking values anywhere in `content` (linear in its length), ordered by line."""
    text = content.decode("utf-8", errors="replace")
    lines = text.split("\n")
    hits: list[SecretHit] = []
    for index, line in enumerate(lines):
        number = index + 1
        if "PRIVATE KEY" in line and _private_key_at(lines, index):
            hits.append(SecretHit(SecretKind.PRIVATE_KEY, number, "-----BEGIN … PRIVATE KEY-----"))
        for match in _TOKEN.finditer(line):
            found = classify_token(match.group())
            if found is not None:
                kind, keep = found
                hits.append(SecretHit(kind, number, mask(match.group(), keep)))
        for match in _PASSWORD.finditer(line):
            value = match.group(2)
            if not value.strip() or value.startswith(_PLACEHOLDER_START):
                continue
            hits.append(SecretHit(SecretKind.PASSWORD_ASSIGNMENT, number, mask(value)))
    hits.sort(key=lambda hit: (hit.line, hit.kind.value, hit.masked))
    return tuple(hits)


def redact(text: str) -> str:
    """`text` made safe to publish: private keys, tokens of a known shape and quoted password
    assignments replaced by their masked forms (linear in the length of `text`)."""

    def token(match: re.Match[str]) -> str:
        found = classify_token(match.group())
        return match.group() if found is None else mask(match.group(), found[1])

    def password(match: re.Match[str]) -> str:
        value = match.group(2)
        if not value.strip() or value.startswith(_PLACEHOLDER_START):
            return match.group()
        start, end = match.span(2)
        whole = match.group()
        return whole[: start - match.start()] + mask(value) + whole[end - match.start() :]

    return _PASSWORD.sub(password, _TOKEN.sub(token, _redact_private_keys(text)))


def _redact_private_keys(text: str) -> str:
    """Each PEM private key (header, body lines, footer) replaced by a marker."""
    if "PRIVATE KEY" not in text:
        return text
    out, pos, footers = [], 0, True
    for header in _PEM_HEADER.finditer(text):
        if header.start() < pos:
            continue
        out.append(text[pos : header.start()])
        out.append(_PEM_REDACTED)
        # No footer after one header means none after any later one: search once (linear).
        footer = _PEM_FOOTER.search(text, header.end()) if footers else None
        footers = footer is not None
        if footer is not None:
            pos = footer.end()
            continue
        pos = header.end()  # a key cut short: drop what still looks like its body
        while (chunk := _PEM_CHUNK.match(text, pos)) is not None and chunk.end() > pos:
            pos = chunk.end()
    out.append(text[pos:])
    return "".join(out)


def _private_key_at(lines: list[str], index: int) -> bool:
    """A PEM private-key header with a key body after it (not just code naming the header)."""
    header = _PEM_HEADER.search(lines[index])
    if header is None:
        return False
    if _BASE64_RUN.search(lines[index], header.end()) is not None:
        return True  # an escaped one-line PEM: "-----BEGIN ...-----\nMIIE..."
    for following in lines[index + 1 : index + 1 + _PEM_LOOKAHEAD_LINES]:
        body = following.strip()
        if body.startswith("Proc-Type:") or _BASE64_RUN.match(body) is not None:
            return True
    return False


def _looks_random(body: str) -> bool:
    # Real keys are random base62: digits and both cases. Kebab-case names are not.
    return (
        any(c.isdigit() for c in body)
        and any(c.isupper() for c in body)
        and any(c.islower() for c in body)
    )
