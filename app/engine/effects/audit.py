"""RunAuditor: a pre-push review of the gated change, or an escalation after failed attempts."""

from __future__ import annotations

import asyncio

from app.agents.contract import AuditRequest
from app.agents.files import ToolError, apply_patch
from app.domain.effects import RunAuditor
from app.domain.events import AuditorFinished, AuditorVerdict
from app.domain.evidence import gate_findings
from app.domain.run_state import AuditReason
from app.engine import evidence
from app.engine.context import Outcome, RunContext
from app.engine.effects.attempt import lost, phase_spec, strategy_of
from app.engine.envelope import Envelope


async def run_auditor(ctx: RunContext, env: Envelope, effect: RunAuditor) -> Outcome:
    """Ask the auditor with the evidence of the phase; apply a patch it gives to the head."""
    strategy = strategy_of(env)
    phase = strategy.phase(effect.phase_id)
    name = strategy.auditor_backend
    profile = ctx.settings.operator.auditors.get(name or "")
    if name is None or profile is None:
        reject = AuditorVerdict.REJECT
        return env, AuditorFinished(
            effect.phase_id, effect.attempt, reject, 0, (), "no auditor configured"
        )
    head = env.state.head_sha or ""
    found = await evidence.of_phase(ctx, effect.phase_id)
    review = effect.reason is AuditReason.PRE_PUSH_REVIEW
    if review:
        # A review judges the gated change still in the tree: it is what will be pushed.
        if not ctx.workspace.holds(head):
            return env, lost(effect.phase_id, effect.attempt)
        diff = await evidence.attempt_diff(ctx)
    else:
        # An escalation works from the branch head; the failed attempt is in the evidence.
        await ctx.workspace.clean_at(head)
        diff = found.diff
    request = AuditRequest(
        spec=phase_spec(strategy, phase, effect),
        diff=diff or "(no change was recorded for this phase)",
        ci_failures=effect.feedback,
        gate_findings=gate_findings(found.gate),
        ci_output=found.ci_output,
        builder_log=found.builder_log,
        profile=effect.auditor_profile.value,
    )
    auditor = ctx.services.auditor(f"auditors.{name}", profile)
    verdict = await auditor.review(request, ctx.workspace.tree)
    answer = AuditorVerdict(verdict.verdict.value)
    summary = verdict.summary or verdict.failure_reason or ""
    if review and await evidence.attempt_diff(ctx) != diff:
        # The reviewer must not edit what it approves: the push would carry unreviewed text.
        answer, summary = AuditorVerdict.REJECT, "the reviewer changed the work tree"
    elif verdict.verdict is AuditorVerdict.PATCH and verdict.patch:
        try:
            await ctx.workspace.clean_at(head)
            await asyncio.to_thread(apply_patch, ctx.workspace.tree, verdict.patch)
        except ToolError as exc:
            answer, summary = AuditorVerdict.REJECT, f"the auditor's patch was refused: {exc}"
    return env, AuditorFinished(
        effect.phase_id,
        effect.attempt,
        answer,
        verdict.tokens_used,
        verdict.issues,
        summary,
    )
