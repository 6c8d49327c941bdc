"""The command backend against real subprocesses (tests/agents/scripts/builder.py), sandboxed.

Every profile here runs under bubblewrap (the default) unless a test is about `sandbox = "none"`;
the adversarial cases are in test_sandbox_adversarial.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.agents.command import CommandBuilder, CommandRunner
from app.agents.contract import MAX_REPORTED_TOKENS, BuilderResult, PhaseSpec
from app.config import BuilderProfile
from app.domain.effects import BudgetsLeft
from app.domain.events import BuilderOutcome, Finding
from app.domain.issue_record import Severity
from tests.agents.processes import nothing_left_with
from tests.sandboxing import read_only_paths, sandbox_host

SCRIPT = Path(__file__).parent / "scripts" / "builder.py"

SPEC = PhaseSpec(
    run_id="run-7",
    phase_id="p1",
    tier_id="t1",
    title="Add the feature module",
    description="Create src/feature.py.",
    task_category="feature",
    complexity="low",
    builder_mode="tweak_light",
    attempt=2,
    budgets_left=BudgetsLeft(tokens=50_000, builder_attempts=1, auditor_attempts=0, seconds=600),
    feedback=("gate: too many files changed",),
)


def tree(root: Path) -> dict[str, bytes]:
    """Everything under root: file bytes, or a symlink's target."""
    state: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            state[rel] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            state[rel] = path.read_bytes()
    return state


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A run directory in the data directory (tmp_path/data) holding the work tree `tree/`."""
    ws = tmp_path / "data" / "run" / "tree"
    (ws / "pkg").mkdir(parents=True)
    (ws.parent / "manifest.json").write_text("{}")  # the workspace module keeps files beside it
    (ws / "README.md").write_text("hello\n")
    (ws / "pkg" / "mod.py").write_text("x = 1\n")
    return ws


def scratch_root(workspace: Path) -> Path:
    """Scratch lives outside the run's root, in the data directory (tmp_path/data/scratch)."""
    return workspace.parent.parent / "scratch"


def runner(workspace: Path, profile: BuilderProfile, **options: float) -> CommandRunner:
    """A runner for a server whose data directory holds `workspace`."""
    host = sandbox_host(workspace.parent.parent)
    return CommandRunner(
        profile, scratch_root=scratch_root(workspace), sandbox=host, name="builders.t", **options
    )


def outside(path: Path, root: Path) -> bool:
    return not path.is_relative_to(root.resolve())


def change_detector(workspace: Path) -> Callable[[Path], bool]:
    baseline = tree(workspace)
    return lambda ws: tree(ws) != baseline


async def run_mode(
    workspace: Path, mode: str, *, detect_change: bool = True, **profile: object
) -> BuilderResult:
    settings: dict[str, object] = {
        "backend": "command",
        "command": [sys.executable, str(SCRIPT), mode],
        "timeout_seconds": 30,
        "read_only": read_only_paths(),
        **profile,
    }
    built = runner(workspace, BuilderProfile.model_validate(settings), kill_grace_seconds=0.3)
    has_change = change_detector(workspace) if detect_change else None
    return await CommandBuilder(built, has_change).run(SPEC, workspace)


def assert_workspace_usable(workspace: Path, *, also_beside: tuple[str, ...] = ()) -> None:
    assert workspace.is_dir()
    probe = workspace / "probe.txt"
    probe.write_text("still usable")
    probe.unlink()
    # Every attempt's scratch dir is removed afterwards, and nothing was left beside the tree.
    assert list(scratch_root(workspace).iterdir()) == []
    assert sorted(os.listdir(workspace.parent)) == sorted(["manifest.json", "tree", *also_beside])


async def test_a_builder_edits_and_reports_through_the_contract_files(workspace: Path) -> None:
    result = await run_mode(workspace, "edit")

    assert result.outcome is BuilderOutcome.OK
    assert result.failure_reason is None
    assert result.exit_code == 0
    assert result.tokens_used == 1234
    assert result.summary == "# Add the feature module"
    assert result.issues == (Finding("k1", Severity.MINOR, "style", message="e"),)
    assert result.problems == ()
    assert (workspace / "src" / "feature.py").read_text() == "# Add the feature module\n"
    assert_workspace_usable(workspace)


