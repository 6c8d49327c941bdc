"""Auditors through both backends: approve, reject and patch verdicts, and bad answers."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from app.agents.auditor import AUDITOR_INSTRUCTIONS, CommandAuditor, OpenAIAuditor
from app.agents.command import CommandRunner
from app.agents.contract import AuditRequest, AuditResult, PhaseSpec
from app.agents.openai_backend import ChatClient
from app.config import BuilderProfile
from app.domain.effects import BudgetsLeft
from app.domain.events import AuditorVerdict, Finding
from app.domain.issue_record import Severity
from tests.agents.fake_openai import FakeChat, Reply, Step, completion, tool_call
from tests.sandboxing import read_only_paths, sandbox_host

SCRIPT = Path(__file__).parent / "scripts" / "auditor.py"
SPEC = PhaseSpec(
    run_id="run-3",
    phase_id="auth-1",
    tier_id="t1",
    title="Harden login",
    description="Rate-limit login attempts.",
    task_category="security_auth",
    complexity="high",
    builder_mode="refactor_heavy",
    attempt=3,
    budgets_left=BudgetsLeft(tokens=20_000, builder_attempts=0, auditor_attempts=1, seconds=300),
)
REQUEST = AuditRequest(
    spec=SPEC,
    diff="--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-print('a')\n+print('b')\n",
    ci_failures=("tests/test_login.py::test_rate_limit failed",),
    gate_findings=(Finding("gate:size", Severity.MINOR, "size", message="12 files"),),
    profile="security_review",
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "run" / "tree"
    (ws / "src").mkdir(parents=True)
    (ws / "src" / "app.py").write_text("print('b')\n")
    return ws


async def command_review(
    workspace: Path, mode: str, request: AuditRequest = REQUEST
) -> AuditResult:
    profile = BuilderProfile(
        backend="command", command=[sys.executable, str(SCRIPT), mode], read_only=read_only_paths()
    )
    root = workspace.parent.parent
    runner = CommandRunner(profile, scratch_root=root / "scratch", sandbox=sandbox_host(root))
    return await CommandAuditor(runner).review(request, workspace)


async def test_command_approve_sees_the_whole_request(workspace: Path) -> None:
    verdict = await command_review(workspace, "approve")

    assert verdict.verdict is AuditorVerdict.APPROVE
    assert verdict.failure_reason is None
    assert verdict.summary == "security_review|auth-1|--- a/src/app.py|1 ci|1 gate|True"
    assert verdict.tokens_used == 77
    assert verdict.patch is None


async def test_command_reject_carries_issues(workspace: Path) -> None:
    verdict = await command_review(workspace, "reject")

    assert verdict.verdict is AuditorVerdict.REJECT
    assert verdict.failure_reason is None
    assert [(i.issue_key, i.severity) for i in verdict.issues] == [("a1", "major")]


async def test_command_patch_is_returned_as_data_not_applied(workspace: Path) -> None:
    verdict = await command_review(workspace, "patch")

    assert verdict.verdict is AuditorVerdict.PATCH
    assert verdict.patch == {"src/app.py": "print('fixed')\n", "junk.txt": None}
    assert verdict.tokens_used == 9
    assert (workspace / "src" / "app.py").read_text() == "print('b')\n"


@pytest.mark.parametrize(
    ("mode", "reason", "problem"),
    [
        (
            "patch_escape",
            "the auditor chose patch but gave no valid patch",
            "patch path '../evil.py' is not a plain relative path; patch refused",
        ),
        ("patch_empty", "the auditor chose patch but gave no valid patch", None),
        ("maybe", "the auditor's verdict is not approve, reject or patch", None),
        ("crash", "the command exited with code 1", "result file missing; tokens counted as 0"),
    ],
)
async def test_command_bad_answers_are_failed_reviews(
    workspace: Path, mode: str, reason: str, problem: str | None
) -> None:
    verdict = await command_review(workspace, mode)

    assert verdict.verdict is AuditorVerdict.REJECT
    assert verdict.failure_reason == reason
    assert verdict.patch is None
    if problem is not None:
        assert problem in verdict.problems


async def test_an_unknown_profile_is_refused(workspace: Path) -> None:
    request = AuditRequest(spec=SPEC, diff="x", profile="yolo_review")
    verdict = await command_review(workspace, "approve", request)

    assert verdict.failure_reason == "unknown auditor profile 'yolo_review'"


def test_each_profile_has_its_own_instructions() -> None:
    assert set(AUDITOR_INSTRUCTIONS) == {
        "schema_review",
        "security_review",
        "orchestrator_review",
        "debt_cleanup_review",
    }
    assert len(set(AUDITOR_INSTRUCTIONS.values())) == 4


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def openai_review(
    session: aiohttp.ClientSession, workspace: Path, script: list[Step]
) -> tuple[AuditResult, FakeChat]:
    async with FakeChat(script) as fake:
        profile = BuilderProfile(backend="openai", base_url=fake.base_url, model="reviewer")
        auditor = OpenAIAuditor(ChatClient(profile, session, environ={}), profile)
        verdict = await auditor.review(REQUEST, workspace)
    return verdict, fake


async def test_openai_approve_after_reading_the_tree(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    script: list[Step] = [
        completion(tool_call("read_file", path="src/app.py"), prompt_tokens=40),
        completion(
            tool_call("submit_verdict", verdict="approve", summary="fine"), prompt_tokens=60
        ),
    ]
    verdict, fake = await openai_review(session, workspace, script)

    assert verdict.verdict is AuditorVerdict.APPROVE
    assert verdict.summary == "fine"
    assert verdict.tokens_used == 60 + 80
    system, user = fake.requests[0]["messages"][:2]
    assert system["content"] == AUDITOR_INSTRUCTIONS["security_review"]
    assert "tests/test_login.py::test_rate_limit failed" in user["content"]
    assert "-print('a')" in user["content"]
    assert "gate:size" in user["content"]
    names = [t["function"]["name"] for t in fake.requests[0]["tools"]]
    assert names == ["list_files", "read_file", "submit_verdict"]
    assert fake.tool_results(1) == ["print('b')\n"]


async def test_openai_reject_with_issues_and_no_write_tool(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    issue = {"issue_key": "sec:1", "severity": "major", "category": "auth", "evidence": "e"}
    script: list[Step] = [
        completion(tool_call("write_file", path="src/app.py", content="hacked")),
        completion(tool_call("submit_verdict", verdict="reject", summary="no", issues=[issue])),
    ]
    verdict, fake = await openai_review(session, workspace, script)

    assert verdict.verdict is AuditorVerdict.REJECT
    assert verdict.failure_reason is None
    assert verdict.issues == (Finding("sec:1", Severity.MAJOR, "auth", message="e"),)
    assert fake.tool_results(1) == ["error: unknown tool 'write_file'"]
    assert (workspace / "src" / "app.py").read_text() == "print('b')\n"


async def test_openai_patch_verdict(session: aiohttp.ClientSession, workspace: Path) -> None:
    patch = [{"path": "src/app.py", "content": "print('c')\n"}, {"path": "old.py", "content": None}]
    script: list[Step] = [
        completion(tool_call("submit_verdict", verdict="patch", summary="p", patch=patch))
    ]
    verdict, _fake = await openai_review(session, workspace, script)

    assert verdict.verdict is AuditorVerdict.PATCH
    assert verdict.patch == {"src/app.py": "print('c')\n", "old.py": None}
    assert (workspace / "src" / "app.py").read_text() == "print('b')\n"


async def test_openai_server_failure_is_a_failed_review(
    session: aiohttp.ClientSession, workspace: Path
) -> None:
    verdict, _fake = await openai_review(session, workspace, [Reply("{broken", status=200)])

    assert verdict.verdict is AuditorVerdict.REJECT
    assert verdict.failure_reason == "malformed response from the model server: not JSON"
