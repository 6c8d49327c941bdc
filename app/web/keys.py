"""Typed keys for what the aiohttp application shares between handlers."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.store.inbox import Inbox
from app.store.inbox_writer import InboxWriter
from app.web.bodies import BodyLimits, ByteBudget
from app.web.throttle import LoginThrottle

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
INBOX = web.AppKey("inbox", Inbox)
INBOX_WRITER = web.AppKey("inbox_writer", InboxWriter)
# Set by the webhook endpoint after storing a delivery, so an in-process worker wakes at once.
INBOX_WAKE = web.AppKey("inbox_wake", asyncio.Event)
# Webhook bodies: their limits, and the bytes of bodies being read held by this process.
BODY_LIMITS = web.AppKey("body_limits", BodyLimits)
BODY_BUDGET = web.AppKey("body_budget", ByteBudget)
# Wrong API tokens per client address (the API's bearer header and the dashboard's sign-in form).
LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)
