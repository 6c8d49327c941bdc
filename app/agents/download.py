"""Downloading a commit's tarball from GitHub: redirects followed by hand (the token goes to the
API's origin only), a size cap, and retries of what may pass (network errors, 429, 5xx)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp

from app.agents.tarball import TarballUnavailable, WorkspaceError

_CHUNK = 256 * 1024
_MAX_REDIRECTS = 5


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


TARBALL_ATTEMPTS = 4


async def download_tarball(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    dest: Path,
    max_bytes: int,
    user_agent: str = "autopack",
    *,
    backoff_seconds: float = 1.0,
    attempts: int = TARBALL_ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Stream `url` (following redirects by hand) into `dest`; the token goes to its origin only.

    Transient failures (network errors, 429 and 5xx, on the API or the redirect's host) are
    retried with exponential backoff; after the last try TarballUnavailable names the call.
    """
    call = f"GET {urlsplit(url).path}"
    failure = ""
    for attempt in range(1, attempts + 1):
        try:
            await _download(session, url, token, dest, max_bytes, user_agent)
            return
        except TarballUnavailable as exc:
            failure = str(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
        with contextlib.suppress(FileNotFoundError):
            os.remove(dest)  # a partial download: the next try starts afresh
        if attempt < attempts:
            await sleep(backoff_seconds * 2 ** (attempt - 1))
    raise TarballUnavailable(f"{call}: {failure} (gave up after {attempts} tries)")


async def _download(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    dest: Path,
    max_bytes: int,
    user_agent: str,
) -> None:
    api_origin = _origin(url)
    for _ in range(_MAX_REDIRECTS + 1):
        headers = {"User-Agent": user_agent, "Accept": "application/vnd.github+json"}
        # codeload.github.com is another host: it gets no token (the URL carries its own).
        if _origin(url) == api_origin:
            headers["Authorization"] = f"token {token}"
        async with session.get(url, headers=headers, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise WorkspaceError(f"tarball: HTTP {response.status} without a Location")
                url = urljoin(str(response.url), location)
                continue
            if response.status != 200:
                transient = response.status == 429 or response.status >= 500
                error = TarballUnavailable if transient else WorkspaceError
                raise error(f"HTTP {response.status} from {_origin(url)[1]}")
            declared = response.content_length
            if declared is not None and declared > max_bytes:
                raise WorkspaceError(
                    f"tarball: compressed archive of {declared} bytes exceeds the download cap "
                    f"of {max_bytes} bytes"
                )
            received = 0
            with dest.open("xb") as out:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise WorkspaceError(
                            f"tarball: compressed archive exceeds the download cap of "
                            f"{max_bytes} bytes"
                        )
                    out.write(chunk)
            return
    raise WorkspaceError(f"tarball: more than {_MAX_REDIRECTS} redirects")
