"""The pure side of the sandbox: the policy's mounts, bwrap's argv and what is visible inside."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from app.agents.pids import pids_cgroup_candidates
from app.agents.sandbox import (
    HIDDEN_TMPFS_BYTES,
    SYSTEM_HIDDEN_DIRS,
    MountKind,
    SandboxPolicy,
    bwrap_argv,
    bwrap_options,
    encode_options,
    mounts,
    shows,
)

BWRAP = Path("/usr/bin/bwrap")
SIZE = str(HIDDEN_TMPFS_BYTES)
WORK = Path("/srv/data/workspaces/7/tree")
SCRATCH = Path("/srv/data/scratch/7-p1-1")
DATA = Path("/srv/data")
PREFIX = [
    "--die-with-parent",
    "--new-session",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
]
ROOT = ["--cap-drop", "ALL", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]


def tmpfs(path: str) -> list[str]:
    return ["--size", SIZE, "--tmpfs", path]


def policy(**changes: object) -> SandboxPolicy:
    base: dict[str, object] = {"work_tree": WORK, "scratch": SCRATCH, "hidden_dirs": (DATA,)}
    return SandboxPolicy(**(base | changes))  # type: ignore[arg-type]


def test_the_whole_options_of_a_plain_attempt() -> None:
    options = bwrap_options(policy(), status_fd=9)

    assert options == [
        *PREFIX,
        *ROOT,
        *tmpfs("/srv/data"),
        "--bind", str(SCRATCH), str(SCRATCH),
        "--bind", str(WORK), str(WORK),
        "--remount-ro", "/srv/data",
        "--chdir", str(WORK),
        "--json-status-fd", "9",
    ]  # fmt: skip


def test_bwraps_own_command_line_names_no_path_it_hides() -> None:
    # What the sandbox's PID 1 shows in /proc/1/cmdline: the options come through a descriptor.
    argv = bwrap_argv(BWRAP, ["/usr/bin/agent", "--go"], args_fd=5)

    assert argv == [str(BWRAP), "--args", "5", "--", "/usr/bin/agent", "--go"]
    assert not any(str(DATA) in part for part in argv)


def test_options_are_passed_nul_terminated() -> None:
    odd = "/srv/caf\udce9"  # a path not valid UTF-8, as os.listdir returns it
    assert encode_options(["--tmpfs", odd, "--chdir", "/w"]) == (
        b"--tmpfs\0/srv/caf\xe9\0--chdir\0/w\0"
    )


def test_network_false_adds_a_network_namespace() -> None:
    shared = bwrap_options(policy(), status_fd=3)
    cut = bwrap_options(policy(network=False), status_fd=3)

    assert "--unshare-net" not in shared
    assert cut == [*PREFIX, "--unshare-net", *shared[len(PREFIX) :]]


HIDE, FILE, RO, RW, OWN = "hide", "file", "ro", "rw", "own"
KINDS = {
    MountKind.HIDE_DIR: HIDE,
    MountKind.HIDE_FILE: FILE,
    MountKind.READ_ONLY: RO,
    MountKind.READ_WRITE: RW,
    MountKind.OWN: OWN,
}
TMP_WORK = {"work_tree": Path("/tmp/d/t"), "scratch": Path("/tmp/d/s")}
OWN_BINDS = [(OWN, str(SCRATCH)), (OWN, str(WORK))]


@pytest.mark.parametrize(
    ("changes", "expected", "read_only_after"),
    [
        pytest.param(
            {"hidden_dirs": SYSTEM_HIDDEN_DIRS, **TMP_WORK},
            [(HIDE, "/home"), (HIDE, "/root"), (HIDE, "/run"), (HIDE, "/tmp"),
             (HIDE, "/var/tmp"), (OWN, "/tmp/d/s"), (OWN, "/tmp/d/t")],
            ["/home", "/root", "/run"],
            id="system dirs hidden; /tmp and /var/tmp stay writable; own dirs bound back",
        ),
        pytest.param(
            {"hidden_dirs": (Path("/root"), DATA), "read_only": (Path("/root/.local/agent"),)},
            [(HIDE, "/root"), (HIDE, "/srv/data"), (RO, "/root/.local/agent"), *OWN_BINDS],
            ["/root", "/srv/data"],
            id="an agent under hidden /root is shown again, after the hide",
        ),
        pytest.param(
            {
                "read_only": (Path("/etc/autopack"),),
                "read_write": (Path("/var/cache/agent"),),
                "hidden_files": (Path("/etc/autopack/autopack.toml"),),
            },
            [(RO, "/etc/autopack"), (HIDE, "/srv/data"), (RW, "/var/cache/agent"),
             (FILE, "/etc/autopack/autopack.toml"), *OWN_BINDS],
            ["/srv/data"],
            id="the config file under a read_only dir stays hidden",
        ),
        pytest.param(
            {"hidden_files": (Path("/srv/data/autopack.db"), Path("/srv/.env"))},
            [(HIDE, "/srv/data"), (FILE, "/srv/.env"), *OWN_BINDS],
            ["/srv/data"],
            id="a file inside a hidden dir needs no cover of its own",
        ),
        pytest.param(
            {"hidden_dirs": (DATA, Path("/srv")), "read_only": (Path("/srv"),)},
            [(RO, "/srv"), (HIDE, "/srv"), (HIDE, "/srv/data"), *OWN_BINDS],
            ["/srv", "/srv/data"],
            id="at the same path the hide wins over an operator's path",
        ),
    ],
)  # fmt: skip
def test_mount_order(
    changes: dict[str, object], expected: list[tuple[str, str]], read_only_after: list[str]
) -> None:
    made = policy(**changes)
    options = bwrap_options(made, status_fd=3)

    assert [(KINDS[m.kind], str(m.path)) for m in mounts(made)] == expected
    remounted = [options[i + 1] for i, arg in enumerate(options) if arg == "--remount-ro"]
    assert remounted == read_only_after
    # Every remount comes after every mount: the binds below a hidden dir exist by then.
    binds = ("--bind", "--ro-bind", "--tmpfs")
    last_mount = max(i for i, arg in enumerate(options) if arg in binds)
    assert options.index("--remount-ro") > last_mount


@pytest.mark.parametrize(
    ("path", "visible"),
    [
        ("/usr/bin/python3", True),
        (str(WORK / "src" / "app.py"), True),
        (str(SCRATCH / "home"), True),
        ("/srv/data/workspaces/8/tree/secret", False),  # another run
        ("/srv/data", False),
        ("/root/.pyenv/bin/python", False),
        ("/root/.local/agent/bin/agent", True),
        ("/etc/autopack/autopack.toml", False),
        ("/etc/autopack/other.toml", True),
        ("/tmp/x", False),
    ],
)
def test_what_is_visible_inside(path: str, visible: bool) -> None:
    shown = policy(
        hidden_dirs=(*SYSTEM_HIDDEN_DIRS, DATA),
        read_only=(Path("/root/.local/agent"), Path("/etc/autopack")),
        hidden_files=(Path("/etc/autopack/autopack.toml"),),
    )
    assert shows(shown, Path(path)) is visible


NAMES = st.sampled_from(["a", "b", "c"])
PATHS = st.lists(NAMES, min_size=1, max_size=4).map(lambda parts: Path("/", *parts))


@settings(deadline=None, max_examples=300)
@given(
    hidden_dirs=st.lists(PATHS, max_size=4),
    read_only=st.lists(PATHS, max_size=3),
    read_write=st.lists(PATHS, max_size=3),
    files=st.lists(PATHS.map(lambda p: p / "secret"), max_size=3),
    work=PATHS,
    scratch=PATHS,
)
def test_deeper_wins_and_own_dirs_and_hidden_files_are_never_undone(
    hidden_dirs: list[Path],
    read_only: list[Path],
    read_write: list[Path],
    files: list[Path],
    work: Path,
    scratch: Path,
) -> None:
    generated = SandboxPolicy(
        work_tree=work / "tree",
        scratch=scratch / "scratch",
        read_only=tuple(read_only),
        read_write=tuple(read_write),
        hidden_dirs=tuple(hidden_dirs),
        hidden_files=tuple(files),
    )
    applied = mounts(generated)
    depths = [len(m.path.parts) for m in applied]
    assert depths == sorted(depths)
    assert shows(generated, generated.work_tree)
    assert shows(generated, generated.scratch)
    for file in files:
        assert not shows(generated, file)
    for directory in hidden_dirs:
        shown_below = [p for p in (*read_only, *read_write) if p.is_relative_to(directory)]
        covered = any(m.kind is MountKind.HIDE_DIR and m.path == directory for m in applied)
        assert covered
        if not shown_below and not (work / "tree").is_relative_to(directory):
            event("a hidden directory with nothing shown below it")
            assert not shows(generated, directory / "anything")
    if sum(m.kind is MountKind.HIDE_FILE for m in applied) < len(set(files)):
        event("a hidden file needed no cover of its own")


MOUNTINFO_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
MOUNTINFO_DOCKER = """\
700 650 0:40 /docker/abc /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup rw,pids
"""
MOUNTINFO_SPACE = """\
41 31 0:38 / /mnt/my\\040cgroups rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.mark.parametrize(
    ("mountinfo", "own", "expected"),
    [
        (
            MOUNTINFO_V1,
            "8:pids:/\n1:cpu:/\n0::/\n",
            ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"],
        ),
        (
            MOUNTINFO_V1,
            "8:pids:/worker\n0::/w2\n",
            ["/sys/fs/cgroup/pids/worker", "/sys/fs/cgroup/unified/w2"],
        ),
        (MOUNTINFO_DOCKER, "8:pids:/docker/abc/sub\n", ["/sys/fs/cgroup/pids/sub"]),
        (MOUNTINFO_DOCKER, "8:pids:/elsewhere\n", []),
        (MOUNTINFO_SPACE, "0::/svc\n", ["/mnt/my cgroups/svc"]),
        ("", "8:pids:/\n", []),
    ],
)
def test_where_the_pids_cgroups_are(mountinfo: str, own: str, expected: list[str]) -> None:
    assert pids_cgroup_candidates(mountinfo, own) == [Path(p) for p in expected]
