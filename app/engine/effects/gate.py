"""EvaluateGate: the gate's verdict on the attempt's change (and the repository's probes)."""

from __future__ import annotations

import asyncio

from app.agents.probes import ProbeSpec, probe_findings, run_probes
from app.agents.tarball import WorkspaceError
from app.domain.effects import EvaluateGate
from app.domain.events import Finding, GateEvaluated
from app.domain.evidence import EvidenceKind, gate_text
from app.domain.gate import Decision, evaluate
from app.domain.issue_record import IssueRecord, Severity
from app.engine import evidence
from app.engine.context import Outcome, RunContext
from app.engine.effects.attempt import lost, strategy_of
from app.engine.envelope import Envelope


async def evaluate_gate(ctx: RunContext, env: Envelope, effect: EvaluateGate) -> Outcome:
    """Judge the change the builder (or the auditor's patch) left in the work tree."""
    phase = strategy_of(env).phase(effect.phase_id)
    if not ctx.workspace.holds(env.state.head_sha or ""):
        return env, lost(effect.phase_id, effect.attempt)
    try:
        change = await asyncio.to_thread(ctx.workspace.compute_change)
    except WorkspaceError as exc:
        unreadable = Finding("gate:unreadable_change", Severity.MAJOR, "unsafe_path")
        return env, GateEvaluated(
            effect.phase_id, effect.attempt, Decision.FAIL_POLICY, (unreadable,), str(exc)
        )
    probes = await _probes(ctx, env) if not change.empty else ()
    verdict = evaluate(change, phase.gate.policy(), probe_findings=probes)
    findings = tuple(
        Finding(r.issue_key, r.severity, r.category, r.path, r.line, "; ".join(r.evidence)[:500])
        for r in verdict.findings
    )
    summary = "; ".join(
        f"{r.category}: {r.evidence[0] if r.evidence else r.issue_key}" for r in verdict.findings
    )
    texts = {EvidenceKind.GATE: gate_text(findings)}
    await evidence.keep(ctx, effect.phase_id, effect.attempt, texts)
    return env, GateEvaluated(effect.phase_id, effect.attempt, verdict.decision, findings, summary)


async def _probes(ctx: RunContext, env: Envelope) -> tuple[IssueRecord, ...]:
    # The repository names probes; only the operator's config decides whether they run.
    probes = strategy_of(env).probes
    if not probes:
        return ()
    results = await run_probes(
        [ProbeSpec(probe.name, probe.argv) for probe in probes],
        ctx.workspace.tree,
        ctx.settings.operator,
        scratch_dir=ctx.settings.data_dir / "scratch" / ctx.record.id / "probes",
        sandbox=ctx.services.sandbox,
    )
    return tuple(probe_findings(results))
