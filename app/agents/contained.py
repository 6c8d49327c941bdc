"""Starting one process for a repository, contained: sandbox, limits, and nothing left behind.

Both the `command` backend and the probes start their processes through `contain(...)`:

    async with contain(command, setup) as launch:
        proc = await launch.start(asyncio.create_subprocess_exec, cwd=..., env=..., ...)
        ... wait, time out, drain the output ...
        code = launch.exit_code(proc.returncode, stopped=timed_out, stderr=tail)

On the way out every process still in the attempt's pids cgroup is killed and the cgroup is
removed. With `sandbox = "bwrap"`, bwrap's status descriptor tells "the command ran and exited
with N" from "the sandbox never started the command" (nothing to read but bwrap's message).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from app.agents.pids import AttemptCgroup, set_rlimit_nproc
from app.agents.sandbox import (
    SandboxHost,
    SandboxPolicy,
    SandboxUnavailable,
    bwrap_argv,
    bwrap_options,
    encode_options,
    shows,
)
from app.config import SandboxKeys

T = TypeVar("T")
_STATUS_READ_BYTES = 64 * 1024
_CHUNK = 64 * 1024
# How long to wait for output pipes after the process group is gone (an escaped daemon may
# hold them open; we stop listening rather than hang the worker).
_DRAIN_SECONDS = 5.0


@dataclass(frozen=True)
class Setup:
    """Everything `contain` needs about one process besides its argv."""

    name: str  # what the start-up report and failures call it, e.g. "builders.claude"
    keys: SandboxKeys
    host: SandboxHost
    work_tree: Path
    scratch: Path
    search_path: str  # the PATH the process gets, to find a bare program name
    cpu_seconds: int | None = None
    memory_mb: int | None = None


@dataclass
class Launch:
    """How to start the process and how to read its end."""

    argv: list[str]
    preexec: Callable[[], None]
    name: str
    policy: SandboxPolicy | None = None  # None: `sandbox = "none"`
    status_fds: tuple[int, int] | None = None  # (read, write) of bwrap's --json-status-fd
    args_fd: int = -1  # bwrap's options (--args), until the child has its copy
    problems: list[str] = field(default_factory=list)

    async def start(
        self,
        starter: Callable[..., Awaitable[T]],
        *leading: object,
        cwd: Path,
        env: dict[str, str],
        stdout: int,
        stderr: int,
    ) -> T:
        """Start the process with one of asyncio's subprocess functions (`leading` goes first)."""
        ours = (-1, -1) if self.status_fds is None else self.status_fds
        fds = tuple(fd for fd in (ours[1], self.args_fd) if fd >= 0)
        try:
            started = await starter(
                *leading,
                *self.argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=self.preexec,
                pass_fds=fds,
            )
        except subprocess.SubprocessError as exc:  # a step before exec failed (the cgroup, a limit)
            raise SandboxUnavailable(
                f"the sandbox for {self.name} could not start: {exc}"
            ) from None
        if self.status_fds is not None:  # the child has its copy of the write end
            os.close(self.status_fds[1])
            self.status_fds = (self.status_fds[0], -1)
        self._close_args()
        return started

    def exit_code(self, returncode: int | None, *, stopped: bool, stderr: str) -> int | None:
        """The command's exit code (-N: killed by signal N); raises SandboxUnavailable."""
        if self.status_fds is None or stopped:
            return returncode
        reported = _reported_exit_code(_read_available(self.status_fds[0]))
        if reported is None:
            raise SandboxUnavailable(
                f"the sandbox for {self.name} could not start: {_bwrap_message(stderr, returncode)}"
            )
        # Inside the sandbox a signal death arrives in the shell's encoding, 128 + N.
        if reported > 128 and (reported - 128) in signal.valid_signals():
            return -(reported - 128)
        return reported

    def close(self) -> None:
        """Close whatever is left of the status pipe and the options file."""
        if self.status_fds is not None:
            for fd in self.status_fds:
                if fd >= 0:
                    os.close(fd)
            self.status_fds = None
        self._close_args()

    def _close_args(self) -> None:
        if self.args_fd >= 0:
            os.close(self.args_fd)
            self.args_fd = -1


@asynccontextmanager
async def contain(command: Sequence[str], setup: Setup) -> AsyncIterator[Launch]:
    """Prepare one contained process; on exit kill what is left of it and clean up.

    Raises SandboxUnavailable when the sandbox cannot be set up, and FileNotFoundError (an
    OSError, like starting a missing program) when the program does not exist.
    """
    cgroup = _create_cgroup(setup)
    launch = Launch(list(command), _preexec(setup, cgroup), setup.name)
    try:
        if setup.keys.sandbox == "bwrap":
            _sandboxed(launch, command, setup)
        yield launch
    finally:
        launch.close()
        if cgroup is not None:
            problem = await cgroup.destroy()
            if problem is not None:
                launch.problems.append(problem)


