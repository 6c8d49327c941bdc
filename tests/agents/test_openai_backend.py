"""The openai backend against a fake Chat Completions server (the only mock)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.agents.contract import BuilderResult, PhaseSpec
from app.agents.openai_backend import ChatClient, OpenAIBuilder
from app.config import BuilderProfile
from app.domain.effects import BudgetsLeft
from app.domain.events import BuilderOutcome
from tests.agents.fake_openai import FakeChat, Reply, Step, completion, tool_call

SPEC = PhaseSpec(
    run_id="run-1",
    phase_id="p1",
    tier_id="t1",
    title="Rename the greeting",
    description="Change hello to goodbye.",
    task_category="feature",
    complexity="low",
    builder_mode="tweak_light",
    attempt=1,
    budgets_left=BudgetsLeft(tokens=10_000, builder_attempts=2, auditor_attempts=0, seconds=600),
)
FINISH = tool_call("finish", summary="done", issues=[])


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "run" / "tree"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "greet.py").write_text("print('hello')\n")
    (ws / "old.txt").write_text("obsolete\n")
    return ws


class Run:
    """One builder run against a scripted fake, with the sleeps it asked for."""

    def __init__(self, fake: FakeChat, result: BuilderResult, sleeps: list[float]) -> None:
        self.fake, self.result, self.sleeps = fake, result, sleeps


async def run_script(
    session: aiohttp.ClientSession,
    workspace: Path,
    script: list[Step],
    *,
    spec: PhaseSpec = SPEC,
    environ: dict[str, str] | None = None,
    has_change: Callable[[Path], bool] | None = None,
    **profile: Any,
) -> Run:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with FakeChat(script) as fake:
        settings = {"backend": "openai", "base_url": fake.base_url, "model": "fake-model"}
        config = BuilderProfile.model_validate({**settings, **profile})
        client = ChatClient(config, session, environ=environ or {}, sleep=sleep)
        result = await OpenAIBuilder(client, config, has_change).run(spec, workspace)
    return Run(fake, result, sleeps)


async def test_a_scripted_edit_writes_reads_deletes_and_finishes(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    issue = {"issue_key": "i1", "severity": "minor", "category": "naming", "evidence": "e"}
    script: list[Step] = [
        completion(tool_call("list_files", path="."), prompt_tokens=100, completion_tokens=10),
        completion(
            tool_call("read_file", path="src/greet.py"),
            tool_call("write_file", path="src/greet.py", content="print('goodbye')\n"),
            tool_call("write_file", path="docs/new/notes.md", content="# notes\n"),
            prompt_tokens=200,
            completion_tokens=20,
        ),
        completion(tool_call("delete_file", path="old.txt"), prompt_tokens=300),
        completion(tool_call("finish", summary="renamed", issues=[issue]), prompt_tokens=400),
    ]
    run = await run_script(
        session, workspace, script, api_key_env="MODEL_KEY", environ={"MODEL_KEY": "sk-test"}
    )

    assert run.result.outcome is BuilderOutcome.OK
    assert run.result.failure_reason is None
    assert run.result.summary == "renamed"
    assert [i.issue_key for i in run.result.issues] == ["i1"]
    assert run.result.tokens_used == 110 + 220 + 320 + 420
    assert (workspace / "src" / "greet.py").read_text() == "print('goodbye')\n"
    assert (workspace / "docs" / "new" / "notes.md").read_text() == "# notes\n"
    assert not (workspace / "old.txt").exists()
    fake = run.fake
    assert fake.auth == ["Bearer sk-test"] * 4
    first = fake.requests[0]
    assert first["model"] == "fake-model"
    assert first["messages"][1]["content"] == SPEC.to_prompt()
    names = [t["function"]["name"] for t in first["tools"]]
    assert names == ["list_files", "read_file", "write_file", "delete_file", "finish"]
    assert fake.tool_results(1) == ["old.txt\nsrc/\nsrc/greet.py"]
    read, write, new = fake.tool_results(2)[1:]
    assert read == "print('hello')\n"
    assert write == "wrote 17 bytes to src/greet.py"
    assert new == "wrote 8 bytes to docs/new/notes.md"
    assert fake.tool_results(3)[-1] == "deleted old.txt"


async def test_path_escapes_are_refused_and_reported_to_the_model(
    session: aiohttp.ClientSession, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace / "link").symlink_to(outside)
    (workspace / "passwd").symlink_to("/etc/passwd")
    attempts = [
        tool_call("write_file", path="../escape.txt", content="x"),
        tool_call("write_file", path="/tmp/abs.txt", content="x"),
        tool_call("write_file", path="link/through.txt", content="x"),
        tool_call("read_file", path="passwd"),
        tool_call("list_files", path="link"),
        tool_call("delete_file", path="src/../../run"),
    ]
    run = await run_script(session, workspace, [completion(*attempts), completion(FINISH)])

    assert run.result.outcome is BuilderOutcome.OK
    errors = run.fake.tool_results(1)
    assert errors == [
        "error: ../escape.txt: '..' is not allowed",
        "error: /tmp/abs.txt: absolute paths are not allowed",
        "error: link/through.txt: escapes the workspace through a symlink",
        "error: passwd: escapes the workspace through a symlink",
        "error: link: escapes the workspace through a symlink",
        "error: src/../../run: '..' is not allowed",
    ]
    assert list(outside.iterdir()) == []
    assert not (workspace.parent / "escape.txt").exists()
    assert len([p for p in run.result.problems if p.startswith("refused path")]) == 6


async def test_deleting_a_symlink_removes_the_link_not_its_target(
    session: aiohttp.ClientSession, workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (workspace / "link.txt").symlink_to(target)
    script = [completion(tool_call("delete_file", path="link.txt")), completion(FINISH)]

    run = await run_script(session, workspace, script)

    assert run.fake.tool_results(1) == ["deleted link.txt"]
    assert not (workspace / "link.txt").is_symlink()
    assert target.read_text() == "keep me"


async def test_bad_tool_calls_become_tool_errors_not_failures(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    calls = [
        tool_call("write_file", arguments="{not json"),
        tool_call("launch_missiles", target="x"),
        tool_call("read_file", path="missing.txt"),
        tool_call("delete_file", path="src"),
        tool_call("write_file", path="src", content="x"),
        tool_call("finish", arguments="[1]"),
    ]
    run = await run_script(session, workspace, [completion(*calls), completion(FINISH)])

    assert run.result.outcome is BuilderOutcome.OK
    assert run.fake.tool_results(1) == [
        "error: arguments must be a JSON object",
        "error: unknown tool 'launch_missiles'",
        "error: missing.txt: no such file",
        "error: src: is a directory; delete its files one by one",
        "error: src: is a directory",
        "error: arguments must be a JSON object",
    ]


async def test_the_token_cap_stops_the_conversation(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    write = tool_call("write_file", path="a.txt", content="x")
    turn = completion(write, prompt_tokens=300, completion_tokens=100)
    spec = PhaseSpec(**{**SPEC.__dict__, "budgets_left": BudgetsLeft(1000, 1, 0, 600)})

    run = await run_script(session, workspace, [turn, turn, turn, completion(FINISH)], spec=spec)

    assert run.result.outcome is BuilderOutcome.FAILED
    assert run.result.tokens_used == 800
    assert run.result.failure_reason is not None
    assert "token cap" in run.result.failure_reason
    assert len(run.fake.requests) == 2  # the third turn would have crossed 1000


async def test_a_response_over_the_cap_fails_at_once(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    spec = PhaseSpec(**{**SPEC.__dict__, "budgets_left": BudgetsLeft(100, 1, 0, 600)})
    big = completion(FINISH, prompt_tokens=90, completion_tokens=20)

    run = await run_script(session, workspace, [big], spec=spec)

    assert run.result.outcome is BuilderOutcome.FAILED
    assert run.result.tokens_used == 110
    assert run.result.failure_reason is not None
    assert "110 tokens used of 100" in run.result.failure_reason


async def test_429_then_success_honours_retry_after(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    busy = Reply({"error": "slow down"}, status=429, headers={"Retry-After": "7"})
    down = Reply("upstream down", status=503)
    script = [
        busy,
        down,
        completion(tool_call("write_file", path="a", content="b")),
        completion(FINISH),
    ]

    run = await run_script(session, workspace, script)

    assert run.result.outcome is BuilderOutcome.OK
    assert run.sleeps == [7.0, 2.0]  # Retry-After, then exponential backoff for attempt 2
    assert (workspace / "a").read_text() == "b"


async def test_a_server_that_keeps_failing_fails_the_attempt(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    run = await run_script(session, workspace, [Reply("no", status=500)] * 5)

    assert run.result.outcome is BuilderOutcome.FAILED
    assert run.result.failure_reason == (
        "the model server kept failing (HTTP 500) after 5 attempts"
    )
    assert run.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_a_client_error_is_not_retried(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    run = await run_script(session, workspace, [Reply({"error": "bad key"}, status=401)])

    assert run.result.outcome is BuilderOutcome.FAILED
    assert run.result.failure_reason == ('the model server answered HTTP 401: {"error": "bad key"}')
    assert run.sleeps == []


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply("<html>oops</html>"), "malformed response from the model server: not JSON"),
        (Reply({"choices": []}), "malformed response from the model server: no choices"),
        (
            Reply({"choices": [{"message": "hi"}]}),
            "malformed response from the model server: choice has no message",
        ),
        (
            Reply({"choices": [{"message": {"tool_calls": "x"}}]}),
            "malformed response from the model server: tool_calls is not a list",
        ),
    ],
)
async def test_malformed_responses_fail_clearly(
    session: aiohttp.ClientSession, workspace: Path, reply: Reply, reason: str
) -> None:
    write = completion(tool_call("write_file", path="a", content="b"), prompt_tokens=50)
    run = await run_script(session, workspace, [write, reply])

    assert run.result.outcome is BuilderOutcome.FAILED
    assert run.result.failure_reason == reason
    assert run.result.tokens_used == 70  # what was spent before the bad answer still counts


async def test_missing_usage_is_estimated_and_recorded(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    run = await run_script(session, workspace, [completion(FINISH, usage=False)])

    assert run.result.outcome is BuilderOutcome.OK
    assert run.result.tokens_used > 0
    assert any("no valid usage" in p for p in run.result.problems)


async def test_running_out_of_turns_fails(session: aiohttp.ClientSession, workspace: Path) -> None:
    chatter = completion(content="thinking about it")
    run = await run_script(session, workspace, [chatter] * 3, max_turns=3)

    assert run.result.outcome is BuilderOutcome.FAILED
    assert run.result.failure_reason == "the model did not call finish within 3 turns"
    nudge = run.fake.requests[1]["messages"][-1]
    assert nudge == {"role": "user", "content": "Use the tools; call finish when done."}


async def test_finishing_without_a_change_is_no_change(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    run = await run_script(session, workspace, [completion(FINISH)], has_change=lambda _ws: False)

    assert run.result.outcome is BuilderOutcome.NO_CHANGE
    assert run.result.failure_reason == "the model finished without a change"


async def test_an_unset_api_key_variable_is_an_error_before_any_request(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    run = await run_script(session, workspace, [completion(FINISH)], api_key_env="MISSING_KEY")

    assert run.result.outcome is BuilderOutcome.ERROR
    assert run.result.failure_reason == "the server environment variable MISSING_KEY is not set"
    assert run.fake.requests == []


async def test_the_key_is_read_from_the_environment_at_call_time(
    session: aiohttp.ClientSession, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FakeChat([completion(FINISH), completion(FINISH)]) as fake:
        config = BuilderProfile(
            backend="openai", base_url=fake.base_url, model="m", api_key_env="ROTATING_KEY"
        )
        builder = OpenAIBuilder(ChatClient(config, session), config)
        monkeypatch.setenv("ROTATING_KEY", "first")
        await builder.run(SPEC, workspace)
        monkeypatch.setenv("ROTATING_KEY", "second")
        await builder.run(SPEC, workspace)

    assert fake.auth == ["Bearer first", "Bearer second"]
    assert json.dumps(fake.requests).count("first") == 0  # the key never enters a prompt
