"""What the sandbox will not be able to run, found once at start (`autopack serve` / `worker`).

Every `command` profile (builders, auditors, planners) and the probes, when they are allowed,
get their sandbox started once with a harmless command (bwrap's own `--version`): a missing
bwrap, refused namespaces, a `read_only` path that does not exist or a program hidden by the
sandbox are named here, profile by profile, before any run needs them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.agents.contained import Launch, Setup, contain, find_program, kill_group
from app.agents.sandbox import SandboxHost, SandboxUnavailable, shows
from app.agents.tarball import force_rmtree
from app.config import SandboxKeys, Settings

_CHECK_SECONDS = 30.0
Line = tuple[int, str]  # a logging level and the message


def _contained_profiles(settings: Settings) -> Iterator[tuple[str, SandboxKeys, Sequence[str]]]:
    """(name, sandbox keys, argv) of everything that starts processes; probes have no argv."""
    operator = settings.operator
    tables = {
        "builders": operator.builders,
        "auditors": operator.auditors,
        "planners": operator.planners,
    }
    for table, profiles in tables.items():
        for name, profile in profiles.items():
            if profile.backend == "command":
                yield f"{table}.{name}", profile, profile.command
    if operator.probes.allow_repository_probes:
        yield "probes", operator.probes, ()


async def sandbox_report(settings: Settings, host: SandboxHost, search_path: str) -> list[Line]:
    """One line per profile that cannot run or runs unsandboxed, and how processes are limited."""
    lines: list[Line] = []
    profiles = list(_contained_profiles(settings))
    for name, keys, command in profiles:
        if keys.sandbox == "none":
            lines.append(
                (
                    logging.WARNING,
                    f'{name} runs unsandboxed (sandbox = "none"): its processes can read '
                    "everything the server's user can, the key file and database included",
                )
            )
            continue
        problem = await _check_profile(name, keys, command, host, settings.data_dir, search_path)
        if problem is not None:
            lines.append((logging.WARNING, f"{name} will not be able to run: {problem}"))
    if profiles:
        limit = host.process_limit
        level = logging.INFO if limit.enforced else logging.WARNING
        lines.append((level, f"max_processes is enforced by {limit.describe()}"))
    return lines


async def _check_profile(
    name: str,
    keys: SandboxKeys,
    command: Sequence[str],
    host: SandboxHost,
    data_dir: Path,
    search_path: str,
) -> str | None:
    """Start the profile's sandbox once; the sentence saying why it cannot start, or None."""
    base = data_dir / "scratch" / f"startup-check-{secrets.token_hex(4)}"
    tree, scratch = base / "tree", base / "scratch"
    try:
        tree.mkdir(parents=True)
        scratch.mkdir()
        setup = Setup(name, keys, host, tree, scratch, search_path)
        trivial = [str(host.bwrap), "--version"]
        async with contain(trivial, setup) as launch:
            if command:
                program = find_program(command[0], search_path, tree)
                if program is None:
                    return f"its program {command[0]!r} was not found"
                if launch.policy is not None and not shows(launch.policy, program):
                    return (
                        f"{program} is hidden inside the sandbox (add its directory to read_only)"
                    )
            await _run(launch, tree, search_path)
        return None
    except SandboxUnavailable as exc:
        return str(exc)
    except OSError as exc:
        return f"the sandbox could not be prepared: {exc.strerror or exc}"
    finally:
        await asyncio.to_thread(force_rmtree, base)


async def _run(launch: Launch, cwd: Path, search_path: str) -> None:
    """Run the trivial command; raises SandboxUnavailable unless it exits 0."""
    proc = await launch.start(
        asyncio.create_subprocess_exec,
        cwd=cwd,
        env={"PATH": search_path},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(_CHECK_SECONDS):
            _, stderr = await proc.communicate()
    except TimeoutError:
        kill_group(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise SandboxUnavailable(
            f"the sandbox for {launch.name} did not start within {_CHECK_SECONDS:g} s"
        ) from None
    text = stderr.decode("utf-8", "replace")
    code = launch.exit_code(proc.returncode, stopped=False, stderr=text)
    if code != 0:
        raise SandboxUnavailable(
            f"the sandbox for {launch.name} could not start: its test command exited with {code}"
        )
