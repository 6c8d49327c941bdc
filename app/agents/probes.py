"""Repository probes (lint or test commands a ruleset names), run in the workspace before a push.

Only when the operator allows it: the server, not the repository, decides what may run here.
Each probe runs in the sandbox the operator's `[probes]` table sets (`app/agents/sandbox.py`),
with a scrubbed environment, limits and a deadline; on timeout all of it is killed, so a probe's
children die with it. A failing probe is an issue record like any gate finding; a sandbox that
cannot start raises SandboxUnavailable (an environment failure, not a finding).
"""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.agents.contained import Setup, contain, kill_group
from app.agents.sandbox import SandboxHost
from app.config import OperatorConfig
from app.domain.issue_record import IssueRecord, IssueSource, Severity
from app.domain.secrets_scan import classify_token, redact

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# After the group is killed the pipe closes at once; this only bounds a child that escaped it.
_DRAIN_GRACE_SECONDS = 5.0
_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
# Arguments that read as words (`pytest`, `test:unit`), not code or paths, go into a name.
_WORD = re.compile(r"[A-Za-z0-9._:][A-Za-z0-9._:-]{0,29}")


class ProbeStatus(StrEnum):
    """How a probe ended."""

    PASSED = "passed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    NOT_STARTED = "not_started"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ProbeSpec:
    """One probe: a stable name (used in its issue_key) and the argv to run."""

    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class ProbeLimits:
    """Deadline and output caps for each probe."""

    timeout_seconds: float = 600.0
    max_output_bytes: int = 256 * 1024
    evidence_lines: int = 20
    evidence_line_chars: int = 300


@dataclass(frozen=True)
class ProbeResult:
    """What one probe did; `finding` is set when it failed."""

    name: str
    status: ProbeStatus
    exit_code: int | None
    output: str  # the last `max_output_bytes` of stdout+stderr, secrets masked
    output_truncated: bool
    message: str
    finding: IssueRecord | None = None


def probe_specs(commands: Sequence[Sequence[str]]) -> tuple[ProbeSpec, ...]:
    """Name a ruleset's argv lists: `ruff check .` is `ruff-check`; clashes get `-2`, `-3`."""
    specs: list[ProbeSpec] = []
    seen: dict[str, int] = {}
    for argv in commands:
        if not argv or any(not isinstance(part, str) or not part for part in argv):
            raise ValueError("every probe must be a non-empty list of non-empty strings")
        words = [Path(argv[0]).name, *(a for a in argv[1:] if _WORD.fullmatch(a))][:3]
        words = [w for w in words if classify_token(w) is None]  # never a token in a name
        base = _NAME_CHARS.sub("_", "-".join(words)).strip("-_.")[:60].rstrip("-_.") or "probe"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}-{seen[base]}"
        specs.append(ProbeSpec(name, tuple(argv)))
    return tuple(specs)


def probe_findings(results: Sequence[ProbeResult]) -> tuple[IssueRecord, ...]:
    """The issue records of the failed probes, ready for `gate.evaluate(probe_findings=...)`."""
    return tuple(result.finding for result in results if result.finding is not None)


async def run_probes(
    probes: Sequence[ProbeSpec] | Sequence[Sequence[str]],
    workspace: Path,
    operator: OperatorConfig,
    *,
    scratch_dir: Path,
    sandbox: SandboxHost,
    limits: ProbeLimits | None = None,
    path: str = DEFAULT_PATH,
) -> tuple[ProbeResult, ...]:
    """Run each probe in `workspace` one after another, if the operator allows repository probes."""
    if not operator.probes.allow_repository_probes:
        message = (
            "repository probes skipped by operator policy (probes.allow_repository_probes is false)"
        )
        return (ProbeResult("probes", ProbeStatus.SKIPPED, None, "", False, message),)
    specs = tuple(p if isinstance(p, ProbeSpec) else probe_specs([p])[0] for p in probes)
    if len({spec.name for spec in specs}) != len(specs):
        specs = probe_specs([spec.argv for spec in specs])
    limits = limits or ProbeLimits()
    await asyncio.to_thread(scratch_dir.mkdir, parents=True, exist_ok=True)
    env = {"PATH": path, "HOME": str(scratch_dir), "LANG": "C.UTF-8"}
    setup = Setup("probes", operator.probes, sandbox, workspace, scratch_dir, path)
    results = []
    for spec in specs:
        results.append(await run_probe(spec, setup, env, limits))
    return tuple(results)


