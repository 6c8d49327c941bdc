"""Safe extraction of repository tarballs: every refusal rule, and the streamed download."""

from __future__ import annotations

import gzip
import io
import os
import socket
import subprocess
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from app.agents.tarball import (
    BaseEntry,
    WorkspaceError,
    WorkspaceLimits,
    blob_sha,
    extract_archive,
    force_rmtree,
)
from app.agents.workspace import TarballSource, TarballUnavailable, Workspace
from app.domain.change import EntryType

TOP = "acme-widgets-0123456"
SHA = "0123456789abcdef0123456789abcdef01234567"


def tar_bytes(
    members: list[tuple[tarfile.TarInfo, bytes | None]], *, compress: bool = True
) -> bytes:
    """A (gzip) tar of the given members, in order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return gzip.compress(raw.getvalue()) if compress else raw.getvalue()


def info(
    name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o644, link: str = ""
) -> tarfile.TarInfo:
    """A tar header."""
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = mode
    member.linkname = link
    return member


def reg(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    """A regular file member."""
    member = info(name, mode=mode)
    member.size = len(data)
    return member, data


def top() -> tuple[tarfile.TarInfo, None]:
    """GitHub's single top folder."""
    return info(TOP, tarfile.DIRTYPE, mode=0o755), None


def good_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """A tarball shaped like GitHub's: text, executable, nested, symlinks, an empty blob."""
    return [
        top(),
        reg(f"{TOP}/README.md", b"hello\n"),
        reg(f"{TOP}/run.sh", b"#!/bin/sh\necho hi\n", 0o755),
        (info(f"{TOP}/src", tarfile.DIRTYPE, mode=0o755), None),
        reg(f"{TOP}/src/app.py", b"print('hi')\n"),
        reg(f"{TOP}/src/empty", b""),
        (info(f"{TOP}/src/link", tarfile.SYMTYPE, mode=0o777, link="app.py"), None),
        (info(f"{TOP}/docs-link", tarfile.SYMTYPE, mode=0o777, link="src"), None),
    ]


def write(tmp_path: Path, data: bytes) -> Path:
    """Write an archive beside the target."""
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(data)
    return path


