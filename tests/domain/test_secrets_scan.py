"""Secret patterns: true positives, near-misses that must not match, masking, linear scanning."""

from __future__ import annotations

import pytest

from app.domain.secrets_scan import SecretKind, classify_token, mask, redact, scan

# Every secret-shaped value is assembled at run time: this file holds none literally.
B62 = "aB3dE5gH7jK9mN1pQ2rS4tU6vW8xY0zC"  # 32 mixed base62 characters
GH36 = (B62 + "Lm4N")[:36]
TOKENS = {
    "classic-pat": ("gh" + "p_" + GH36, SecretKind.GITHUB_TOKEN),
    "oauth": ("gh" + "o_" + GH36, SecretKind.GITHUB_TOKEN),
    "user-to-server": ("gh" + "u_" + GH36, SecretKind.GITHUB_TOKEN),
    "installation": ("gh" + "s_" + GH36, SecretKind.GITHUB_TOKEN),
    "refresh": ("gh" + "r_" + GH36, SecretKind.GITHUB_TOKEN),
    "fine-grained": (
        "github" + "_pat_" + "11ABCDEFG0" + "a1B2c3D4e5F6" + "_" + (B62 * 2)[:59],
        SecretKind.GITHUB_FINE_GRAINED_TOKEN,
    ),
    "aws": ("AK" + "IA" + "Z7Q4" + "R2T6Y8U0W3E5", SecretKind.AWS_ACCESS_KEY_ID),
    "slack-bot": ("xo" + "xb-" + "123456789012-1234567890123-" + B62[:24], SecretKind.SLACK_TOKEN),
    "slack-user": ("xo" + "xp-" + "1234567890-9876543210-" + B62[:20], SecretKind.SLACK_TOKEN),
    "openai-classic": ("s" + "k-" + (B62 * 2)[:48], SecretKind.OPENAI_API_KEY),
    "openai-project": ("s" + "k-proj-" + (B62 * 3)[:80] + "_-x", SecretKind.OPENAI_API_KEY),
}


@pytest.mark.parametrize(("token", "kind"), list(TOKENS.values()), ids=list(TOKENS))
def test_true_positives(token: str, kind: SecretKind) -> None:
    for line in (token, f'key = "{token}"', f"  export X={token};", f"url=https://{token}@host"):
        hits = scan(f"first line\n{line}\n".encode())
        assert [(h.kind, h.line) for h in hits] == [(kind, 2)], line
        assert token not in hits[0].masked
        assert token[len(token) // 2 :] not in hits[0].masked


NEAR_MISSES = {
    "github-35": "gh" + "p_" + GH36[:35],
    "github-37": "gh" + "p_" + GH36 + "x",
    "github-bad-prefix": "gh" + "x_" + GH36,
    "github-embedded": "my_gh" + "p_" + GH36,
    "github-non-base62": "gh" + "p_" + GH36[:35] + "!",  # '!' ends the token: 35 chars
    "fine-grained-short": "github" + "_pat_" + "example",
    "aws-lowercase": "AK" + "IA" + "z7q4r2t6y8u0w3e5",
    "aws-15": "AK" + "IA" + "Z7Q4R2T6Y8U0W3E",
    "aws-other-prefix": "AK" + "IB" + "Z7Q4R2T6Y8U0W3E5",
    "slack-words": "xo" + "xb-this-is-not-a-token",
    "slack-bad-letter": "xo" + "xz-123456789012-" + B62[:20],
    "openai-short": "s" + "k-" + B62[:20],
    "openai-kebab": "s" + "k-this-is-a-very-long-kebab-case-css-class-name",
    "openai-no-digits": "s" + "k-" + "aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgHiJ",
    "openai-inside-word": "task-" + (B62 * 2)[:48],
    "pem-public": "-----BEGIN PUBLIC KEY-----\n" + "MIIBIjANBgkq" * 6,
    "pem-certificate": "-----BEGIN CERTIFICATE-----\n" + "MIIBIjANBgkq" * 6,
    "pem-header-in-code": 'if line == "-----BEGIN RSA ' + 'PRIVATE KEY-----":\n    parse()',
    "password-comparison": 'if password == "hunter2hunter2":',
    "password-env": 'password = "${DB_PASSWORD}"',
    "password-template": "password: '<your password here>'",
    "password-short": 'password = "ab"',
    "password-empty": 'password = ""',
    "password-in-word": 'mypasswordhint = "something"',
}


@pytest.mark.parametrize("text", list(NEAR_MISSES.values()), ids=list(NEAR_MISSES))
def test_near_misses_do_not_match(text: str) -> None:
    assert scan(text.encode()) == ()


PEM_BODY = "MIIEowIBAAKCAQEAx" + "Q" * 47


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA " + f"PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN " + f"PRIVATE KEY-----\n{PEM_BODY}\n",
        "-----BEGIN OPENSSH " + f"PRIVATE KEY-----\n{PEM_BODY}\n",
        "-----BEGIN EC " + f"PRIVATE KEY-----\n\n{PEM_BODY}\n",
        "-----BEGIN RSA " + "PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n",
        "-----BEGIN PGP " + f"PRIVATE KEY BLOCK-----\n{PEM_BODY}\n",
        'KEY = "-----BEGIN RSA ' + f'PRIVATE KEY-----\\n{PEM_BODY}\\n-----END"',  # escaped
    ],
)
def test_private_keys(text: str) -> None:
    hits = scan(("x = 1\n" + text).encode())
    assert [(h.kind, h.line) for h in hits] == [(SecretKind.PRIVATE_KEY, 2)]
    assert PEM_BODY not in hits[0].masked


