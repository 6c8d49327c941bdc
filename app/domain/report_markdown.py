"""Markdown building blocks for the reports: escaping, links, bars, numbers and size limits.

Pure. Everything that comes from outside Autopack's own code (issue, tier and phase titles,
issue keys and messages, paths, check names, failure reasons, builder summaries) reaches
markdown only through `text`, `code` or `code_block`, so it can neither break a table, start a
new block, inject HTML or math, nor mention a person or cross-reference an issue; and each of
them (and `one_line`) passes it through the secret redactor first, before anything is cut, so a
token a builder echoed is never published, whole or in part.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from app.domain.secrets_scan import redact

# GitHub's limits, in characters.
CHECK_SUMMARY_LIMIT = 65_535  # check run output.summary
CHECK_TEXT_LIMIT = 65_535  # check run output.text
COMMENT_LIMIT = 65_536  # issue comment body
PULL_BODY_LIMIT = 65_536  # pull request body
ISSUE_BODY_LIMIT = 65_536  # issue body

ELLIPSIS = "…"
BAR_WIDTH = 10
_FULL, _EMPTY = "▰", "▱"
# Line breaks, tabs and other controls, plus the bidi overrides that can disguise text.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
# The same, less line breaks and tabs (kept in code blocks).
_BLOCK_CONTROLS = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+"
)
# Backslash-escaped: inline markdown, table cells, GitHub math.
_PUNCTUATION = re.compile(r"([\\`*_\[\]|~$])")
# "@name" mentions and "#12" / "owner/repo#12" references: a word joiner stops the autolink.
_AUTOLINKS = re.compile(r"([@#])(?=[A-Za-z0-9])")
_WORD_JOINER = "\u2060"
_BLOCK_START = re.compile(r"^(\d{0,9})([#+=.)-])")
_CELL_PIPE = re.compile(r"(\\*)\|")
_URL_UNSAFE = re.compile(r"[\s()<>\"'`|\[\]]")


def one_line(value: object) -> str:
    """`value` redacted, as one line: line breaks and control characters become spaces."""
    return _CONTROLS.sub(" ", redact(str(value))).strip()


def cut(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters, ending with an ellipsis when cut."""
    if len(value) <= limit:
        return value
    if limit <= 0:
        return ""
    return value[: limit - 1].rstrip() + ELLIPSIS


def text(value: object, limit: int = 200) -> str:
    """Untrusted text as inline markdown: one line, at most `limit` characters before escaping."""
    raw = cut(one_line(value), limit)
    # `&` first, so the entities added next are not escaped again.
    raw = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    raw = _PUNCTUATION.sub(r"\\\1", raw)
    # Placed first in a list item, "#", "-", "+", "=" or "1." would open a block.
    raw = _BLOCK_START.sub(r"\1\\\2", raw, count=1)
    return _AUTOLINKS.sub(r"\1" + _WORD_JOINER, raw)


