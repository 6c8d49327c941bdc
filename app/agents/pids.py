"""The process-count limit of an attempt: a pids cgroup of its own, else RLIMIT_NPROC.

RLIMIT_NPROC is not enforced for root (the kernel lets the initial user's uid 0 through, even
inside a user namespace), so a worker running as root needs a cgroup to stop a fork bomb: each
attempt gets a fresh child of the worker's own pids cgroup with `pids.max` set, joined by the
child between fork and exec, emptied with SIGKILL and removed afterwards. That also proves the
attempt left nothing running. A worker killed mid-attempt leaves an empty cgroup behind; the
next worker to start removes it. Without a writable pids cgroup a non-root worker falls back to
RLIMIT_NPROC; a root worker without one cannot limit processes, and says so at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
# How long the clean-up keeps killing before it gives up on an attempt's cgroup.
_EMPTY_TIMEOUT_SECONDS = 10.0


def pids_cgroup_candidates(mountinfo: str, proc_cgroup: str) -> list[Path]:
    """Where this process's own pids cgroups are, from /proc/self/mountinfo and /proc/self/cgroup.

    cgroup v1: the `pids` hierarchy; cgroup2: the unified one (usable only when the pids
    controller is enabled for children, which `discover_process_limit` checks).
    """
    own: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        if "pids" in controllers.split(","):
            own["cgroup"] = path
        elif controllers == "" and line.startswith("0::"):
            own["cgroup2"] = path
    found: list[Path] = []
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, tail_parts = fields.split(), tail.split()
        if len(parts) < 5 or len(tail_parts) < 3:
            continue
        fstype, options = tail_parts[0], tail_parts[2].split(",")
        if fstype == "cgroup" and "pids" not in options:
            continue
        if fstype not in own:
            continue
        root, mount_point = _unescape(parts[3]), _unescape(parts[4])
        path = own[fstype]
        if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
            continue  # our cgroup is not under this mount's root
        relative = path[len(root) :] if root != "/" else path
        found.append(Path(mount_point) / relative.lstrip("/"))
    return found


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


@dataclass(frozen=True)
class ProcessLimit:
    """How this host enforces `max_processes`: a pids cgroup per attempt, RLIMIT_NPROC, or not."""

    cgroup_parent: Path | None
    use_rlimit: bool

    @property
    def enforced(self) -> bool:
        """True when a fork bomb is really stopped."""
        return self.cgroup_parent is not None or self.use_rlimit

    def describe(self) -> str:
        """One phrase for the start-up report."""
        if self.cgroup_parent is not None:
            return f"a pids cgroup per attempt under {self.cgroup_parent}"
        if self.use_rlimit:
            return "RLIMIT_NPROC (counts every process of the worker's user)"
        return (
            "nothing: the worker runs as root (RLIMIT_NPROC does not apply) and has no "
            "writable pids cgroup"
        )

    def create(self, max_processes: int) -> AttemptCgroup | None:
        """A fresh cgroup for one attempt (None without the cgroup mechanism); raises OSError."""
        if self.cgroup_parent is None:
            return None
        return AttemptCgroup.create(self.cgroup_parent, max_processes)


def discover_process_limit() -> ProcessLimit:
    """Find a pids cgroup this process may create children in; else fall back (see module doc)."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        own = Path("/proc/self/cgroup").read_text()
    except OSError:
        mountinfo = own = ""
    for parent in pids_cgroup_candidates(mountinfo, own):
        try:
            AttemptCgroup.create(parent, 1).remove()
        except OSError:
            continue
        _remove_abandoned(parent)
        return ProcessLimit(cgroup_parent=parent, use_rlimit=False)
    return ProcessLimit(cgroup_parent=None, use_rlimit=os.getuid() != 0)


def _remove_abandoned(parent: Path) -> None:
    """Remove the empty cgroups of workers that died mid-attempt (their pid is in the name)."""
    for child in parent.glob("autopack-*-*"):
        pid = child.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):  # not empty, or already gone: leave it
                child.rmdir()


@dataclass(frozen=True)
class AttemptCgroup:
    """One attempt's pids cgroup: joined by the child before exec, emptied and removed after."""

    path: Path

    @classmethod
    def create(cls, parent: Path, max_processes: int) -> AttemptCgroup:
        """Make the cgroup with `pids.max` set; raises OSError (nothing left behind)."""
        path = parent / f"autopack-{os.getpid()}-{secrets.token_hex(6)}"
        path.mkdir()
        try:
            (path / "pids.max").write_text(str(max_processes))
        except OSError:
            path.rmdir()
            raise
        return cls(path)

    def joiner(self) -> Callable[[], None]:
        """What the child calls between fork and exec to move itself into the cgroup."""
        procs = os.fsencode(self.path / "cgroup.procs")

        def join() -> None:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"%d" % os.getpid())
            finally:
                os.close(fd)

        return join

    def members(self) -> list[int]:
        """The pids in the cgroup now."""
        try:
            text = (self.path / "cgroup.procs").read_text()
        except FileNotFoundError:
            return []
        return [int(pid) for pid in text.split()]

    def remove(self) -> None:
        """Remove the (empty) cgroup; raises OSError."""
        self.path.rmdir()

    async def destroy(self) -> str | None:
        """Kill every member until none is left, remove the cgroup; a problem sentence or None."""
        try:
            async with asyncio.timeout(_EMPTY_TIMEOUT_SECONDS):
                while members := self.members():
                    for pid in members:
                        _kill_member(pid, self.path)
                    await asyncio.sleep(0.01)
        except TimeoutError:
            return f"processes survived SIGKILL in {self.path}; it was left in place"
        try:
            self.remove()
        except OSError as exc:
            return f"could not remove {self.path}: {exc.strerror}"
        return None


def _kill_member(pid: int, cgroup: Path) -> None:
    """SIGKILL `pid` only while it is still in `cgroup` (a pidfd pins the process itself)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return  # already gone
    try:
        # Checked after pinning: a pid reused by an unrelated process is not in our cgroup.
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if any(line.endswith(f"/{cgroup.name}") for line in lines):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def set_rlimit_nproc(max_processes: int) -> None:
    """RLIMIT_NPROC for the calling process (runs in the child, before exec)."""
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
