"""Helpers to post signed webhooks to the app under test."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from app.web.signature import sign

SECRET = "test-webhook-secret-0123456789"


async def post_webhook(
    client: TestClient[Any, Any],
    event: str,
    payload: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    secret: str = SECRET,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    """POST a delivery signed the way GitHub signs it."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    all_headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body, secret),
        "User-Agent": "GitHub-Hookshot/test",
    }
    all_headers.update(headers or {})
    # A BytesIO body keeps aiohttp from warning about large raw bodies in the size-limit tests.
    return await client.post("/api/github/webhooks", data=io.BytesIO(body), headers=all_headers)