def code(value: object, limit: int = 120, *, cell: bool = True) -> str:
    """Untrusted text as an inline code span (literal: no HTML, no mentions).

    In a table cell (`cell`), `|` must be escaped even inside code; elsewhere it must not be.
    """
    raw = cut(one_line(value), limit)
    if not raw:
        return "—"
    if cell:
        # GitHub splits cells before it parses code: a pipe must follow an odd run of backslashes.
        raw = _CELL_PIPE.sub(_escape_pipe, raw)
    longest = max((len(run) for run in re.findall(r"`+", raw)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if raw.startswith("`") or raw.endswith("`") else ""
    return f"{fence}{pad}{raw}{pad}{fence}"


def _escape_pipe(match: re.Match[str]) -> str:
    slashes = match.group(1)
    return slashes + ("" if len(slashes) % 2 else "\\") + "|"


def code_block(value: str, limit: int = 2000, language: str = "text") -> str:
    """Untrusted multi-line text as a fenced code block (its fence longer than any inside)."""
    lines = redact(value).replace("\r\n", "\n").replace("\r", "\n")
    body = cut(_BLOCK_CONTROLS.sub(" ", lines), limit).strip("\n")
    longest = max((len(run) for run in re.findall(r"`{3,}", body)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{language}\n{body}\n{fence}"


def url(*parts: str) -> str:
    """A URL from a trusted base and path parts, percent-encoded so it cannot end a link early."""
    base, *rest = parts
    out = _URL_UNSAFE.sub(lambda m: quote(m.group()), base.rstrip("/"))
    for part in rest:
        out += "/" + quote(part.strip("/"), safe="/")
    return out


def link(label_markdown: str, target: str) -> str:
    """A markdown link; `label_markdown` must already be escaped (`text` or `code`)."""
    return f"[{label_markdown}]({target})"


def amount(number: int) -> str:
    """A token count for people: 950, 12.3k, 1.6M."""
    if number < 0:
        return "-" + amount(-number)
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if number >= size:
            value = f"{number / size:.1f}".removesuffix(".0")
            return f"{value}{suffix}"
    return str(number)


def percent(used: float, cap: float) -> int:
    """`used` as a whole percentage of `cap` (rounded down, so 99.9% never reads 100%)."""
    return int(used * 100 // cap) if cap > 0 else 0


def bar(used: float, cap: float, width: int = BAR_WIDTH) -> str:
    """A text bar with the share, e.g. `▰▰▰▱▱▱▱▱▱▱ 31%`; a cap of 0 reads "no cap"."""
    if cap <= 0:
        return "no cap"
    share = percent(used, cap)
    filled = min(width, int(max(used, 0) * width // cap))
    over = " ⚠️ over the cap" if used > cap else ""
    return f"{_FULL * filled}{_EMPTY * (width - filled)} {share}%{over}"


def duration(seconds: float) -> str:
    """A duration for people: 45s, 12m 03s, 1h 02m, 2d 3h."""
    total = max(int(seconds), 0)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 phase`, `2 phases`."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    """A GFM table; `align` holds one of l/r/c per column; cells must already be escaped."""
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def fit(markdown: str, limit: int, pointer: str = "", footer: str = "") -> str:
    """`markdown` + `footer` within `limit` characters, never failing.

    When too long, whole lines are dropped from the end of `markdown`, a code fence or
    `<details>` left open is closed, and `pointer` (where the full text is) is appended; the
    footer is always kept (cut itself only when it alone is over the limit).
    """
    if len(markdown) + len(footer) <= limit:
        return markdown + footer
    if len(footer) >= limit:
        return cut(footer, limit)
    tail = "\n\n" + (pointer or ELLIPSIS) + "\n"
    room = limit - len(footer)
    if len(tail) >= room:
        return cut(tail.strip(), room) + footer
    kept = markdown[: room - len(tail)]
    while True:
        newline = kept.rfind("\n")
        # Whole lines only, unless that would throw most of the text away.
        if newline > len(kept) // 2:
            kept = kept[:newline]
        kept = kept.rstrip()
        closing = _closers(kept)
        if len(kept) + len(closing) + len(tail) <= room:
            return kept + closing + tail + footer
        kept = kept[: max(room - len(tail) - len(closing), 0)]


def _closers(markdown: str) -> str:
    """What closes the code fence and `<details>` blocks left open at the end of `markdown`."""
    fence: str | None = None
    details = 0
    for line in markdown.split("\n"):
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence) and set(stripped) == {"`"}:
                fence = None
            continue
        if stripped.startswith("```"):
            fence = "`" * (len(stripped) - len(stripped.lstrip("`")))
        elif stripped.startswith("<details"):
            details += 1
        elif stripped.startswith("</details>"):
            details = max(details - 1, 0)
    out = f"\n{fence}" if fence is not None else ""
    return out + "\n</details>" * details
