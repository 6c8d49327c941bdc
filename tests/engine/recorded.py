"""The API calls Autopack made, as the simulator's request log recorded them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakegithub.scenario import FakeGitHub


@dataclass(frozen=True)
class Call:
    """One request Autopack made as an installation (path with its query, JSON body)."""

    method: str
    path: str
    body: Any

    @property
    def line(self) -> tuple[str, str]:
        """(method, path), for comparing whole sequences of calls."""
        return self.method, self.path


def calls_since(sim: FakeGitHub, mark: int) -> list[Call]:
    """The requests after the first `mark` of the log that the App made as an installation
    (looking up who the App is, and its tokens, are left out)."""
    return [
        Call(r.method, f"{r.path}?{r.query}" if r.query else r.path, r.body)
        for r in sim.request_log[mark:]
        if r.app == "autopack"
    ]


def writes(calls: list[Call]) -> list[Call]:
    """The calls that could change something on GitHub."""
    return [call for call in calls if call.method != "GET"]
