"""POST /api/github/webhooks: verify, de-duplicate, store in the inbox, answer at once."""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from app import metrics
from app.domain.triggers import may_matter
from app.logs import fields
from app.store.inbox import NewDelivery
from app.web import signature
from app.web.keys import INBOX_WAKE, INBOX_WRITER, SETTINGS

log = logging.getLogger("autopack.webhooks")

MAX_BODY_BYTES = 25 * 1024 * 1024
# Events some part of Autopack acts on; anything else is acknowledged and dropped. app.yml
# subscribes to exactly these (less the installation events GitHub sends every App anyway).
HANDLED_EVENTS = frozenset(
    {
        "check_run",
        "installation",
        "installation_repositories",
        "issue_comment",
        "issues",
        "pull_request",
        "status",
        "push",
    }
)


def _answer(status: int, outcome: str, message: str) -> web.Response:
    return web.json_response({"outcome": outcome, "message": message}, status=status)


async def receive(request: web.Request) -> web.Response:
    """Accept one delivery; nothing slow happens here, the worker processes the inbox."""
    started = time.perf_counter()
    event = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery", "")
    context: dict[str, object] = {"event": event or None, "delivery": delivery_id or None}
    response = await _receive(request, event, delivery_id, context)
    context["status"] = response.status
    metrics.observe_delivery(event, str(context.get("outcome", "")), HANDLED_EVENTS)
    context["ms"] = round((time.perf_counter() - started) * 1000, 2)
    log.info("webhook delivery", extra=fields(**context))
    return response


async def _receive(
    request: web.Request, event: str, delivery_id: str, context: dict[str, object]
) -> web.Response:
    settings = request.app[SETTINGS]
    if settings.webhook_secret is None:
        context["outcome"] = "refused_no_secret"
        return _answer(401, "refused", "WEBHOOK_SECRET is not configured on this server")
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        context["outcome"] = "too_large"
        return _answer(413, "refused", f"payload larger than {MAX_BODY_BYTES} bytes")
    body = await _read_body(request)
    if body is None:
        context["outcome"] = "too_large"
        return _answer(413, "refused", f"payload larger than {MAX_BODY_BYTES} bytes")
    secret = settings.webhook_secret.get_secret_value()
    if not signature.verify(body, request.headers.get("X-Hub-Signature-256"), secret):
        context["outcome"] = "bad_signature"
        return _answer(401, "refused", "missing or invalid X-Hub-Signature-256")
    if not event or not delivery_id or len(delivery_id) > 64:
        context["outcome"] = "bad_headers"
        return _answer(400, "refused", "X-GitHub-Event and X-GitHub-Delivery are required")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        context["outcome"] = "bad_json"
        return _answer(400, "refused", "body is not valid JSON")
    if not isinstance(payload, dict):
        context["outcome"] = "bad_json"
        return _answer(400, "refused", "body is not a JSON object")
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    installation = payload.get("installation")
    installation_id = installation.get("id") if isinstance(installation, dict) else None
    context.update(action=action, installation=installation_id)
    if event == "ping":
        context["outcome"] = "pong"
        return _answer(200, "pong", "pong")
    if event not in HANDLED_EVENTS:
        context["outcome"] = "ignored"
        return _answer(202, "ignored", f"event {event!r} is not used by Autopack")
    if not may_matter(event, payload, settings.app_id):
        # Mostly echoes of Autopack's own work: answered, never stored, never processed.
        context["outcome"] = "ignored"
        return _answer(202, "ignored", f"{event}.{action} cannot drive a run")
    delivery = NewDelivery(
        delivery_id=delivery_id,
        event=event,
        action=action,
        installation_id=installation_id if isinstance(installation_id, int) else None,
        body=body,
    )
    try:
        stored = await request.app[INBOX_WRITER].add(delivery)
    except (SQLAlchemyError, OSError) as exc:
        # Not stored, so not acknowledged: GitHub records a failed delivery we can redeliver.
        context["outcome"] = "store_failed"
        context["error"] = type(exc).__name__
        return _answer(503, "unavailable", "could not store the delivery; retry later")
    if not stored:
        context["outcome"] = "duplicate"
        return _answer(200, "duplicate", "delivery already received")
    request.app[INBOX_WAKE].set()
    context["outcome"] = "queued"
    return _answer(202, "queued", "delivery stored")


async def _read_body(request: web.Request) -> bytes | None:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None