def test_the_phase_file_and_prompt_carry_the_contract_fields() -> None:
    data = json.loads(SPEC.to_json())
    assert data == {
        "contract_version": 1,
        "run_id": "run-7",
        "phase_id": "p1",
        "tier_id": "t1",
        "title": "Add the feature module",
        "description": "Create src/feature.py.",
        "task_category": "feature",
        "complexity": "low",
        "builder_mode": "tweak_light",
        "attempt": 2,
        "budgets_left": {
            "tokens": 50_000,
            "builder_attempts": 1,
            "auditor_attempts": 0,
            "seconds": 600,
        },
        "feedback": ["gate: too many files changed"],
    }
    prompt = SPEC.to_prompt()
    assert prompt.startswith("# Add the feature module\n")
    assert "- gate: too many files changed" in prompt
    assert "50000 tokens" in prompt


async def test_the_environment_is_scrubbed_of_server_credentials(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PRIVATE_KEY", "WEBHOOK_SECRET", "DATABASE_URL", "GITHUB_TOKEN", "OPENAI_API_KEY"):
        monkeypatch.setenv(name, f"secret-{name}")
    monkeypatch.setenv("LANG", "C.UTF-8")
    profile_env = {"AGENT_MODEL": "small", "DATABASE_URL": "postgres://leak"}

    result = await run_mode(workspace, "env", env=profile_env)

    assert result.outcome is BuilderOutcome.OK
    env = json.loads(result.stdout_tail)
    assert "secret" not in result.stdout_tail
    assert "leak" not in result.stdout_tail
    scratch = Path(env["AUTOPACK_RESULT_FILE"]).parent
    assert set(env) - {"PWD", "SHLVL", "_", "LC_CTYPE"} == {
        "PATH",
        "LANG",
        "HOME",
        "TMPDIR",
        "AGENT_MODEL",
        "AUTOPACK_PHASE_FILE",
        "AUTOPACK_PROMPT_FILE",
        "AUTOPACK_RESULT_FILE",
    }
    assert env["LANG"] == "C.UTF-8"
    assert env["HOME"] == str(scratch / "home")
    assert env["TMPDIR"] == str(scratch / "tmp")
    assert env["AGENT_MODEL"] == "small"
    # The contract files live outside the work tree.
    assert outside(scratch, workspace)
    assert any("DATABASE_URL is reserved" in p for p in result.problems)
    assert_workspace_usable(workspace)


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
async def test_a_hang_is_killed_with_everything_it_started(workspace: Path, sandbox: str) -> None:
    token = f"hang-{secrets.token_hex(8)}"
    result = await run_mode(
        workspace, "hang", timeout_seconds=1, sandbox=sandbox, env={"TEST_TOKEN": token}
    )

    assert result.outcome is BuilderOutcome.TIMED_OUT
    assert result.failure_reason == "the command ran past its 1 s timeout and was killed"
    assert "grandchild ready" in result.stdout_tail
    assert await nothing_left_with(token)
    (workspace / "grandchild.pid").unlink()
    assert_workspace_usable(workspace)


async def test_cancelling_an_attempt_kills_everything_it_started(workspace: Path) -> None:
    token = f"cancel-{secrets.token_hex(8)}"
    task = asyncio.create_task(run_mode(workspace, "hang", env={"TEST_TOKEN": token}))
    marker = workspace / "grandchild.pid"
    for _ in range(400):  # wait (bounded) until the builder has started its grandchild
        if marker.exists() and marker.read_text().strip():
            break
        await asyncio.sleep(0.025)
    assert marker.exists()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await nothing_left_with(token)
    marker.unlink()
    assert_workspace_usable(workspace)


async def test_megabytes_of_output_are_capped(workspace: Path) -> None:
    result = await run_mode(workspace, "flood", max_output_bytes=64 * 1024)

    assert result.outcome is BuilderOutcome.OK
    assert result.stdout_tail.endswith("THE END\n")
    assert "earlier bytes dropped" in result.stdout_tail
    assert len(result.stdout_tail) < 64 * 1024 + 100
    assert len(result.stderr_tail) < 64 * 1024 + 100
    assert (workspace / "flooded.txt").read_text() == "done"


@pytest.mark.parametrize("mode", ["outside", "outside_modify"])
async def test_writing_beside_the_work_tree_fails_inside_the_sandbox(
    workspace: Path, mode: str
) -> None:
    result = await run_mode(workspace, mode)

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == "the command exited with code 1"
    assert "Read-only file system" in result.stderr_tail
    assert (workspace.parent / "manifest.json").read_text() == "{}"
    assert_workspace_usable(workspace)


@pytest.mark.parametrize(
    ("mode", "entry"), [("outside", "../outside.txt"), ("outside_modify", "../manifest.json")]
)
async def test_without_the_sandbox_writing_outside_is_detected(
    workspace: Path, mode: str, entry: str
) -> None:
    result = await run_mode(workspace, mode, sandbox="none")

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == f"the command wrote outside the workspace: {entry}"
    assert_workspace_usable(workspace, also_beside=("outside.txt",) if mode == "outside" else ())


async def test_a_symlink_to_etc_passwd_is_left_for_the_gate_to_refuse(workspace: Path) -> None:
    # The backend only reports; the workspace diff reports a symlink and the gate refuses it.
    result = await run_mode(workspace, "symlink")

    assert result.outcome is BuilderOutcome.OK
    assert os.readlink(workspace / "leak") == "/etc/passwd"
    assert_workspace_usable(workspace)


async def test_deleting_everything_is_a_change_the_gate_judges(workspace: Path) -> None:
    result = await run_mode(workspace, "delete_all")

    assert result.outcome is BuilderOutcome.OK
    assert os.listdir(workspace) == []
    assert_workspace_usable(workspace)


async def test_the_work_tree_itself_cannot_be_removed_inside_the_sandbox(workspace: Path) -> None:
    result = await run_mode(workspace, "remove_workspace")

    # Its contents go; the directory is the sandbox's mount point, so it stays.
    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == "the command exited with code 1"
    assert os.listdir(workspace) == []
    assert_workspace_usable(workspace)


async def test_without_the_sandbox_removing_the_workspace_fails_the_attempt(
    workspace: Path,
) -> None:
    result = await run_mode(workspace, "remove_workspace", sandbox="none")

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason == "the command removed the workspace directory itself"


async def test_exit_zero_without_a_change_is_no_change(workspace: Path) -> None:
    result = await run_mode(workspace, "noop")

    assert result.outcome is BuilderOutcome.NO_CHANGE
    assert result.failure_reason == "the builder exited 0 but changed nothing"
    assert result.tokens_used == 10


async def test_without_a_change_detector_exit_zero_is_ok(workspace: Path) -> None:
    result = await run_mode(workspace, "noop", detect_change=False)

    assert result.outcome is BuilderOutcome.OK


async def test_a_non_zero_exit_fails_with_the_exit_code(workspace: Path) -> None:
    result = await run_mode(workspace, "fail")

    assert result.outcome is BuilderOutcome.FAILED
    assert result.exit_code == 3
    assert result.failure_reason == "the command exited with code 3"
    assert "compilation failed" in result.stderr_tail
    assert "result file missing; tokens counted as 0" in result.problems
    assert_workspace_usable(workspace)


async def test_a_memory_hog_fails_cleanly_under_the_memory_limit(workspace: Path) -> None:
    result = await run_mode(workspace, "memory_hog", memory_mb=256)

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason is not None
    assert "MemoryError" in result.failure_reason
    assert "256 MB" in result.failure_reason
    assert_workspace_usable(workspace)


async def test_a_cpu_hog_is_stopped_by_the_cpu_limit(workspace: Path) -> None:
    result = await run_mode(workspace, "cpu_hog", cpu_seconds=1, timeout_seconds=20)

    assert result.outcome is BuilderOutcome.FAILED
    assert result.failure_reason is not None
    assert "CPU limit 1 s" in result.failure_reason


@pytest.mark.parametrize(
    ("mode", "tokens", "problem"),
    [
        ("result_missing", 0, "result file missing; tokens counted as 0"),
        ("result_malformed", 0, "result file malformed: JSONDecodeError"),
        ("result_list", 0, "result file malformed: top level is not a JSON object"),
        ("result_negative", 0, "tokens_used was negative (-5); counted as 0"),
        (
            "result_absurd",
            MAX_REPORTED_TOKENS,
            f"tokens_used was absurd ({10**15}); counted as {MAX_REPORTED_TOKENS}",
        ),
        ("result_wrong_types", 0, "tokens_used is not an integer (str); 0 used"),
        ("result_symlink", 0, "result file is not a regular file; ignored"),
    ],
)
async def test_bad_result_files_are_recorded_problems_not_crashes(
    workspace: Path, mode: str, tokens: int, problem: str
) -> None:
    result = await run_mode(workspace, mode)

    assert result.outcome is BuilderOutcome.OK
    assert result.tokens_used == tokens
    assert problem in result.problems
    assert "root:" not in result.summary


async def test_wrong_types_in_the_result_drop_only_the_bad_parts(workspace: Path) -> None:
    result = await run_mode(workspace, "result_wrong_types")

    assert result.summary == ""
    assert result.issues == ()
    assert "summary is not a string; ignored" in result.problems
    assert sum("dropped" in p for p in result.problems) == 2


async def test_a_missing_program_is_an_error_not_a_crash(workspace: Path) -> None:
    profile = BuilderProfile(backend="command", command=["/nonexistent/agent-cli"])
    result = await CommandBuilder(runner(workspace, profile)).run(SPEC, workspace)

    assert result.outcome is BuilderOutcome.ERROR
    assert result.failure_reason is not None
    assert "could not start '/nonexistent/agent-cli'" in result.failure_reason
    assert result.problems == ()
    assert_workspace_usable(workspace)


async def test_a_scratch_root_inside_the_work_tree_is_refused(workspace: Path) -> None:
    profile = BuilderProfile(backend="command", command=[sys.executable, str(SCRIPT), "noop"])
    host = sandbox_host(workspace.parent.parent)
    inside = CommandRunner(profile, scratch_root=workspace / "scratch", sandbox=host)
    result = await CommandBuilder(inside).run(SPEC, workspace)

    assert result.outcome is BuilderOutcome.ERROR
    assert result.failure_reason == "the scratch directory must be outside the work tree"
    assert not (workspace / "scratch").exists()


DOCS = Path(__file__).parents[2] / "docs" / "builders.md"


def wrapper_from_docs(name: str) -> str:
    """The python block after `<!-- wrapper: NAME -->` in docs/builders.md."""
    text = DOCS.read_text()
    after = text.split(f"<!-- wrapper: {name} -->", 1)[1]
    return after.split("```python\n", 1)[1].split("\n```", 1)[0]


@pytest.mark.parametrize(
    ("cli", "marker", "tokens", "summary"),
    [
        ("claude", "CLAUDE_WAS_HERE.txt", 123, "edited with key sk-from-file"),
        ("codex", "CODEX_WAS_HERE.txt", 114, "codex done with key sk-from-file"),
    ],
)
async def test_the_documented_wrappers_work(
    workspace: Path, tmp_path: Path, cli: str, marker: str, tokens: int, summary: str
) -> None:
    # Installed as an operator would: wrapper, CLI and key outside the data directory, in a
    # place the sandbox hides (under /tmp here) and shown again with `read_only`.
    agent = tmp_path / "opt-agent"
    wrapper = agent / f"{cli}-wrapper.py"
    bindir = agent / "bin"
    bindir.mkdir(parents=True)
    wrapper.write_text(wrapper_from_docs(cli))
    shim = bindir / cli
    fake = Path(__file__).parent / "scripts" / "fake_agent_cli.py"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" {cli} "$@"\n')
    shim.chmod(0o755)
    key_file = agent / "key"
    key_file.write_text("sk-from-file\n")
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "AGENT_KEY_FILE": str(key_file)}

    result = await run_mode(
        workspace,
        "unused",
        command=[sys.executable, str(wrapper)],
        env=env,
        read_only=[*read_only_paths(), str(agent)],
    )

    assert result.outcome is BuilderOutcome.OK, result.stderr_tail
    assert result.tokens_used == tokens
    assert result.summary == summary
    assert result.problems == ()
    assert (workspace / marker).read_text() == "# Add the feature module\n"
