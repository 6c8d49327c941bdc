"""What the engine stores for a run: the machine's state, the effects not yet carried out, and the
engine's own notes (ids of things it created on GitHub, CI deadlines).

Effects are saved with the state that asked for them, before any is carried out, so a worker that
dies half-way leaves them for the next one, which carries them out again: every effect is
idempotent by its key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from app.domain.dataclass_codec import decode_fields, encode_fields
from app.domain.effects import RETIRED_EFFECT_TYPES, Effect, effect_from_json
from app.domain.run_state import RunState


@dataclass(frozen=True)
class CIWatch:
    """The commit whose CI the run waits for (kept, settled, after its verdict)."""

    sha: str
    phase_id: str
    rerun: int
    since: float  # epoch seconds the wait (or re-run) started
    failed_before: tuple[str, ...] = ()
    # After a re-run, runs of these checks with ids at or below floor_id are the old results.
    rerun_names: tuple[str, ...] = ()
    floor_id: int = 0
    # Re-run names GitHub answered "already running" for: asked for again until a newer run shows.
    rerun_unconfirmed: tuple[str, ...] = ()
    # The phase's base commit and the check/status names seen on it (read when `all` is required).
    base_sha: str = ""
    expected: tuple[str, ...] = ()
    # Set with the verdict: the newest check run id the verdict saw (a re-run's floor).
    settled: bool = False
    seen_floor: int = 0


@dataclass(frozen=True)
class Memo:
    """The engine's notes on a run; none of it changes what the machine decides."""

    installation_id: int
    repository: str
    issue_number: int
    issue_title: str = ""
    started_at: float = 0.0
    default_branch: str = ""
    protected: tuple[str, ...] = ()
    head_tree: str = ""
    check_run_id: int | None = None
    check_run_sha: str = ""
    checked_status: str = ""  # the state the check run last showed, and when it was updated
    checked_at: float = 0.0
    final_head: str = ""  # the branch head after the final artefacts commit
    final_reported: bool = False
    label: str = ""
    annotations_sent: int = 0
    comment_id: int | None = None
    # What the last comment edit showed, and when: edits are coalesced (see reporting.py).
    commented_status: str = ""
    commented_pull: int | None = None
    commented_at: float = 0.0
    pull_refreshed_landed: int = 0  # phases landed when the PR body was last refreshed
    pull_refreshed_at: float = 0.0
    backlog_issue: int | None = None
    pull_number: int | None = None
    pull_node_id: str = ""
    pull_ready: bool = False
    ci: CIWatch | None = None
    phase_started_at: float = 0.0
    builder_notes: tuple[str, ...] = ()
    # The plan as the maintainer labelled it (from the labeled delivery); None: read the issue.
    plan_title: str = ""
    plan_body: str | None = None
    labelled_by: str = ""
    label_digest: str = ""  # of the delivery that started the run: a replay of it starts nothing

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        data = {k: v for k, v in self.__dict__.items() if k != "ci"}
        data["builder_notes"] = list(self.builder_notes)
        data["protected"] = list(self.protected)
        data["ci"] = None if self.ci is None else encode_fields(self.ci)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Memo:
        """Inverse of `to_json`."""
        ci = data.get("ci")
        fields = {k: v for k, v in data.items() if k != "ci"}
        fields["builder_notes"] = tuple(fields.get("builder_notes", ()))
        fields["protected"] = tuple(fields.get("protected", ()))
        watch = None if ci is None else decode_fields(CIWatch, ci)
        return cls(**fields, ci=watch)


@dataclass(frozen=True)
class Envelope:
    """The `state` column of a run."""

    state: RunState
    memo: Memo
    pending: tuple[Effect, ...] = field(default_factory=tuple)

    def evolve(self, **changes: Any) -> Envelope:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def note(self, **changes: Any) -> Envelope:
        """A copy with some memo fields changed."""
        return replace(self, memo=replace(self.memo, **changes))

    def dumps(self) -> str:
        """The JSON text stored in the database."""
        return json.dumps(
            {
                "machine": self.state.to_json(),
                "memo": self.memo.to_json(),
                "pending": [effect.to_json() for effect in self.pending],
            },
            sort_keys=True,
        )

    @classmethod
    def loads(cls, text: str) -> Envelope:
        """Inverse of `dumps`."""
        data = json.loads(text)
        return cls(
            state=RunState.from_json(data["machine"]),
            memo=Memo.from_json(data["memo"]),
            pending=tuple(
                effect_from_json(item)
                for item in data["pending"]
                if item.get("type") not in RETIRED_EFFECT_TYPES
            ),
        )