def test_blob_sha_is_gits(tmp_path: Path) -> None:
    data = b"some content\n\x00binary"
    (tmp_path / "f").write_bytes(data)
    out = subprocess.run(
        ["git", "hash-object", str(tmp_path / "f")], check=True, capture_output=True, text=True
    )
    assert blob_sha(data) == out.stdout.strip()
    assert blob_sha(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


@pytest.mark.parametrize("compress", [True, False])
def test_extracts_a_github_shaped_archive(tmp_path: Path, compress: bool) -> None:
    archive = write(tmp_path, tar_bytes(good_members(), compress=compress))
    target = tmp_path / "tree"
    manifest = extract_archive(archive, target, WorkspaceLimits())
    assert (target / "README.md").read_bytes() == b"hello\n"
    assert (target / "src/app.py").read_bytes() == b"print('hi')\n"
    assert os.readlink(target / "src/link") == "app.py"
    assert os.stat(target / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(target / "README.md").st_mode & 0o777 == 0o644
    assert manifest == {
        "README.md": BaseEntry(EntryType.FILE, blob_sha(b"hello\n")),
        "run.sh": BaseEntry(EntryType.EXECUTABLE, blob_sha(b"#!/bin/sh\necho hi\n")),
        "src/app.py": BaseEntry(EntryType.FILE, blob_sha(b"print('hi')\n")),
        "src/empty": BaseEntry(EntryType.FILE, blob_sha(b"")),
        "src/link": BaseEntry(EntryType.SYMLINK, blob_sha(b"app.py")),
        "docs-link": BaseEntry(EntryType.SYMLINK, blob_sha(b"src")),
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar.gz", "tree"]


def test_hard_link_inside_becomes_a_copy(tmp_path: Path) -> None:
    members = [
        top(),
        reg(f"{TOP}/a.txt", b"same\n"),
        (info(f"{TOP}/b.txt", tarfile.LNKTYPE, link=f"{TOP}/a.txt"), None),
    ]
    target = tmp_path / "tree"
    manifest = extract_archive(write(tmp_path, tar_bytes(members)), target, WorkspaceLimits())
    assert (target / "b.txt").read_bytes() == b"same\n"
    assert os.stat(target / "a.txt").st_ino != os.stat(target / "b.txt").st_ino
    assert manifest["b.txt"] == manifest["a.txt"]


def _big(name: str, size: int) -> tuple[tarfile.TarInfo, bytes]:
    return reg(name, b"x" * size)


@dataclass(frozen=True)
class Refusal:
    """One hand-made archive and the words its WorkspaceError must contain."""

    members: list[tuple[tarfile.TarInfo, bytes | None]]
    expected: tuple[str, ...]
    limits: WorkspaceLimits = field(default_factory=WorkspaceLimits)


def _fifo() -> tuple[tarfile.TarInfo, None]:
    return info(f"{TOP}/pipe", tarfile.FIFOTYPE), None


REFUSALS: dict[str, Refusal] = {
    "absolute path": Refusal([top(), reg("/etc/evil", b"x")], ("/etc/evil", "absolute path")),
    "dot-dot component": Refusal([top(), reg(f"{TOP}/../evil", b"x")], ("../evil", "'..'")),
    "dot-dot deep": Refusal([top(), reg(f"{TOP}/a/../../evil", b"x")], ("'..'",)),
    "outside the top folder": Refusal(
        [top(), reg("other-folder/file", b"x")], ("other-folder/file", "outside the top folder")
    ),
    "top folder is a file": Refusal([reg(TOP, b"x")], ("top folder is not a directory",)),
    "absolute symlink": Refusal(
        [top(), (info(f"{TOP}/passwd", tarfile.SYMTYPE, link="/etc/passwd"), None)],
        ("passwd", "symlink", "/etc/passwd", "leaves the workspace"),
    ),
    "relative symlink escaping": Refusal(
        [top(), (info(f"{TOP}/a/up", tarfile.SYMTYPE, link="../../x"), None)],
        ("a/up", "symlink", "leaves the workspace"),
    ),
    "symlink chain escaping": Refusal(
        [
            top(),
            (info(f"{TOP}/d", tarfile.SYMTYPE, link="."), None),
            (info(f"{TOP}/x", tarfile.SYMTYPE, link="d/.."), None),
        ],
        ("x", "symlink", "leaves the workspace"),
    ),
    "write through a symlinked folder": Refusal(
        [
            top(),
            (info(f"{TOP}/d", tarfile.SYMTYPE, link="sub"), None),
            reg(f"{TOP}/d/file", b"x"),
        ],
        ("d", "both a directory and a non-directory"),
    ),
    "hard link outside": Refusal(
        [top(), (info(f"{TOP}/h", tarfile.LNKTYPE, link="/etc/passwd"), None)],
        ("h", "hard link", "/etc/passwd", "leaves the workspace"),
    ),
    "hard link to another folder": Refusal(
        [top(), (info(f"{TOP}/h", tarfile.LNKTYPE, link="elsewhere/passwd"), None)],
        ("h", "hard link", "leaves the workspace"),
    ),
    "hard link dot-dot": Refusal(
        [top(), (info(f"{TOP}/h", tarfile.LNKTYPE, link=f"{TOP}/../x"), None)],
        ("'..'",),
    ),
    "hard link to a later member": Refusal(
        [top(), (info(f"{TOP}/h", tarfile.LNKTYPE, link=f"{TOP}/later"), None)],
        ("h", "hard link to a non-file"),
    ),
    "fifo": Refusal([top(), _fifo()], ("pipe", "fifo", "special files refused")),
    "character device": Refusal(
        [top(), (info(f"{TOP}/null", tarfile.CHRTYPE), None)], ("null", "character device")
    ),
    "block device": Refusal(
        [top(), (info(f"{TOP}/sda", tarfile.BLKTYPE), None)], ("sda", "block device")
    ),
    "too many files": Refusal(
        [top(), *(reg(f"{TOP}/f{i}", b"") for i in range(5))],
        ("more than 4 members", "file-count cap"),
        WorkspaceLimits(max_files=4),
    ),
    "file over the per-file cap": Refusal(
        [top(), _big(f"{TOP}/big", 2000)],
        ("big", "2000 bytes", "per-file cap of 1000"),
        WorkspaceLimits(max_file_bytes=1000),
    ),
    "total over the size cap": Refusal(
        [top(), *(_big(f"{TOP}/f{i}", 400) for i in range(4))],
        ("f2", "size cap of 1000"),
        WorkspaceLimits(max_bytes=1000, max_file_bytes=1000),
    ),
    "git folder": Refusal([top(), reg(f"{TOP}/.git/config", b"x")], ("'.git'",)),
    "duplicate member": Refusal(
        [top(), reg(f"{TOP}/a", b"1"), reg(f"{TOP}/a", b"2")], ("a", "duplicate member")
    ),
    "file where a folder is": Refusal(
        [top(), reg(f"{TOP}/a", b"1"), reg(f"{TOP}/a/b", b"2")],
        ("a", "both a directory and a non-directory"),
    ),
    "empty path component": Refusal([top(), reg(f"{TOP}//x", b"1")], ("empty or '.'",)),
}


def _assert_nothing_left(tmp_path: Path) -> None:
    assert not (tmp_path / "tree").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["archive.tar.gz"]


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals(tmp_path: Path, case: Refusal) -> None:
    archive = write(tmp_path, tar_bytes(case.members))
    with pytest.raises(WorkspaceError) as caught:
        extract_archive(archive, tmp_path / "tree", case.limits)
    for words in case.expected:
        assert words in str(caught.value)
    _assert_nothing_left(tmp_path)


def test_decompression_bomb_is_cut_off(tmp_path: Path) -> None:
    # tarfile reads a pax header whole into memory: a 50 MB one of zeros compresses to ~50 KB.
    limits = WorkspaceLimits(max_files=10, max_bytes=10_000, max_file_bytes=10_000)
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        header = info("././@PaxHeader", tarfile.XHDTYPE)
        header.size = 50_000_000
        gz.write(header.tobuf(tarfile.USTAR_FORMAT))
        for _ in range(50):
            gz.write(bytes(1_000_000))
    archive = write(tmp_path, raw.getvalue())
    assert archive.stat().st_size < 200_000
    with pytest.raises(WorkspaceError, match=r"decompressed stream exceeds \d+ bytes"):
        extract_archive(archive, tmp_path / "tree", limits)
    _assert_nothing_left(tmp_path)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"this is not an archive at all" * 40, "unreadable"),
        (gzip.compress(b"\x00" * 10)[:-6], "unreadable"),
        (gzip.compress(tar_bytes(good_members(), compress=False)[:1500]), "unreadable"),
    ],
    ids=["garbage", "truncated gzip", "truncated tar"],
)
def test_unreadable_archives(tmp_path: Path, data: bytes, words: str) -> None:
    with pytest.raises(WorkspaceError, match=words):
        extract_archive(write(tmp_path, data), tmp_path / "tree", WorkspaceLimits())
    _assert_nothing_left(tmp_path)


