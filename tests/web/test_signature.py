"""Webhook signatures: GitHub's published test vector and every way to get it wrong."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.web.signature import sign, verify

# From GitHub's docs, "Validating webhook deliveries".
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
EXPECTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_test_vector() -> None:
    assert sign(BODY, SECRET) == EXPECTED
    assert verify(BODY, EXPECTED, SECRET)


SHA1 = "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()


@pytest.mark.parametrize(
    ("body", "header", "secret"),
    [
        pytest.param(BODY, None, SECRET, id="missing"),
        pytest.param(BODY, "", SECRET, id="empty"),
        pytest.param(BODY, SHA1, SECRET, id="sha1-only"),
        pytest.param(BODY, EXPECTED.removeprefix("sha256="), SECRET, id="no-prefix"),
        pytest.param(BODY, EXPECTED.upper(), SECRET, id="upper-case-prefix"),
        pytest.param(BODY, EXPECTED[:-1] + "0", SECRET, id="one-digit-off"),
        pytest.param(BODY + b" ", EXPECTED, SECRET, id="body-changed"),
        pytest.param(BODY, EXPECTED, "another secret", id="wrong-secret"),
        pytest.param(BODY, "sha256=é", SECRET, id="non-ascii"),
    ],
)
def test_refused(body: bytes, header: str | None, secret: str) -> None:
    assert not verify(body, header, secret)


@given(st.binary(max_size=512), st.text(min_size=1, max_size=40), st.binary(max_size=512))
def test_only_the_exact_body_verifies(body: bytes, secret: str, other: bytes) -> None:
    assert verify(body, sign(body, secret), secret)
    assert verify(other, sign(body, secret), secret) == (other == body)
