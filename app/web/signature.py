"""Webhook signature verification (HMAC-SHA256 only; sha1 is refused)."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, signature: str | None, secret: str) -> bool:
    """True when `signature` is the sha256 HMAC of `body`; compared in constant time."""
    # Header text may hold undecodable bytes as surrogates; only ASCII can be a hex digest.
    if not signature or not signature.startswith(PREFIX) or not signature.isascii():
        return False
    return hmac.compare_digest(sign(body, secret).encode(), signature.strip().encode())
