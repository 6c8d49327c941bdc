"""The `command` backend: run the operator's builder command in a workspace, contained.

The command comes only from the operator's profile (an argv list, never a shell string, never
anything read from the repository). Each attempt gets a scratch directory outside the work tree
holding the contract files, HOME and TMPDIR; the environment is rebuilt from nothing so the
server's credentials never reach the builder; the process runs in the profile's sandbox
(`app/agents/sandbox.py`) under its limits, and a timeout kills all of it; output is streamed
into bounded buffers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.agents.contained import (
    Launch,
    Setup,
    collect_outputs,
    contain,
    drain,
    kill_group,
)
from app.agents.contract import BuilderResult, PhaseSpec, parse_builder_report
from app.agents.sandbox import SandboxHost
from app.config import BuilderProfile
from app.domain.events import BuilderOutcome

# Only these are taken from the server's own environment; everything else is dropped.
INHERITED_VARIABLES = ("PATH", "LANG")
# Never passed to a builder, even when an operator's profile names them.
FORBIDDEN_VARIABLES = frozenset(
    {
        "APP_ID",
        "PRIVATE_KEY",
        "PRIVATE_KEY_PATH",
        "WEBHOOK_SECRET",
        "DATABASE_URL",
        "AUTOPACK_API_TOKEN",
        "AUTOPACK_CONFIG",
        "GITHUB_TOKEN",
        "GH_TOKEN",
    }
)
MAX_RESULT_FILE_BYTES = 1024 * 1024

HasChange = Callable[[Path], bool]


@dataclass(frozen=True)
class ProcessRun:
    """What happened when a contained command ran (backend-neutral)."""

    exit_code: int | None
    timed_out: bool
    stdout_tail: str
    stderr_tail: str
    result_bytes: bytes | None
    duration_seconds: float
    outside_writes: tuple[str, ...] = ()
    workspace_missing: bool = False
    start_error: str | None = None
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def signal_name(self) -> str | None:
        """The signal that ended the process, when one did."""
        if self.exit_code is None or self.exit_code >= 0:
            return None
        try:
            return signal.Signals(-self.exit_code).name
        except ValueError:
            return f"signal {-self.exit_code}"


class CommandRunner:
    """Runs a profile's argv in a workspace with the contract files, limits and a clean env.

    `scratch_root` holds one directory per attempt; keep it out of the run's workspace root
    (e.g. `AUTOPACK_DATA_DIR/scratch`), because everything beside the work tree is watched:
    a builder that creates or changes an entry there (`../x`) has written outside the workspace.
    `name` (e.g. "builders.claude") names the profile in failures. Raises SandboxUnavailable
    when the profile's sandbox cannot start.
    """

    def __init__(
        self,
        profile: BuilderProfile,
        *,
        scratch_root: Path,
        sandbox: SandboxHost,
        name: str = "the command",
        inherit_env: Mapping[str, str] | None = None,
        kill_grace_seconds: float = 5.0,
    ) -> None:
        if profile.backend != "command" or not profile.command:
            raise ValueError("CommandRunner needs a 'command' profile with a command list")
        self.profile = profile
        self.scratch_root = scratch_root
        self.sandbox = sandbox
        self.name = name
        source = os.environ if inherit_env is None else inherit_env
        self._inherited = {k: source[k] for k in INHERITED_VARIABLES if k in source}
        self.kill_grace_seconds = kill_grace_seconds

    async def execute(
        self, workspace: Path, label: str, files: Mapping[str, tuple[str, str]]
    ) -> ProcessRun:
        """Run once; `files` maps an env var to (file name, content) written into scratch."""
        workspace = _real(workspace)
        if not _is_dir(workspace):
            return _not_started(f"workspace {workspace} is not a directory")
        root = _real(self.scratch_root)
        if root == workspace or root.is_relative_to(workspace):
            return _not_started("the scratch directory must be outside the work tree")
        scratch = root / f"{_safe(label)}-{secrets.token_hex(4)}"
        try:
            return await self._execute_in(workspace, root, scratch, files)
        finally:
            # Agent CLIs can leave large caches in HOME/TMPDIR: delete off the event loop.
            await asyncio.to_thread(_remove_tree, scratch)

    async def _execute_in(
        self, workspace: Path, root: Path, scratch: Path, files: Mapping[str, tuple[str, str]]
    ) -> ProcessRun:
        (scratch / "home").mkdir(parents=True, mode=0o700)
        (scratch / "tmp").mkdir(mode=0o700)
        problems: list[str] = []
        env = self._environment(scratch, problems)
        for variable, (name, content) in files.items():
            path = scratch / name
            path.write_text(content, encoding="utf-8")
            env[variable] = str(path)
        result_path = scratch / "result.json"
        env["AUTOPACK_RESULT_FILE"] = str(result_path)
        profile = self.profile
        setup = Setup(
            self.name,
            profile,
            self.sandbox,
            workspace,
            scratch,
            env["PATH"],
            profile.cpu_seconds,
            profile.memory_mb,
        )
        watched = _watch_list(workspace, root)
        before = _snapshot(workspace.parent, watched)
        started = time.monotonic()
        try:
            async with contain(profile.command, setup) as launch:
                ended = await self._run(launch, workspace, env, problems)
            problems += launch.problems
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return _not_started(f"could not start {profile.command[0]!r}: {reason}")
        exit_code, timed_out, outputs = ended
        return ProcessRun(
            exit_code=exit_code,
            timed_out=timed_out,
            stdout_tail=outputs[0],
            stderr_tail=outputs[1],
            result_bytes=_read_result(result_path, problems),
            duration_seconds=time.monotonic() - started,
            outside_writes=_differences(before, _snapshot(workspace.parent, watched)),
            workspace_missing=not _is_dir(workspace),
            problems=tuple(problems),
        )

    async def _run(
        self, launch: Launch, workspace: Path, env: dict[str, str], problems: list[str]
    ) -> tuple[int | None, bool, list[str]]:
        """Start, wait (bounded), kill what is left, drain: (exit code, timed out, outputs)."""
        pipe = asyncio.subprocess.PIPE
        proc = await launch.start(
            asyncio.create_subprocess_exec, cwd=workspace, env=env, stdout=pipe, stderr=pipe
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        cap = self.profile.max_output_bytes
        readers = [
            asyncio.create_task(drain(proc.stdout, cap)),
            asyncio.create_task(drain(proc.stderr, cap)),
        ]
        timed_out = False
        try:
            async with asyncio.timeout(self.profile.timeout_seconds):
                await proc.wait()
        except TimeoutError:
            timed_out = True
            await self._terminate_group(proc)
        except asyncio.CancelledError:
            for reader in readers:
                reader.cancel()
            raise
        finally:
            # Whatever happened (exit, timeout, our own cancellation), leave nothing running.
            kill_group(proc.pid, signal.SIGKILL)
            if proc.returncode is None:
                await proc.wait()
        outputs = await collect_outputs(readers, problems)
        code = launch.exit_code(proc.returncode, stopped=timed_out, stderr=outputs[1])
        return code, timed_out, outputs

    def _environment(self, scratch: Path, problems: list[str]) -> dict[str, str]:
        env = dict(self._inherited)
        env.setdefault("PATH", os.defpath)
        env["HOME"] = str(scratch / "home")
        env["TMPDIR"] = str(scratch / "tmp")
        for name, value in self.profile.env.items():
            if name in FORBIDDEN_VARIABLES or name.startswith("AUTOPACK_"):
                problems.append(f"profile env {name} is reserved and was not passed")
                continue
            env[name] = value
        return env

    async def _terminate_group(self, proc: asyncio.subprocess.Process) -> None:
        kill_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.kill_grace_seconds):
                await proc.wait()
        kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()


class CommandBuilder:
    """The `command` Builder backend (see docs/builders.md for the contract).

    Exit 0 is `ok` unless `has_change` is given and says the workspace is unchanged, in which
    case it is `no_change`; without `has_change` the caller decides from the computed change.
    """

    def __init__(self, runner: CommandRunner, has_change: HasChange | None = None) -> None:
        self.runner = runner
        self.has_change = has_change

    async def run(self, spec: PhaseSpec, workspace: Path) -> BuilderResult:
        """Run one attempt of `spec` in `workspace`."""
        files = {
            "AUTOPACK_PHASE_FILE": ("phase.json", spec.to_json()),
            "AUTOPACK_PROMPT_FILE": ("prompt.md", spec.to_prompt()),
        }
        label = f"{spec.run_id}-{spec.phase_id}-{spec.attempt}"
        proc = await self.runner.execute(workspace, label, files)
        report = parse_builder_report(proc.result_bytes)
        if proc.start_error is not None:
            report.problems.clear()  # nothing ran, so a missing result file says nothing
        outcome, reason = process_outcome(proc, self.runner.profile)
        if outcome is BuilderOutcome.OK and self.has_change is not None:
            changed = await asyncio.to_thread(self.has_change, workspace)
            if not changed:
                outcome, reason = (
                    BuilderOutcome.NO_CHANGE,
                    "the builder exited 0 but changed nothing",
                )
        return BuilderResult(
            outcome=outcome,
            exit_code=proc.exit_code,
            tokens_used=report.tokens_used,
            summary=report.summary,
            issues=tuple(report.issues),
            stdout_tail=proc.stdout_tail,
            stderr_tail=proc.stderr_tail,
            failure_reason=reason,
            duration_seconds=proc.duration_seconds,
            problems=(*proc.problems, *report.problems),
        )


def process_outcome(proc: ProcessRun, profile: BuilderProfile) -> tuple[BuilderOutcome, str | None]:
    """Classify a finished process: the outcome and a one-sentence reason (None when ok)."""
    if proc.start_error is not None:
        return BuilderOutcome.ERROR, proc.start_error
    if proc.timed_out:
        return (
            BuilderOutcome.TIMED_OUT,
            f"the command ran past its {profile.timeout_seconds} s timeout and was killed",
        )
    if proc.workspace_missing:
        return BuilderOutcome.FAILED, "the command removed the workspace directory itself"
    if proc.outside_writes:
        shown = ", ".join(proc.outside_writes[:5])
        return BuilderOutcome.FAILED, f"the command wrote outside the workspace: {shown}"
    file_limit = f" (file size limit {profile.max_file_mb} MB)"
    if proc.signal_name is not None:
        limit = ""
        if proc.signal_name == "SIGXCPU" or (
            proc.signal_name == "SIGKILL" and profile.cpu_seconds is not None
        ):
            limit = f" (CPU limit {profile.cpu_seconds} s)"
        elif proc.signal_name == "SIGXFSZ":
            limit = file_limit
        return BuilderOutcome.FAILED, f"the command was killed by {proc.signal_name}{limit}"
    if proc.exit_code != 0:
        hint = ""
        if "MemoryError" in proc.stderr_tail:
            memory = f"; memory limit {profile.memory_mb} MB" if profile.memory_mb else ""
            hint = f" (MemoryError{memory})"
        elif "File too large" in proc.stderr_tail:  # EFBIG: the writer ignores SIGXFSZ
            hint = file_limit
        return BuilderOutcome.FAILED, f"the command exited with code {proc.exit_code}{hint}"
    return BuilderOutcome.OK, None


def _not_started(reason: str) -> ProcessRun:
    return ProcessRun(
        exit_code=None,
        timed_out=False,
        stdout_tail="",
        stderr_tail="",
        result_bytes=None,
        duration_seconds=0.0,
        start_error=reason,
    )


def _real(path: Path) -> Path:
    return path.resolve()


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _safe(label: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
    return cleaned.strip(".")[:80] or "attempt"


def _read_result(path: Path, problems: list[str]) -> bytes | None:
    try:
        # O_NOFOLLOW: a builder must not make us read some other file as its result.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        problems.append("result file is not a regular file; ignored")
        return b""
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            problems.append("result file is not a regular file; ignored")
            return b""
        data = handle.read(MAX_RESULT_FILE_BYTES + 1)
    if len(data) > MAX_RESULT_FILE_BYTES:
        problems.append(f"result file larger than {MAX_RESULT_FILE_BYTES} bytes; ignored")
        return b""
    return data


def _watch_list(workspace: Path, scratch_root: Path) -> frozenset[str]:
    """Names in the workspace's parent that belong to us, not to the builder."""
    names = {workspace.name}
    if scratch_root.parent == workspace.parent:
        names.add(scratch_root.name)
    return frozenset(names)


_Entry = tuple[int, int, int, int]


def _snapshot(directory: Path, ignore: frozenset[str]) -> dict[str, _Entry]:
    """Entries of the workspace's parent: a builder writing `../x` shows up here."""
    entries: dict[str, _Entry] = {}
    with contextlib.suppress(OSError), os.scandir(directory) as listing:
        for entry in listing:
            if entry.name in ignore:
                continue
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                entries[entry.name] = (info.st_ino, info.st_mode, info.st_size, info.st_mtime_ns)
    return entries


def _differences(before: dict[str, _Entry], after: dict[str, _Entry]) -> tuple[str, ...]:
    changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    return tuple(f"../{name}" for name in sorted(changed))


def _remove_tree(path: Path) -> None:
    """Remove a scratch dir even when the builder made parts of it unwritable."""
    if not path.exists():
        return
    for parent, dirs, _files in os.walk(path):
        for name in dirs:
            child = os.path.join(parent, name)
            # os.walk lists links to directories here too; chmod would follow them out.
            if not os.path.islink(child):
                with contextlib.suppress(OSError):
                    os.chmod(child, 0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    shutil.rmtree(path, ignore_errors=True)
