"""A small fake Chat Completions server that answers from a script and records every request.

async with FakeChat([completion(tool_call("write_file", path="a", content="x"))]) as fake:
    profile = BuilderProfile(backend="openai", base_url=fake.base_url, model="m")
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer: a JSON object, or raw text for malformed bodies."""

    body: dict[str, Any] | str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


Step = Reply | Callable[[dict[str, Any]], Reply]
_ids = itertools.count(1)


def tool_call(name: str, arguments: str | None = None, **args: Any) -> dict[str, Any]:
    """A tool call as a model emits it (`arguments` given raw overrides the keyword args)."""
    return {
        "id": f"call_{next(_ids)}",
        "type": "function",
        "function": {"name": name, "arguments": arguments or json.dumps(args)},
    }


def completion(
    *calls: dict[str, Any],
    content: str | None = None,
    prompt_tokens: int = 100,
    completion_tokens: int = 20,
    usage: bool = True,
) -> Reply:
    """A 200 answer whose message carries the given tool calls."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = list(calls)
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return Reply(body)


class FakeChat:
    """The server; `requests` holds each request's JSON body, `auth` its Authorization header."""

    def __init__(self, script: list[Step]) -> None:
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def tool_results(self, request_index: int) -> list[str]:
        """The tool messages' contents in one recorded request."""
        messages = self.requests[request_index]["messages"]
        return [m["content"] for m in messages if m["role"] == "tool"]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.auth.append(request.headers.get("Authorization"))
        if not self.script:
            return web.json_response({"error": "script exhausted"}, status=418)
        step = self.script.pop(0)
        reply = step if isinstance(step, Reply) else step(body)
        if isinstance(reply.body, str):
            return web.Response(text=reply.body, status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    async def __aenter__(self) -> FakeChat:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