def _sandboxed(launch: Launch, command: Sequence[str], setup: Setup) -> None:
    bwrap = setup.host.bwrap
    if bwrap is None or not os.access(bwrap, os.X_OK):
        where = f"at {bwrap}" if bwrap is not None else "on PATH"
        raise SandboxUnavailable(
            f"the sandbox for {setup.name} could not start: bubblewrap (bwrap) is not installed "
            f"{where}"
        )
    policy = setup.host.policy(setup.keys, setup.work_tree, setup.scratch)
    program = find_program(command[0], setup.search_path, setup.work_tree)
    if program is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command[0])
    if not shows(policy, program):
        raise SandboxUnavailable(
            f"the sandbox for {setup.name} could not start: {program} is hidden inside it "
            "(add its directory to read_only)"
        )
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(read_fd, False)
    launch.policy = policy
    launch.status_fds = (read_fd, write_fd)
    # On bwrap's command line the options would name every hidden path to anyone reading
    # /proc/1/cmdline inside: they go through a descriptor, which bwrap closes once read.
    launch.args_fd = _options_file(bwrap_options(policy, status_fd=write_fd), setup.name)
    launch.argv = bwrap_argv(bwrap, command, args_fd=launch.args_fd)


def _options_file(options: list[str], name: str) -> int:
    """A memory file holding bwrap's options, read from its start."""
    try:
        fd = os.memfd_create("autopack-bwrap-options", os.MFD_CLOEXEC)
    except OSError as exc:
        raise SandboxUnavailable(
            f"the sandbox for {name} could not start: cannot pass bwrap its options: "
            f"{exc.strerror or exc}"
        ) from None
    try:
        data = memoryview(encode_options(options))
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def find_program(name: str, search_path: str, work_tree: Path) -> Path | None:
    """The resolved executable `name` names (relative paths from the work tree), or None."""
    if "/" in name:
        candidate = Path(name) if name.startswith("/") else work_tree / name
        found = str(candidate) if os.access(candidate, os.X_OK) else None
    else:
        found = shutil.which(name, path=search_path)
    if found is None or not Path(found).is_file():
        return None
    return Path(os.path.realpath(found))


def _create_cgroup(setup: Setup) -> AttemptCgroup | None:
    try:
        return setup.host.process_limit.create(setup.keys.max_processes)
    except OSError as exc:
        raise SandboxUnavailable(
            f"the sandbox for {setup.name} could not start: cannot create its pids cgroup: "
            f"{exc.strerror or exc}"
        ) from None


def _preexec(setup: Setup, cgroup: AttemptCgroup | None) -> Callable[[], None]:
    keys = setup.keys
    rlimit_nproc = setup.host.process_limit.use_rlimit
    file_bytes = keys.max_file_mb * 1024 * 1024
    join = cgroup.joiner() if cgroup is not None else None

    # Runs in the child between fork and exec, so only thin system calls: no Python-level
    # locks another thread of the worker might have held at fork time.
    def apply() -> None:
        if join is not None:
            join()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        if rlimit_nproc:
            set_rlimit_nproc(keys.max_processes)
        if setup.cpu_seconds is not None:
            # Soft limit sends SIGXCPU; the hard limit one second later is SIGKILL.
            resource.setrlimit(resource.RLIMIT_CPU, (setup.cpu_seconds, setup.cpu_seconds + 1))
        if setup.memory_mb is not None:
            limit = setup.memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def _read_available(fd: int) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, _STATUS_READ_BYTES):
            data += chunk
    return data


def _reported_exit_code(status: bytes) -> int | None:
    """The `exit-code` bwrap wrote once the command ended (None: it never ran it)."""
    code = None
    for line in status.decode("utf-8", "replace").splitlines():
        with contextlib.suppress(ValueError):
            document = json.loads(line)
            if isinstance(document, dict) and isinstance(document.get("exit-code"), int):
                code = document["exit-code"]
    return code


def _bwrap_message(stderr: str, returncode: int | None) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.startswith("bwrap:")]
    if lines:
        return lines[-1][:300]
    return f"bwrap ended with status {returncode} before starting the command"


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group; one that is already gone is the normal case."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def drain(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, int]:
    """Read a stream to EOF keeping only its last `cap` bytes; returns (tail, total bytes)."""
    buffer = bytearray()
    total = 0
    while chunk := await stream.read(_CHUNK):
        total += len(chunk)
        buffer += chunk
        if len(buffer) > cap:
            del buffer[: len(buffer) - cap]
    return bytes(buffer), total


async def collect_outputs(
    readers: list[asyncio.Task[tuple[bytes, int]]], problems: list[str]
) -> list[str]:
    """The drained tails as text (bounded wait: a stray holder of the pipes cuts them short)."""
    done, pending = await asyncio.wait(readers, timeout=_DRAIN_SECONDS)
    if pending:
        problems.append("an escaped process kept the output pipes open; output cut short")
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    texts = []
    for task in readers:
        if task in done and task.exception() is None:
            tail, total = task.result()
            text = tail.decode("utf-8", errors="replace")
            if total > len(tail):
                text = f"[... {total - len(tail)} earlier bytes dropped ...]\n{text}"
            texts.append(text)
        else:
            texts.append("")
    return texts
