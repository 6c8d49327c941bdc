"""Carries out the machine's effects at the edge (through the effect table) and turns what
happened into events.

Failures of the outside world become events the machine understands (`EnvironmentFailed`,
`PushRejected`, a failed attempt); nothing here decides what they mean for the run.
"""

from __future__ import annotations

import logging

import aiohttp
import gidgethub

from app.agents.sandbox import SandboxUnavailable
from app.agents.tarball import WorkspaceError
from app.domain.effects import Effect
from app.domain.events import EnvironmentFailed, Event
from app.engine import ci_watch, evidence
from app.engine.context import Outcome, RunContext, Services
from app.engine.effects import HANDLERS, REPORTING
from app.engine.envelope import Envelope
from app.github.client import failed_call
from app.store.runs import RunRecord

log = logging.getLogger("autopack.executor")

# What the outside world throws when it is down or refuses; the run ends as an environment failure.
OUTSIDE_FAILURES = (
    gidgethub.GitHubException,
    aiohttp.ClientError,
    TimeoutError,
    WorkspaceError,
    OSError,
)


class EngineExecutor:
    """The worker's executor: one instance per process, shared by every run it drives."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def context(self, record: RunRecord) -> RunContext:
        """The context of one claim of a run (its clients and workspace, opened when used)."""
        return RunContext(self.services, record)

    async def execute(self, ctx: RunContext, env: Envelope, effect: Effect) -> Outcome:
        """Carry out one effect; outside-world failures become EnvironmentFailed."""
        try:
            env, result = await HANDLERS[type(effect)](ctx, env, effect)
        except SandboxUnavailable as exc:  # fail closed: nothing ran unsandboxed
            log.warning(
                "sandbox failed", extra={"fields": {"run": ctx.record.id, "reason": str(exc)}}
            )
            return env, EnvironmentFailed(str(exc))
        except OUTSIDE_FAILURES as exc:
            reason = _outside_reason(effect, exc)
            log.warning("effect failed", extra={"fields": {"run": ctx.record.id, "reason": reason}})
            if type(effect) in REPORTING:
                return env, None  # reporting never ends a run
            return env, EnvironmentFailed(reason)
        await evidence.note_ci_output(ctx, env, [] if result is None else [result])
        return env, result

    async def tick(
        self, ctx: RunContext, env: Envelope, now: float
    ) -> tuple[Envelope, list[Event]]:
        """Timeouts and CI, looked at again."""
        try:
            env, events = await ci_watch.tick(ctx, env, now)
        except OUTSIDE_FAILURES as exc:
            log.warning("CI poll failed: %s", _first_line(exc))
            return env, []
        await evidence.note_ci_output(ctx, env, events)
        return env, events

    def next_wake(self, env: Envelope, now: float) -> float | None:
        """The next deadline or CI poll."""
        return ci_watch.next_wake(env, now, self.services.settings.ci_poll_seconds)


def _outside_reason(effect: Effect, exc: BaseException) -> str:
    """What failed, naming the GitHub call when the exception knows it."""
    call = failed_call(exc)
    where = f" at {call}" if call else ""
    return f"{type(effect).__name__} failed{where}: {type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