@pytest.mark.parametrize(
    "line",
    [
        'password = "hunter2hunter2"',
        "DB_PASSWORD='s3cr3t-value'",
        '"password": "correct horse battery"',
        'passwd: "abcd1234"',
        'PWD="letmein!"',
    ],
)
def test_password_assignment_is_generic(line: str) -> None:
    (hit,) = scan(line.encode())
    assert hit.kind is SecretKind.PASSWORD_ASSIGNMENT
    assert hit.kind.generic
    value = line.rsplit(line[-1], 2)[1]
    assert value not in hit.masked
    assert hit.masked == f"**** ({len(value)} chars)"


def test_only_generic_kind_is_generic() -> None:
    assert [k for k in SecretKind if k.generic] == [SecretKind.PASSWORD_ASSIGNMENT]


def test_mask_keeps_only_the_public_prefix() -> None:
    token = TOKENS["classic-pat"][0]
    assert mask(token, 4) == "ghp_**** (40 chars)"
    assert mask("hunter2") == "**** (7 chars)"
    (hit,) = scan(token.encode())
    assert hit.masked == "ghp_**** (40 chars)"


def test_classify_token() -> None:
    assert classify_token(TOKENS["aws"][0]) == (SecretKind.AWS_ACCESS_KEY_ID, 4)
    assert classify_token("hello") is None


def test_hits_are_ordered_and_numbered() -> None:
    aws, gh = TOKENS["aws"][0], TOKENS["classic-pat"][0]
    content = f"{gh} {aws}\n\n\n{aws}\n".encode()
    assert [(h.line, h.kind) for h in scan(content)] == [
        (1, SecretKind.AWS_ACCESS_KEY_ID),
        (1, SecretKind.GITHUB_TOKEN),
        (4, SecretKind.AWS_ACCESS_KEY_ID),
    ]


def test_scan_reads_past_undecodable_bytes() -> None:
    token = TOKENS["classic-pat"][0].encode()
    content = b"\xff\xfe\x00junk\n" * 10 + token
    assert len(scan(content)) == 1
    assert scan(content[:-1]) == ()  # the token is cut: no match


def test_redact_masks_tokens_in_free_text() -> None:
    token = TOKENS["classic-pat"][0]
    text = f"error: bad credentials for {token} (at line 3)"
    assert redact(text) == "error: bad credentials for ghp_**** (40 chars) (at line 3)"
    assert redact("nothing to hide here") == "nothing to hide here"


PEM_BODY = "MIIEpAIBAAKCAQEA" + "q" * 48
PEM_TEXT = (
    "-----BEGIN RSA " + f"PRIVATE KEY-----\n{PEM_BODY}\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"key:\n{PEM_TEXT}\nafter", "key:\n-----BEGIN … PRIVATE KEY----- (redacted)\nafter"),
        # Escaped as in JSON, and cut before its footer: the body still goes.
        (
            "k=" + PEM_TEXT.replace("\n", "\\n").split("-----END")[0] + " and more words",
            "k=-----BEGIN … PRIVATE KEY----- (redacted)\\n and more words",
        ),
        (
            "code that names -----BEGIN RSA PRIVATE KEY----- x",
            "code that names -----BEGIN … PRIVATE KEY----- (redacted) x",
        ),
        ('db password = "hunter22hunter"', 'db password = "**** (14 chars)"'),
        ("password: '${DB_PASSWORD}'", "password: '${DB_PASSWORD}'"),  # a placeholder
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact_masks_private_keys_and_passwords(text: str, redacted: str) -> None:
    assert redact(text) == redacted
    assert redact(redacted) == redacted  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA PRIVATE KEY-----" * 40_000,  # headers, never a footer
        "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 19 + " " * 400_000,
        "-----BEGIN RSA PRIVATE KEY-----" + "\\n" * 200_000,
        "x -----BEGIN RSA PRIVATE KEY-----" * 20_000 + "-----END RSA PRIVATE KEY-----",
    ],
    ids=["headers", "short-body", "escaped-newlines", "one-footer-at-the-end"],
)
def test_pathological_keys_redact_in_linear_time(text: str) -> None:
    # One footer search per text, and each body chunk consumed once: finishes at once.
    assert "BEGIN RSA" not in redact(text)


@pytest.mark.parametrize(
    "content",
    [
        b"s" + b"k-" * 200_000,  # every position starts a candidate
        b"gh" + b"p_" * 200_000,
        b"password='" * 100_000,
        b'password="' + b"a" * 400_000,  # an unterminated value
        b"-----BEGIN " * 40_000 + b"PRIVATE KEY-----",
        b"-----BEGIN RSA PRIVATE KEY-----" * 12_000,
        b"A" * 400_000,
        b"xo" + b"xb-1" * 100_000,
    ],
    ids=["sk", "ghp", "password-quotes", "password-open", "pem", "pem-many", "long", "slack"],
)
def test_pathological_inputs_scan_in_linear_time(content: bytes) -> None:
    # A backtracking pattern would need ~10^11 steps on these; linear scanning finishes at once.
    assert isinstance(scan(content), tuple)
