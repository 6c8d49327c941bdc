"""POST /api/github/webhooks: verify, de-duplicate, store in the inbox, answer at once."""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from app import metrics
from app.domain.payload import MalformedPayload, parse_payload
from app.domain.triggers import may_matter
from app.engine.routes import EVENTS, ROUTES
from app.logs import fields
from app.store.inbox import NewDelivery
from app.web import signature
from app.web.bodies import BodyTimedOut, BodyTooLarge, HeldBody, ServerBusy
from app.web.keys import BODY_BUDGET, BODY_LIMITS, INBOX_WAKE, INBOX_WRITER, SETTINGS

log = logging.getLogger("autopack.webhooks")

# Events some part of Autopack acts on (each with the payload parts its handlers read); anything
# else is acknowledged and dropped. app.yml subscribes to exactly these (less the installation
# events GitHub sends every App anyway).
HANDLED_EVENTS = EVENTS
# GitHub's delivery ids are GUIDs; anything printable and short is kept, nothing a column refuses.
DELIVERY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _answer(
    status: int, outcome: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"outcome": outcome, "message": message}
    return web.json_response(body, status=status, headers=headers)


def _refuse_unread(status: int, outcome: str, message: str) -> web.Response:
    """An answer given before the body was read whole: the connection closes after it."""
    headers = {"Retry-After": "1"} if status == 429 else None
    response = _answer(status, outcome, message, headers)
    response.force_close()
    return response


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
    if "Content-Encoding" in request.headers:
        # GitHub never compresses deliveries; inflating one would read more than was sent.
        context["outcome"] = "encoded"
        return _refuse_unread(415, "refused", "Content-Encoding is not accepted")
    limits = request.app[BODY_LIMITS]
    async with HeldBody(request.app[BODY_BUDGET], limits) as held:
        try:
            body = await held.read(request)
        except BodyTooLarge:
            context["outcome"] = "too_large"
            return _refuse_unread(413, "refused", f"payload larger than {limits.max_bytes} bytes")
        except BodyTimedOut:
            context["outcome"] = "read_timeout"
            message = f"the body did not arrive within {limits.read_seconds:g} seconds"
            return _refuse_unread(408, "refused", message)
        except ServerBusy:
            context["outcome"] = "busy"
            return _refuse_unread(429, "busy", "too many deliveries being read; retry later")
        return await _verified(request, body, event, delivery_id, context)


async def _verified(
    request: web.Request, body: bytes, event: str, delivery_id: str, context: dict[str, object]
) -> web.Response:
    settings = request.app[SETTINGS]
    assert settings.webhook_secret is not None
    secret = settings.webhook_secret.get_secret_value()
    if not signature.verify(body, request.headers.get("X-Hub-Signature-256"), secret):
        context["outcome"] = "bad_signature"
        return _answer(401, "refused", "missing or invalid X-Hub-Signature-256")
    if not event or not DELIVERY_ID.fullmatch(delivery_id):
        context["outcome"] = "bad_headers"
        return _answer(400, "refused", "X-GitHub-Event and X-GitHub-Delivery are required")
    try:
        payload = parse_payload(event, body)
    except MalformedPayload as exc:
        context["outcome"] = "bad_json"
        return _answer(400, "refused", str(exc))
    context.update(action=payload.action, installation=payload.installation_id)
    if event == "ping":
        context["outcome"] = "pong"
        return _answer(200, "pong", "pong")
    if event not in HANDLED_EVENTS:
        context["outcome"] = "ignored"
        return _answer(202, "ignored", f"event {event!r} is not used by Autopack")
    if not ROUTES.handles(event, payload) or not may_matter(event, payload, settings.app_id):
        # Mostly echoes of Autopack's own work: answered, never stored, never processed.
        context["outcome"] = "ignored"
        return _answer(202, "ignored", f"{event}.{payload.action} cannot drive a run")
    delivery = NewDelivery(
        delivery_id=delivery_id,
        event=event,
        action=payload.action,
        installation_id=payload.installation_id,
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
