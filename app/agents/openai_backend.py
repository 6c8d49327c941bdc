"""The `openai` backend: a Chat Completions tool loop that edits files in the workspace.

Works with any server speaking `POST {base_url}/chat/completions` with function tools. Every
path a model names is confined to the workspace (no absolute paths, no `..`, no symlink
escapes); a refused path goes back to the model as a tool error. Turns, tokens and wall time
are bounded; 429 and 5xx answers are retried with backoff, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from app.agents.contract import BuilderResult, ParsedReport, PhaseSpec, parse_issues, parse_summary
from app.agents.files import ToolError, WorkspaceFiles
from app.config import BuilderProfile
from app.domain.events import BuilderOutcome

Sleep = Callable[[float], Awaitable[None]]
HasChange = Callable[[Path], bool]
ToolHandler = Callable[[dict[str, Any]], str]

_RETRYABLE = frozenset({429, 500, 502, 503, 504})

BUILDER_SYSTEM_PROMPT = (
    "You are the Builder of an automated build system. You work in a repository's working "
    "tree through tools only: list_files, read_file, write_file, delete_file. Make the change "
    "the phase asks for and nothing else, then call finish with a short summary and any issues "
    "you noticed (issue_key, severity minor|major, category, evidence). Paths are relative to "
    "the repository root."
)


class ChatError(Exception):
    """The conversation cannot go on (server failure, malformed response, missing key)."""


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


_PATH = {"path": {"type": "string", "description": "relative to the repository root"}}
ISSUES_SCHEMA = {
    "type": "array",
    "items": _schema(
        {k: {"type": "string"} for k in ("issue_key", "severity", "category", "evidence")},
        ["issue_key", "severity", "category", "evidence"],
    ),
}
TOOL_SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "list_files": ("List files under a directory ('.' for the root).", _schema(_PATH, ["path"])),
    "read_file": ("Read a UTF-8 text file.", _schema(_PATH, ["path"])),
    "write_file": (
        "Create or replace a text file.",
        _schema({**_PATH, "content": {"type": "string"}}, ["path", "content"]),
    ),
    "delete_file": ("Delete a file.", _schema(_PATH, ["path"])),
    "finish": (
        "Finish the phase.",
        _schema({"summary": {"type": "string"}, "issues": ISSUES_SCHEMA}, ["summary"]),
    ),
}


def tool_definitions(
    names: list[str], extra: Mapping[str, tuple[str, dict[str, Any]]] | None = None
) -> list[dict[str, Any]]:
    """Chat Completions `tools` entries for the named tools."""
    table = {**TOOL_SCHEMAS, **(extra or {})}
    return [
        {
            "type": "function",
            "function": {"name": n, "description": table[n][0], "parameters": table[n][1]},
        }
        for n in names
    ]


class ChatClient:
    """POSTs chat completions with retries; knows nothing about tools."""

    def __init__(
        self,
        profile: BuilderProfile,
        session: aiohttp.ClientSession,
        *,
        environ: Mapping[str, str] | None = None,
        sleep: Sleep = asyncio.sleep,
        max_retries: int = 4,
        max_backoff_seconds: float = 60.0,
        request_timeout_seconds: float = 300.0,
    ) -> None:
        if profile.backend != "openai" or not profile.base_url or not profile.model:
            raise ValueError("ChatClient needs an 'openai' profile with base_url and model")
        self.url = profile.base_url.rstrip("/") + "/chat/completions"
        self.model = profile.model
        self.api_key_env = profile.api_key_env
        self.session = session
        # Read at call time so a rotated key is picked up without a restart.
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self.max_retries = max_retries
        self.max_backoff = max_backoff_seconds
        self.timeout = aiohttp.ClientTimeout(total=request_timeout_seconds)

    def setup_problem(self) -> str | None:
        """Why no request can be made (the API key variable is unset), or None."""
        if self.api_key_env is not None and not self.environ.get(self.api_key_env):
            return f"the server environment variable {self.api_key_env} is not set"
        return None

    def _headers(self) -> dict[str, str]:
        problem = self.setup_problem()
        if problem is not None:
            raise ChatError(problem)
        if self.api_key_env is None:
            return {}
        return {"Authorization": f"Bearer {self.environ[self.api_key_env]}"}

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """One completion; returns the decoded response object or raises ChatError."""
        body = {"model": self.model, "messages": messages, "tools": tools, "tool_choice": "auto"}
        headers = self._headers()
        last = ""
        for attempt in range(self.max_retries + 1):
            delay = min(self.max_backoff, 2.0**attempt)
            try:
                async with self.session.post(
                    self.url, json=body, headers=headers, timeout=self.timeout
                ) as resp:
                    raw = await resp.read()
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"connection failed ({type(exc).__name__})"
            else:
                if status == 200:
                    return _decode(raw)
                if status not in _RETRYABLE:
                    excerpt = raw[:200].decode("utf-8", errors="replace")
                    raise ChatError(f"the model server answered HTTP {status}: {excerpt}")
                last = f"HTTP {status}"
                delay = _retry_after(retry_after, delay, self.max_backoff)
            if attempt < self.max_retries:
                await self.sleep(delay)
        raise ChatError(
            f"the model server kept failing ({last}) after {self.max_retries + 1} attempts"
        )


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ChatError("malformed response from the model server: not JSON") from None
    if not isinstance(data, dict):
        raise ChatError("malformed response from the model server: not a JSON object")
    return data


def _retry_after(value: str | None, default: float, cap: float) -> float:
    if value is None:
        return default
    try:
        return min(cap, max(0.0, float(value)))
    except ValueError:
        return default  # an HTTP-date: rare from model servers; our own backoff is fine


@dataclass
class ChatOutcome:
    """How a tool loop ended."""

    outcome: BuilderOutcome
    failure_reason: str | None = None
    final_args: dict[str, Any] | None = None
    tokens_used: int = 0
    problems: list[str] = field(default_factory=list)


async def run_tool_loop(
    client: ChatClient,
    state: ChatOutcome,
    *,
    system: str,
    user: str,
    handlers: Mapping[str, ToolHandler],
    tools: list[dict[str, Any]],
    final_tool: str,
    token_budget: int,
    max_turns: int,
) -> ChatOutcome:
    """Converse until the model calls `final_tool`, or a turn/token/server limit stops it.

    `state` is filled in as the loop goes, so tokens spent before a timeout are not lost.
    """
    try:
        return await _converse(
            client, state, system, user, handlers, tools, final_tool, token_budget, max_turns
        )
    except ChatError as exc:
        state.outcome, state.failure_reason = BuilderOutcome.FAILED, str(exc)
        return state


async def _converse(
    client: ChatClient,
    state: ChatOutcome,
    system: str,
    user: str,
    handlers: Mapping[str, ToolHandler],
    tools: list[dict[str, Any]],
    final_tool: str,
    token_budget: int,
    max_turns: int,
) -> ChatOutcome:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system},
        {"role": "user", "content": user},
    ]
    for _turn in range(max_turns):
        response = await client.complete(messages, tools)
        message, used = _parse_response(response, state.problems)
        state.tokens_used += used
        if state.tokens_used > token_budget:
            return _capped(state, token_budget)
        calls = message.get("tool_calls") or []
        messages.append(
            {"role": "assistant", "content": message.get("content"), "tool_calls": calls}
            if calls
            else {"role": "assistant", "content": message.get("content") or ""}
        )
        if not calls:
            messages.append(
                {"role": "user", "content": f"Use the tools; call {final_tool} when done."}
            )
        for call in calls:
            name, args, call_id = _parse_call(call)
            if name == final_tool and isinstance(args, dict):
                state.outcome, state.final_args = BuilderOutcome.OK, args
                return state
            if name == final_tool:
                answer = "error: arguments must be a JSON object"
            else:
                answer = await _invoke(handlers, name, args, state)
            messages.append({"role": "tool", "tool_call_id": call_id, "content": answer})
        # The next prompt repeats this whole conversation, so it costs at least this much again.
        if state.tokens_used + used > token_budget:
            return _capped(state, token_budget)
    state.failure_reason = f"the model did not call {final_tool} within {max_turns} turns"
    return state


def _capped(state: ChatOutcome, budget: int) -> ChatOutcome:
    state.failure_reason = (
        f"stopped at the phase's token cap: {state.tokens_used} tokens used of {budget}, "
        "and the next turn would exceed it"
    )
    return state


def _parse_response(response: dict[str, Any], problems: list[str]) -> tuple[dict[str, Any], int]:
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ChatError("malformed response from the model server: no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise ChatError("malformed response from the model server: choice has no message")
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise ChatError("malformed response from the model server: tool_calls is not a list")
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    counts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    valid = [c for c in counts if isinstance(c, int) and not isinstance(c, bool) and c >= 0]
    if len(valid) == 2:
        return message, sum(valid)
    # Without usage we cannot trust the budget; estimate roughly (4 characters a token).
    estimate = len(json.dumps(response)) // 4 + 1
    problems.append(f"a response had no valid usage; estimated {estimate} tokens")
    return message, estimate


def _parse_call(call: object) -> tuple[str, object, str]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return "", None, ""
    function = call["function"]
    call_id = str(call.get("id", ""))
    name = function.get("name")
    try:
        args = json.loads(function.get("arguments") or "{}")
    except (TypeError, ValueError):
        args = None
    return (name if isinstance(name, str) else ""), args, call_id


async def _invoke(
    handlers: Mapping[str, ToolHandler], name: str, args: object, state: ChatOutcome
) -> str:
    handler = handlers.get(name)
    if handler is None:
        return f"error: unknown tool {name!r}"
    if not isinstance(args, dict):
        return "error: arguments must be a JSON object"
    try:
        # File I/O off the event loop: writes may be up to MAX_WRITE_BYTES.
        return await asyncio.to_thread(handler, args)
    except ToolError as exc:
        if "escapes" in str(exc) or "not allowed" in str(exc):
            state.problems.append(f"refused path from the model: {exc}")
        return f"error: {exc}"
    except OSError as exc:
        return f"error: {exc.strerror or type(exc).__name__}"


class OpenAIBuilder:
    """The `openai` Builder backend. `has_change` works as in CommandBuilder."""

    def __init__(
        self, client: ChatClient, profile: BuilderProfile, has_change: HasChange | None = None
    ) -> None:
        self.client = client
        self.profile = profile
        self.has_change = has_change

    async def run(self, spec: PhaseSpec, workspace: Path) -> BuilderResult:
        """Run one attempt of `spec` in `workspace` through tool calls."""
        files = WorkspaceFiles(workspace)
        handlers: dict[str, ToolHandler] = {
            "list_files": files.list_files,
            "read_file": files.read_file,
            "write_file": files.write_file,
            "delete_file": files.delete_file,
        }
        loop = asyncio.get_running_loop()
        started = loop.time()
        chat = ChatOutcome(BuilderOutcome.FAILED)
        setup_problem = self.client.setup_problem()
        if setup_problem is not None:
            return BuilderResult(outcome=BuilderOutcome.ERROR, failure_reason=setup_problem)
        try:
            async with asyncio.timeout(self.profile.timeout_seconds):
                await run_tool_loop(
                    self.client,
                    chat,
                    system=BUILDER_SYSTEM_PROMPT,
                    user=spec.to_prompt(),
                    handlers=handlers,
                    tools=tool_definitions([*handlers, "finish"]),
                    final_tool="finish",
                    token_budget=spec.budgets_left.tokens,
                    max_turns=self.profile.max_turns,
                )
        except TimeoutError:
            chat.outcome = BuilderOutcome.TIMED_OUT
            chat.failure_reason = (
                f"the model did not finish within {self.profile.timeout_seconds} s"
            )
        report = ParsedReport(tokens_used=chat.tokens_used, problems=chat.problems)
        if chat.final_args is not None:
            parse_summary(chat.final_args.get("summary"), report)
            parse_issues(chat.final_args.get("issues"), report)
        outcome, reason = chat.outcome, chat.failure_reason
        if (
            outcome is BuilderOutcome.OK
            and self.has_change is not None
            and not await asyncio.to_thread(self.has_change, workspace)
        ):
            outcome, reason = BuilderOutcome.NO_CHANGE, "the model finished without a change"
        return BuilderResult(
            outcome=outcome,
            tokens_used=report.tokens_used,
            summary=report.summary,
            issues=tuple(report.issues),
            failure_reason=reason,
            duration_seconds=loop.time() - started,
            problems=tuple(report.problems),
        )
