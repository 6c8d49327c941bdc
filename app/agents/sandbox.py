"""The sandbox around every process Autopack starts for a repository (bubblewrap).

`bwrap_options(policy, ...)` is a pure function from a small frozen `SandboxPolicy` to bwrap's
options: own PID, IPC, UTS (and, when possible, cgroup) namespaces, a fresh /proc and /dev, no
capabilities, the root filesystem read-only, the hidden paths covered (a tmpfs over a
directory, /dev/null over a file) and the attempt's own directories bound back read-write.
bwrap reads them from a descriptor (`bwrap_argv`): its command line, which the sandbox's PID 1
keeps and anyone inside reads in /proc/1/cmdline, names none of the paths it hides.
`SandboxHost` is the runtime side: what the server knows (bwrap's path, the paths never to
show, how processes are counted) and turning one attempt into a policy.

Mounts are applied shallowest first, so a deeper one wins: the work tree under the hidden data
directory is shown, an operator's `read_only` path under hidden /root is shown, and the config
file under an operator's `read_only` directory stays hidden. At the same path a hide wins over
an operator's path, and the attempt's own directories win over both.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

from app.agents.pids import ProcessLimit
from app.config import SandboxKeys, Settings

# The system's private and temporary places (not secrets of ours: never a temp file of ours).
SYSTEM_HIDDEN_DIRS = tuple(
    Path(p)
    for p in ("/root", "/home", "/tmp", "/var/tmp", "/run")  # noqa: S108
)
# Hidden directories stay writable scratch space (as the programs expect), small and private;
# every other hidden directory is made read-only once the attempt's own mounts are in place.
WRITABLE_HIDDEN_DIRS = frozenset(Path(p) for p in ("/tmp", "/var/tmp"))  # noqa: S108
HIDDEN_TMPFS_BYTES = 16 * 1024 * 1024
_PR_SET_DUMPABLE = 4


class SandboxUnavailable(Exception):
    """The sandbox could not start: the attempt fails as an environment failure (fail closed)."""


class MountKind(IntEnum):
    """What a mount does; the value orders mounts at the same path (a higher one wins)."""

    READ_ONLY = 0  # an operator's `read_only` path
    READ_WRITE = 1  # an operator's `read_write` path
    HIDE_DIR = 2  # an empty tmpfs over a directory never shown
    HIDE_FILE = 3  # /dev/null over a file never shown
    OWN = 4  # the attempt's work tree and scratch directory, read-write


@dataclass(frozen=True)
class Mount:
    """One bind or cover, at the same path inside as outside."""

    kind: MountKind
    path: Path

    @property
    def hides(self) -> bool:
        """True for a cover (tmpfs or /dev/null)."""
        return self.kind in (MountKind.HIDE_DIR, MountKind.HIDE_FILE)


@dataclass(frozen=True)
class SandboxPolicy:
    """What one sandboxed process sees. Paths are absolute, resolved and existing."""

    work_tree: Path
    scratch: Path
    read_only: tuple[Path, ...] = ()
    read_write: tuple[Path, ...] = ()
    hidden_dirs: tuple[Path, ...] = SYSTEM_HIDDEN_DIRS
    hidden_files: tuple[Path, ...] = ()
    network: bool = True


def mounts(policy: SandboxPolicy) -> tuple[Mount, ...]:
    """The mounts in the order bwrap applies them, without files that are already covered."""
    wanted = [
        *(Mount(MountKind.READ_ONLY, p) for p in policy.read_only),
        *(Mount(MountKind.READ_WRITE, p) for p in policy.read_write),
        *(Mount(MountKind.HIDE_DIR, p) for p in policy.hidden_dirs),
        *(Mount(MountKind.HIDE_FILE, p) for p in policy.hidden_files),
        *(Mount(MountKind.OWN, p) for p in (policy.work_tree, policy.scratch)),
    ]
    ordered = sorted(set(wanted), key=lambda m: (len(m.path.parts), m.kind, str(m.path)))
    kept: list[Mount] = []
    for mount in ordered:
        covering = _deepest(kept, mount.path)
        if mount.kind is MountKind.HIDE_FILE and covering is not None and covering.hides:
            continue  # inside a hidden directory and not shown again: already invisible
        # A hidden directory inside another keeps its own tmpfs: it is made read-only below,
        # so `../x` from a work tree in the data directory fails even when that is under /tmp.
        kept.append(mount)
    return tuple(kept)


def shows(policy: SandboxPolicy, path: Path) -> bool:
    """Whether `path` (absolute, resolved) is visible inside the sandbox."""
    covering = _deepest(mounts(policy), path)
    return covering is None or not covering.hides


def _deepest(applied: Sequence[Mount], path: Path) -> Mount | None:
    """The last applied mount at or above `path`: the one that decides what is seen there."""
    found = None
    for mount in applied:
        if path == mount.path or path.is_relative_to(mount.path):
            found = mount
    return found


def bwrap_options(policy: SandboxPolicy, *, status_fd: int) -> list[str]:
    """bwrap's options running a command in the work tree under `policy`, reporting to
    `status_fd` (everything but bwrap itself and the command)."""
    options = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if not policy.network:
        options.append("--unshare-net")
    options += ["--cap-drop", "ALL", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    applied = mounts(policy)
    for mount in applied:
        path = str(mount.path)
        match mount.kind:
            case MountKind.HIDE_DIR:
                options += ["--size", str(HIDDEN_TMPFS_BYTES), "--tmpfs", path]
            case MountKind.HIDE_FILE:
                options += ["--ro-bind", "/dev/null", path]
            case MountKind.READ_ONLY:
                options += ["--ro-bind", path, path]
            case MountKind.READ_WRITE | MountKind.OWN:
                options += ["--bind", path, path]
    for mount in applied:
        if mount.kind is MountKind.HIDE_DIR and mount.path not in WRITABLE_HIDDEN_DIRS:
            options += ["--remount-ro", str(mount.path)]
    return [*options, "--chdir", str(policy.work_tree), "--json-status-fd", str(status_fd)]


def bwrap_argv(bwrap: Path, command: Sequence[str], *, args_fd: int) -> list[str]:
    """bwrap's own argv: its options come from `args_fd` (see `encode_options`)."""
    return [str(bwrap), "--args", str(args_fd), "--", *command]


