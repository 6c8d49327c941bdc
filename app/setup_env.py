"""The `.env` file registration writes: the App's credentials, mode 0600, all or nothing.

Existing lines are kept as they are (comments, other settings, multi-line values); a key this
writes replaces its old line only when the caller has asked the person first (`existing_keys`
says which ones would be replaced). The file is written beside itself and renamed into place,
so an interruption leaves the old file, never half of a new one.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from dotenv.parser import parse_stream

from app.config import DEFAULT_API_URL
from app.setup_manifest import RegisteredApp

# What a registration writes; any of them already set is only replaced after asking.
REGISTRATION_KEYS = (
    "APP_ID",
    "PRIVATE_KEY",
    "PRIVATE_KEY_PATH",
    "WEBHOOK_SECRET",
    "GITHUB_CLIENT_ID",
)
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+-]*")


def _bindings(env_file: Path) -> list[tuple[str | None, str]]:
    """(key or None, original text) of each entry of the file, in order; [] when absent."""
    try:
        text = env_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [(b.key, b.original.string) for b in parse_stream(io.StringIO(text))]


def existing_keys(env_file: Path, key_file: Path | None = None) -> list[str]:
    """The registration keys the file already sets (and the key file, if it exists)."""
    present = {key for key, _ in _bindings(env_file) if key in REGISTRATION_KEYS}
    found = [key for key in REGISTRATION_KEYS if key in present]
    if key_file is not None and key_file.exists():
        found.append(str(key_file))
    return found


def credentials(
    app: RegisteredApp,
    webhook_secret: str,
    env_file: Path,
    environ: Mapping[str, str],
    *,
    api_url: str = DEFAULT_API_URL,
    key_file: Path | None = None,
) -> dict[str, str]:
    """The lines to write: the App's id, key (or key file), secret, client id, and the rest."""
    values = {"APP_ID": str(app.id)}
    if key_file is not None:
        values["PRIVATE_KEY_PATH"] = str(key_file.resolve())
    else:
        values["PRIVATE_KEY"] = app.pem.strip() + "\n"  # written on one line, `\n` for newlines
    values["WEBHOOK_SECRET"] = webhook_secret
    values["GITHUB_CLIENT_ID"] = app.client_id
    already = {key for key, _ in _bindings(env_file) if key is not None} | set(environ)
    if api_url.rstrip("/") != DEFAULT_API_URL and "GITHUB_API_URL" not in already:
        values["GITHUB_API_URL"] = api_url.rstrip("/")
    if "AUTOPACK_API_TOKEN" not in already:
        # The dashboard's sign-in; registering is when an operator first wants to look.
        values["AUTOPACK_API_TOKEN"] = secrets.token_urlsafe(32)
    return values


def overridden(values: Mapping[str, str], environ: Mapping[str, str]) -> list[str]:
    """Keys just written that the process environment also sets (it wins over `.env`)."""
    return [key for key in values if environ.get(key)]


def write_env(env_file: Path, values: Mapping[str, str]) -> None:
    """Write `values` into the file (0600), dropping every older registration key line."""
    dropped = set(values) | set(REGISTRATION_KEYS)
    kept = [text for key, text in _bindings(env_file) if key not in dropped]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    lines = [f"{key}={_quoted(value)}\n" for key, value in values.items()]
    _write_private(env_file, "".join(kept) + "".join(lines))


def write_key_file(path: Path, pem: str) -> None:
    """Write the App's private key to its own file (0600)."""
    _write_private(path, pem.strip() + "\n")


def _quoted(value: str) -> str:
    if _PLAIN.fullmatch(value):
        return value
    # python-dotenv decodes these escapes inside double quotes.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