async def run_probe(
    spec: ProbeSpec, setup: Setup, env: dict[str, str], limits: ProbeLimits
) -> ProbeResult:
    """Run one probe with exactly `env`, contained as `setup` says, under `limits`."""
    tail = _Tail(limits.max_output_bytes)
    try:
        async with contain(spec.argv, setup) as launch:
            loop = asyncio.get_running_loop()
            transport, protocol = await launch.start(
                loop.subprocess_exec,
                lambda: _ProbeProtocol(tail, loop),
                cwd=setup.work_tree,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            timed_out = await _wait(transport, protocol, tail, limits)
            exit_code = launch.exit_code(
                transport.get_returncode(),
                stopped=timed_out,
                stderr=tail.data.decode(errors="replace"),
            )
    except OSError as exc:
        message = f"probe {spec.name!r} could not start: {exc.strerror or exc}"
        return _result(spec, ProbeStatus.NOT_STARTED, None, _Tail(0), message, limits)
    if timed_out:
        message = f"probe {spec.name!r} timed out after {limits.timeout_seconds:g} s and was killed"
        return _result(spec, ProbeStatus.TIMED_OUT, None, tail, message, limits)
    if exit_code != 0:
        message = f"probe {spec.name!r} exited with status {exit_code}"
        return _result(spec, ProbeStatus.FAILED, exit_code, tail, message, limits)
    message = f"probe {spec.name!r} passed"
    return _result(spec, ProbeStatus.PASSED, exit_code, tail, message, limits)


async def _wait(
    transport: asyncio.SubprocessTransport,
    protocol: _ProbeProtocol,
    tail: _Tail,
    limits: ProbeLimits,
) -> bool:
    """Wait for the exit (bounded), kill the group, let the output drain; True on timeout."""
    try:
        # asyncio.wait, not a timeout around the future: the future must outlive the deadline.
        await asyncio.wait([protocol.exited], timeout=limits.timeout_seconds)
        timed_out = not protocol.exited.done()
        # Kill the whole group: on timeout the probe and its children; after a normal exit,
        # any background children it left behind holding the output pipe.
        kill_group(transport.get_pid(), signal.SIGKILL)
        await protocol.exited
        await asyncio.wait([protocol.closed], timeout=_DRAIN_GRACE_SECONDS)
        if not protocol.closed.done():
            tail.add(b"\n[output stopped: a process outside the probe's group kept it open]\n")
    finally:
        kill_group(transport.get_pid(), signal.SIGKILL)
        transport.close()
    return timed_out


class _Tail:
    """The last `cap` bytes of a stream, and whether anything before them was dropped."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        # Trim in amortised steps so a flood of small chunks stays linear.
        if len(self.data) > 2 * self.cap:
            self.truncated = True
            del self.data[: len(self.data) - self.cap]

    def text(self) -> str:
        if len(self.data) > self.cap:
            self.truncated = True
            del self.data[: len(self.data) - self.cap]
        return self.data.decode("utf-8", errors="replace")


class _ProbeProtocol(asyncio.SubprocessProtocol):
    """Keeps a capped tail of the output and tells 'exited' apart from 'pipes closed'.

    `Process.wait()` also waits for the pipes, which a leftover background child can hold open
    forever; this protocol sees the exit itself, so the group can be killed right then.
    """

    def __init__(self, tail: _Tail, loop: asyncio.AbstractEventLoop) -> None:
        self.tail = tail
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self.tail.add(data.encode() if isinstance(data, str) else data)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def _result(
    spec: ProbeSpec,
    status: ProbeStatus,
    exit_code: int | None,
    tail: _Tail,
    message: str,
    limits: ProbeLimits,
) -> ProbeResult:
    output = redact(tail.text())
    finding = None
    if status is not ProbeStatus.PASSED:
        lines = [line[: limits.evidence_line_chars] for line in output.splitlines() if line.strip()]
        evidence = (message, *lines[-limits.evidence_lines :])
        finding = IssueRecord(
            issue_key=f"probe:{spec.name}",
            severity=Severity.MAJOR,
            category="probe_failed",
            source=IssueSource.PROBE,
            evidence=evidence,
        )
    return ProbeResult(spec.name, status, exit_code, output, tail.truncated, message, finding)