def test_existing_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tree").mkdir()
    archive = write(tmp_path, tar_bytes(good_members()))
    with pytest.raises(WorkspaceError, match="already exists"):
        extract_archive(archive, tmp_path / "tree", WorkspaceLimits())


def test_force_rmtree_handles_read_only_folders_and_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    (tree / "a/b").mkdir(parents=True)
    (tree / "a/b/f").write_text("x")
    (tree / "a/out").symlink_to(outside)
    os.chmod(tree / "a/b", 0o500)
    os.chmod(tree / "a", 0o000)
    force_rmtree(tree)
    assert not tree.exists()
    assert (outside / "keep").read_text() == "keep"


# -- the download, through a tiny API + "codeload" pair of servers ---------------------------


@dataclass
class Servers:
    """An API server redirecting tarball requests to a download server on another port."""

    api_url: str = ""
    download_url: str = ""
    payload: bytes = b""
    chunked: bool = False
    api_status: int = 302
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Authorization)


@pytest.fixture
async def servers() -> AsyncIterator[Servers]:
    state = Servers()

    async def api(request: web.Request) -> web.StreamResponse:
        state.seen.append((request.path, request.headers.get("Authorization")))
        if state.api_status != 302:
            return web.json_response({"message": "Not Found"}, status=state.api_status)
        sha = request.match_info["sha"]
        raise web.HTTPFound(f"{state.download_url}/legacy.tar.gz/{sha}?token=one-off")

    async def download(request: web.Request) -> web.StreamResponse:
        state.seen.append((request.path, request.headers.get("Authorization")))
        if not state.chunked:
            return web.Response(body=state.payload, content_type="application/x-gzip")
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(state.payload), 4096):
            await response.write(state.payload[start : start + 4096])
        await response.write_eof()
        return response

    api_app = web.Application()
    api_app.router.add_get("/repos/{owner}/{repo}/tarball/{sha}", api)
    dl_app = web.Application()
    dl_app.router.add_get("/legacy.tar.gz/{sha}", download)
    runners = []
    for app, attr in ((api_app, "api_url"), (dl_app, "download_url")):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        setattr(state, attr, f"http://127.0.0.1:{runner.addresses[0][1]}")
        runners.append(runner)
    try:
        yield state
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _workspace(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession, **limits: int
) -> Workspace:
    async def token() -> str:
        return "installation-token"

    source = TarballSource(session, servers.api_url, "acme/widgets", token)
    return Workspace.for_run(tmp_path / "data", "run-1", source, WorkspaceLimits(**limits))


