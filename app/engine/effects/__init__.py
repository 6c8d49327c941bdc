"""The effect table: each effect type the machine emits has exactly one handler, here.

A handler is `async def handler(ctx: RunContext, env: Envelope, effect: E) -> Outcome`; it
carries the effect out at the edge (idempotently: after a crash it runs again) and returns the
envelope with any notes it took and the event the machine receives, if any. There is no
catch-all: an effect type without a handler is a test failure (tests/engine/test_effect_table.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.domain.effects import (
    CancelInFlight,
    CompileStrategy,
    CreateBranch,
    CreateSnapshot,
    EvaluateGate,
    Finish,
    PushChange,
    QueuePhases,
    Report,
    RerunCI,
    RunAuditor,
    RunBuilder,
    WaitForCI,
    WriteArtefacts,
)
from app.engine.context import Outcome, RunContext
from app.engine.effects import (
    artefacts,
    audit,
    bootstrap,
    build,
    cancel,
    ci,
    gate,
    push,
    report,
)
from app.engine.envelope import Envelope

Handler = Callable[[RunContext, Envelope, Any], Awaitable[Outcome]]

HANDLERS: dict[type, Handler] = {
    CompileStrategy: bootstrap.compile_strategy,
    CreateBranch: bootstrap.create_branch,
    QueuePhases: bootstrap.queue_phases,
    RunBuilder: build.run_builder,
    EvaluateGate: gate.evaluate_gate,
    PushChange: push.push_change,
    CreateSnapshot: push.create_snapshot,
    WaitForCI: ci.wait_for_ci,
    RerunCI: ci.rerun_ci,
    RunAuditor: audit.run_auditor,
    Report: report.report,
    Finish: report.finish,
    WriteArtefacts: artefacts.write_artefacts,
    CancelInFlight: cancel.cancel_in_flight,
}

# Reporting never ends a run: when one of these fails, the next report catches up.
REPORTING: frozenset[type] = frozenset({Report, Finish, WriteArtefacts})
