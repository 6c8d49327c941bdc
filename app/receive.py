"""`autopack receive EVENT PAYLOAD.json [--url URL]`: replay a saved payload, as `probot receive`.

The payload is signed with WEBHOOK_SECRET and posted with a fresh delivery id, exactly as GitHub
would post it, so the server under test cannot tell the difference; its answer is printed.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import aiohttp

from app import installed_version
from app.config import Settings
from app.web.signature import sign

MAX_PAYLOAD_BYTES = 25 * 1024 * 1024  # what the webhook endpoint accepts
_EVENT = re.compile(r"[a-z_]{1,64}")


class ReceiveError(Exception):
    """The payload cannot be sent; `status` is the exit status to end with."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def default_url(settings: Settings) -> str:
    """The local server's webhook endpoint."""
    return f"http://localhost:{settings.port}/api/github/webhooks"


def read_payload(path: Path) -> bytes:
    """The payload's bytes, checked to be one JSON object."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ReceiveError(f"cannot read {path}: {exc.strerror}") from None
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ReceiveError(f"{path} is larger than {MAX_PAYLOAD_BYTES} bytes")
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise ReceiveError(f"{path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ReceiveError(
            f"{path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ReceiveError(f"{path} holds JSON, but not an object: GitHub payloads are objects")
    return body


async def receive(settings: Settings, event: str, path: Path, url: str | None) -> int:
    """Sign and post the payload; print the answer; 0 when the server took it (2xx)."""
    if not _EVENT.fullmatch(event):
        raise ReceiveError(f"{event!r} is not a webhook event name (like issues or push)")
    body = read_payload(path)
    if settings.webhook_secret is None:
        raise ReceiveError(
            "WEBHOOK_SECRET is not set: it signs the payload, and must be the server's own"
        )
    target = url or default_url(settings)
    delivery = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"autopack-receive/{installed_version()}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(body, settings.webhook_secret.get_secret_value()),
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
            session.post(target, data=body, headers=headers) as response,
        ):
            status, text = response.status, await response.text()
    except aiohttp.InvalidURL:
        raise ReceiveError(f"{target!r} is not a URL") from None
    except aiohttp.ClientConnectorError as exc:
        number = exc.os_error.errno
        reason = os.strerror(number) if number else str(exc.os_error) or type(exc).__name__
        raise ReceiveError(
            f"cannot reach {target}: {reason} (is Autopack running? `autopack serve`)", 1
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ReceiveError(f"posting to {target} failed: {exc or type(exc).__name__}", 1) from None
    print(f"autopack: {event} delivery {delivery} -> HTTP {status} {_answer(text)}")
    return 0 if 200 <= status < 300 else 1


def _answer(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    if isinstance(data, dict) and "outcome" in data:
        return f"{data['outcome']}: {data.get('message', '')}".rstrip(": ")
    return json.dumps(data)[:200]