async def test_token_goes_to_the_api_host_only(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    servers.payload = tar_bytes(good_members())
    ws = _workspace(tmp_path, servers, session)
    assert await ws.ensure(SHA) is True
    assert servers.seen == [
        (f"/repos/acme/widgets/tarball/{SHA}", "token installation-token"),
        (f"/legacy.tar.gz/{SHA}", None),
    ]
    assert (ws.tree / "README.md").read_bytes() == b"hello\n"
    assert sorted(os.listdir(ws.root)) == ["base.tar.gz", "manifest.json", "tree"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_download_cap(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession, chunked: bool
) -> None:
    servers.payload = os.urandom(100_000)
    servers.chunked = chunked
    ws = _workspace(tmp_path, servers, session, max_download_bytes=50_000)
    with pytest.raises(WorkspaceError, match="exceeds the download cap of 50000 bytes"):
        await ws.ensure(SHA)
    assert os.listdir(ws.root) == []
    assert ws.head is None


async def test_refused_archive_over_http_leaves_nothing(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    servers.payload = tar_bytes([top(), reg(f"{TOP}/ok", b"fine"), _fifo()])
    ws = _workspace(tmp_path, servers, session)
    with pytest.raises(WorkspaceError, match="pipe: fifo"):
        await ws.ensure(SHA)
    assert os.listdir(ws.root) == []


async def test_refused_archive_keeps_the_previous_tree(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    servers.payload = tar_bytes(good_members())
    ws = _workspace(tmp_path, servers, session)
    await ws.ensure(SHA)
    servers.payload = tar_bytes([top(), reg("/etc/evil", b"x")])
    with pytest.raises(WorkspaceError, match="absolute path"):
        await ws.ensure("f" * 40)
    assert sorted(os.listdir(ws.root)) == ["base.tar.gz", "manifest.json", "tree"]
    assert (ws.tree / "README.md").read_bytes() == b"hello\n"
    assert ws.head == SHA


async def test_http_error_is_a_workspace_error(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    servers.api_status = 404
    ws = _workspace(tmp_path, servers, session)
    with pytest.raises(WorkspaceError, match="HTTP 404") as caught:
        await ws.ensure(SHA)
    assert not isinstance(caught.value, TarballUnavailable)
    assert os.listdir(ws.root) == []


async def test_server_errors_are_retryable(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    servers.api_status = 503
    ws = _workspace(tmp_path, servers, session)
    with pytest.raises(TarballUnavailable, match="HTTP 503"):
        await ws.ensure(SHA)


async def test_connection_errors_are_retryable(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    async def token() -> str:
        return "t"

    # A port that was just listening and is now closed: connection refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = TarballSource(session, f"http://127.0.0.1:{port}", "acme/widgets", token)
    ws = Workspace(tmp_path / "ws", source)
    with pytest.raises(TarballUnavailable, match="ClientConnectorError"):
        await ws.ensure(SHA)
    assert os.listdir(ws.root) == []


async def test_not_a_sha_is_refused_before_any_request(
    tmp_path: Path, servers: Servers, session: aiohttp.ClientSession
) -> None:
    ws = _workspace(tmp_path, servers, session)
    with pytest.raises(WorkspaceError, match="not a commit sha"):
        await ws.ensure("../../etc")
    assert servers.seen == []


def test_names_are_validated() -> None:
    async def token() -> str:
        return "t"

    with pytest.raises(ValueError, match="not a repository name"):
        TarballSource(None, "http://x", "acme/../x", token)  # type: ignore[arg-type]
    source = TarballSource(None, "http://x", "acme/widgets", token)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a run id"):
        Workspace.for_run(Path("/tmp/nowhere"), "../x", source)
