"""What the engine stores for a run: the machine's state, the effects not yet carried out, and the
engine's own notes (`memo.py`: ids of things it created on GitHub, report cadence, CI, clocks).

Effects are saved with the state that asked for them, before any is carried out, so a worker that
dies half-way leaves them for the next one, which carries them out again: every effect is
idempotent by its key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from app.domain.effects import RETIRED_EFFECT_TYPES, Effect, effect_from_json
from app.domain.run_state import RunState
from app.engine.memo import Memo, MemoRecord


@dataclass(frozen=True)
class Envelope:
    """The `state` column of a run."""

    state: RunState
    memo: Memo
    pending: tuple[Effect, ...] = field(default_factory=tuple)

    def advanced(self, state: RunState, effects: tuple[Effect, ...]) -> Envelope:
        """The machine moved to `state` and asked for `effects` (after those still pending)."""
        return replace(self, state=state, pending=(*self.pending, *effects))

    def with_pending(self, pending: tuple[Effect, ...]) -> Envelope:
        """A copy with these effects left to carry out."""
        return replace(self, pending=pending)

    def put(self, record: MemoRecord) -> Envelope:
        """A copy whose notes hold `record` in place of the record of its kind."""
        return replace(self, memo=self.memo.put(record))

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
