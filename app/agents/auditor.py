"""Auditors: the builder backends given a review task, returning approve / reject / patch.

A patch is returned as data (path -> new text, None to delete); applying it is the caller's
job and goes through the same gate and governed write path as a builder's change.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from app.agents.command import CommandRunner, process_outcome
from app.agents.contract import (
    AuditRequest,
    AuditResult,
    ParsedReport,
    load_result_object,
    parse_issues,
    parse_summary,
    parse_tokens,
)
from app.agents.files import WorkspaceFiles
from app.agents.openai_backend import (
    ISSUES_SCHEMA,
    ChatClient,
    ChatOutcome,
    ToolHandler,
    run_tool_loop,
    tool_definitions,
)
from app.config import BuilderProfile
from app.domain.events import AuditorVerdict, BuilderOutcome

MAX_PATCH_FILES = 100
MAX_PATCH_FILE_BYTES = 1024 * 1024
MAX_DIFF_CHARS = 200_000

_COMMON = (
    "You are the Auditor of an automated build system. A Builder's change for the phase below "
    "failed the gate or CI, or the phase is high-risk. Review the diff, the CI failures and the "
    "gate findings, then give one verdict: `approve` (the change is right as it is), `reject` "
    "(it cannot be fixed by a small patch; list the issues), or `patch` (give the complete new "
    "content of each file to change, or null to delete one; keep it minimal). Do not edit "
    "files yourself. Report issues as issue_key, severity minor|major, category, evidence."
)
AUDITOR_INSTRUCTIONS: dict[str, str] = {
    "schema_review": _COMMON
    + " Focus: schema and contract changes. Check backwards compatibility, migrations, "
    "every reader and writer of the changed shapes, and that versioned contracts stay valid.",
    "security_review": _COMMON
    + " Focus: security and authentication. Look for injection, missing authorisation checks, "
    "secrets in code or logs, weakened validation and unsafe defaults; reject when unsure.",
    "orchestrator_review": _COMMON
    + " Focus: why the attempts keep failing. Read the CI failures closely and prefer the "
    "smallest patch that makes the phase's intent pass without widening its scope.",
    "debt_cleanup_review": _COMMON
    + " Focus: a debt-cleanup phase. Approve only behaviour-preserving cleanups of the named "
    "issues; reject anything that changes behaviour or touches unrelated code.",
}


def instructions_for(profile: str) -> str | None:
    """The system prompt for an auditor profile, or None for an unknown name."""
    return AUDITOR_INSTRUCTIONS.get(profile)


def review_prompt(request: AuditRequest) -> str:
    """The review task as a markdown prompt (AUTOPACK_PROMPT_FILE for command auditors)."""
    diff = request.diff
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n... (diff cut at {MAX_DIFF_CHARS} characters)\n"
    findings = [
        f"- [{f.severity.value}] {f.issue_key} ({f.category}): {f.message}"
        for f in request.gate_findings
    ]
    failures = [f"- {line}" for line in request.ci_failures]
    return "\n".join(
        [
            f"# Review ({request.profile})",
            "",
            "## The phase",
            "",
            request.spec.to_prompt(),
            "## Gate findings",
            "",
            *(findings or ["(none)"]),
            "",
            "## CI failures",
            "",
            *(failures or ["(none)"]),
            "",
            *_block("What the failing checks said", request.ci_output),
            *_block("The last builder log (tail)", request.builder_log),
            "## Diff",
            "",
            "```diff",
            diff.rstrip("\n"),
            "```",
            "",
            "Answer with a verdict: approve, reject or patch.",
            "",
        ]
    )


def _block(title: str, text: str) -> list[str]:
    if not text.strip():
        return []
    return [f"## {title}", "", "```text", text.rstrip("\n").replace("```", "``\u200b`"), "```", ""]


def verdict_from_data(data: dict[str, Any] | None, report: ParsedReport) -> AuditResult:
    """Validate a verdict object (result file or tool arguments); never raises."""
    if data is None:
        return _failed("the auditor gave no readable verdict", report)
    parse_summary(data.get("summary"), report)
    parse_issues(data.get("issues"), report)
    try:
        verdict = AuditorVerdict(str(data.get("verdict")))
    except ValueError:
        return _failed("the auditor's verdict is not approve, reject or patch", report)
    patch: dict[str, str | None] | None = None
    if verdict is AuditorVerdict.PATCH:
        patch = _parse_patch(data.get("patch"), report)
        if not patch:
            return _failed("the auditor chose patch but gave no valid patch", report)
    elif data.get("patch"):
        report.problems.append(f"a patch came with verdict {verdict}; ignored")
    return AuditResult(
        verdict=verdict,
        issues=tuple(report.issues),
        patch=patch,
        tokens_used=report.tokens_used,
        summary=report.summary,
        problems=tuple(report.problems),
    )


def _failed(reason: str, report: ParsedReport) -> AuditResult:
    return AuditResult(
        verdict=AuditorVerdict.REJECT,
        issues=tuple(report.issues),
        tokens_used=report.tokens_used,
        summary=report.summary,
        failure_reason=reason,
        problems=tuple(report.problems),
    )


def _parse_patch(value: object, report: ParsedReport) -> dict[str, str | None]:
    # Two spellings: {"path": content|null} (result files) or [{"path", "content"}] (tools).
    if isinstance(value, list):
        pairs = [
            (item.get("path"), item.get("content")) if isinstance(item, dict) else (None, None)
            for item in value
        ]
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        report.problems.append("patch is neither an object nor a list")
        return {}
    if len(pairs) > MAX_PATCH_FILES:
        report.problems.append(f"patch names {len(pairs)} files; at most {MAX_PATCH_FILES}")
        return {}
    patch: dict[str, str | None] = {}
    for path, content in pairs:
        problem = _patch_path_problem(path) or _patch_content_problem(path, content)
        if problem is not None:
            report.problems.append(problem + "; patch refused")
            return {}
        assert isinstance(path, str)
        patch[path] = content
    return patch


def _patch_content_problem(path: object, content: object) -> str | None:
    if content is not None and not isinstance(content, str):
        return f"patch content for {path!r} is neither text nor null"
    if isinstance(content, str) and len(content.encode("utf-8")) > MAX_PATCH_FILE_BYTES:
        return f"patch content for {path!r} is larger than {MAX_PATCH_FILE_BYTES} bytes"
    return None


def _patch_path_problem(path: object) -> str | None:
    if not isinstance(path, str) or not path or "\x00" in path or "\\" in path:
        return f"patch path {path!r} is not a plain relative path"
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or str(pure) != path:
        return f"patch path {path!r} is not a plain relative path"
    return None


class CommandAuditor:
    """An auditor run through the command contract, with AUTOPACK_AUDIT_FILE added.

    Its cwd is the workspace so it can read the tree; edits it makes there are not its answer
    (only the result file is), and the caller re-materialises the workspace before applying.
    """

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    async def review(self, request: AuditRequest, workspace: Path) -> AuditResult:
        """Run the auditor command once and read its verdict."""
        instructions = instructions_for(request.profile)
        if instructions is None:
            return _failed(f"unknown auditor profile {request.profile!r}", ParsedReport())
        files = {
            "AUTOPACK_AUDIT_FILE": ("audit.json", json.dumps(request.to_dict(instructions))),
            "AUTOPACK_PHASE_FILE": ("phase.json", request.spec.to_json()),
            "AUTOPACK_PROMPT_FILE": ("prompt.md", instructions + "\n\n" + review_prompt(request)),
        }
        label = f"{request.spec.run_id}-{request.spec.phase_id}-audit"
        proc = await self.runner.execute(workspace, label, files)
        outcome, reason = process_outcome(proc, self.runner.profile)
        report = ParsedReport(problems=list(proc.problems))
        data = None
        if proc.start_error is None:
            data = load_result_object(proc.result_bytes, report)
            parse_tokens(data.get("tokens_used") if data else None, report)
        if outcome is BuilderOutcome.OK:
            verdict = verdict_from_data(data, report)
        else:
            verdict = _failed(reason or f"the auditor command ended {outcome}", report)
        return replace(verdict, stdout_tail=proc.stdout_tail, stderr_tail=proc.stderr_tail)


_VERDICT_TOOL = {
    "submit_verdict": (
        "Give the verdict. For `patch`, list each file's complete new content (null deletes).",
        {
            "type": "object",
            "properties": {
                "verdict": {"type": "string", "enum": [v.value for v in AuditorVerdict]},
                "summary": {"type": "string"},
                "issues": ISSUES_SCHEMA,
                "patch": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "path": {"type": "string"},
                            "content": {"type": ["string", "null"]},
                        },
                        "required": ["path", "content"],
                    },
                },
            },
            "required": ["verdict", "summary"],
        },
    )
}


class OpenAIAuditor:
    """An auditor over Chat Completions: read-only file tools plus `submit_verdict`."""

    def __init__(self, client: ChatClient, profile: BuilderProfile) -> None:
        self.client = client
        self.profile = profile

    async def review(self, request: AuditRequest, workspace: Path) -> AuditResult:
        """Converse until the model submits a verdict (or a limit stops it)."""
        instructions = instructions_for(request.profile)
        if instructions is None:
            return _failed(f"unknown auditor profile {request.profile!r}", ParsedReport())
        setup_problem = self.client.setup_problem()
        if setup_problem is not None:
            return _failed(setup_problem, ParsedReport())
        files = WorkspaceFiles(workspace)
        handlers: dict[str, ToolHandler] = {
            "list_files": files.list_files,
            "read_file": files.read_file,
        }
        chat = ChatOutcome(BuilderOutcome.FAILED)
        try:
            async with asyncio.timeout(self.profile.timeout_seconds):
                await run_tool_loop(
                    self.client,
                    chat,
                    system=instructions,
                    user=review_prompt(request),
                    handlers=handlers,
                    tools=tool_definitions([*handlers, "submit_verdict"], _VERDICT_TOOL),
                    final_tool="submit_verdict",
                    token_budget=request.spec.budgets_left.tokens,
                    max_turns=self.profile.max_turns,
                )
        except TimeoutError:
            chat.failure_reason = (
                f"the auditor did not answer within {self.profile.timeout_seconds} s"
            )
        report = ParsedReport(tokens_used=chat.tokens_used, problems=chat.problems)
        if chat.final_args is None:
            return _failed(chat.failure_reason or "the auditor gave no verdict", report)
        return verdict_from_data(chat.final_args, report)