def encode_options(options: Sequence[str]) -> bytes:
    """Options as `--args` reads them: each one NUL-terminated (paths in the file system's
    encoding; none can hold a NUL)."""
    return b"".join(os.fsencode(option) + b"\0" for option in options)


@dataclass(frozen=True)
class SandboxHost:
    """What every sandbox on this server needs: bwrap, the paths never shown, the process limit."""

    bwrap: Path | None
    data_dir: Path
    hidden_dirs: tuple[Path, ...]
    hidden_files: tuple[Path, ...]
    process_limit: ProcessLimit = field(default_factory=lambda: ProcessLimit(None, False))

    @classmethod
    def from_settings(cls, settings: Settings, process_limit: ProcessLimit) -> SandboxHost:
        """The data directory, the database, the config, key and .env files, and the system dirs."""
        data_dir = _resolved(settings.data_dir)
        dirs = [*SYSTEM_HIDDEN_DIRS, data_dir]
        files = [settings.config_path, settings.private_key_path, settings.dotenv_path]
        database = settings.sqlite_file
        if database is not None:
            database = _resolved(database)
            if database.parent != Path("/"):
                dirs.append(database.parent)  # its -wal, -shm and -journal files too
            files += [database.with_name(database.name + end) for end in ("", "-wal", "-shm")]
        return cls(
            bwrap=settings.bwrap_path,
            data_dir=data_dir,
            hidden_dirs=tuple(dict.fromkeys(_resolved(d) for d in dirs)),
            hidden_files=tuple(dict.fromkeys(_resolved(f) for f in files if f is not None)),
            process_limit=process_limit,
        )

    def policy(self, keys: SandboxKeys, work_tree: Path, scratch: Path) -> SandboxPolicy:
        """One attempt's policy; raises SandboxUnavailable for an extra path it must refuse."""
        extras: dict[str, list[Path]] = {"read_only": [], "read_write": []}
        for key, paths in (("read_only", keys.read_only), ("read_write", keys.read_write)):
            for given in paths:
                path = _resolved(Path(given))
                if not path.exists():
                    raise SandboxUnavailable(f"{key} path {given} does not exist")
                if path == self.data_dir or path.is_relative_to(self.data_dir):
                    raise SandboxUnavailable(
                        f"{key} path {given} is inside AUTOPACK_DATA_DIR ({self.data_dir}), "
                        "which a sandbox never shows"
                    )
                extras[key].append(path)
        return SandboxPolicy(
            work_tree=_resolved(work_tree),
            scratch=_resolved(scratch),
            read_only=tuple(extras["read_only"]),
            read_write=tuple(extras["read_write"]),
            # bwrap cannot make a mount point on the read-only root: cover what exists.
            hidden_dirs=tuple(d for d in self.hidden_dirs if d.is_dir()),
            hidden_files=tuple(f for f in self.hidden_files if f.exists() and not f.is_dir()),
            network=keys.network,
        )


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(path))


def mark_non_dumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0): no core dumps, and /proc/<pid>/environ and ptrace need root."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
