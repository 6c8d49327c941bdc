"""Configuration: every bad value gets one clear line naming the variable; secrets stay hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.config import ConfigError, Settings, load_settings


@pytest.fixture(scope="module")
def rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def load(env: dict[str, str]) -> Settings:
    return load_settings(env, dotenv_path=None)


def test_defaults() -> None:
    settings = load({})
    assert settings.app_id is None
    assert settings.webhook_secret is None
    assert settings.github_api_url == "https://api.github.com"
    assert settings.database_url == "sqlite+aiosqlite:///./autopack.db"
    assert settings.data_dir == Path("./.autonomous_runs")
    assert settings.port == 8000
    assert settings.api_token is None
    assert not settings.can_call_github
    assert settings.operator.integration_branch_prefix == "autopack/"
    assert settings.worker_concurrency == 8
    assert settings.lease_seconds == 10.0
    assert settings.retry_backoff_seconds == 1.0


def test_full_environment(rsa_pem: str, tmp_path: Path) -> None:
    settings = load(
        {
            "APP_ID": "12345",
            "PRIVATE_KEY": rsa_pem,
            "WEBHOOK_SECRET": "whsec-0123456789abcdef",
            "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
            "DATABASE_URL": "postgres://u:p@db/autopack",
            "AUTOPACK_DATA_DIR": str(tmp_path),
            "AUTOPACK_API_TOKEN": "apitoken-0123456789abcdef",
            "PORT": "9000",
        }
    )
    assert settings.app_id == 12345
    assert settings.can_call_github
    assert settings.github_api_url == "https://ghe.example.com/api/v3"
    assert settings.database_url == "postgresql+asyncpg://u:p@db/autopack"
    assert settings.data_dir == tmp_path
    assert settings.port == 9000


def test_secrets_never_in_repr(rsa_pem: str) -> None:
    settings = load(
        {
            "PRIVATE_KEY": rsa_pem,
            "WEBHOOK_SECRET": "whsec-123-0123456789abc",
            "AUTOPACK_API_TOKEN": "tok-456-0123456789abcd",
        }
    )
    shown = repr(settings) + str(settings) + str(settings.model_dump())
    for secret in ("whsec-123", "tok-456", "PRIVATE KEY", rsa_pem.splitlines()[1]):
        assert secret not in shown
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "whsec-123-0123456789abc"


def test_private_key_with_escaped_newlines(rsa_pem: str) -> None:
    settings = load({"PRIVATE_KEY": rsa_pem.replace("\n", "\\n")})
    assert settings.private_key is not None
    assert settings.private_key.get_secret_value().strip() == rsa_pem.strip()


def test_private_key_path(rsa_pem: str, tmp_path: Path) -> None:
    (tmp_path / "key.pem").write_text(rsa_pem)
    settings = load({"PRIVATE_KEY_PATH": str(tmp_path / "key.pem")})
    assert settings.private_key is not None


def test_dotenv_is_read_and_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("WEBHOOK_SECRET=from-file-0123456789abcd\nPORT=7000\n")
    settings = load_settings({"PORT": "7001"}, dotenv_path=dotenv)
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "from-file-0123456789abcd"
    assert settings.port == 7001


EC_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    .decode()
)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APP_ID": "abc"}, "APP_ID: must be a positive integer"),
        ({"APP_ID": "0"}, "APP_ID: must be a positive integer"),
        ({"APP_ID": "-4"}, "APP_ID: must be a positive integer"),
        ({"PORT": "http"}, "PORT: must be a TCP port number"),
        ({"PORT": "70000"}, "PORT: must be a TCP port number"),
        ({"GITHUB_API_URL": "api.github.com"}, "GITHUB_API_URL: must be an http(s) URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must start with"),
        ({"DATABASE_URL": "autopack.db"}, "DATABASE_URL: must start with"),
        ({"PRIVATE_KEY": "not a key"}, "PRIVATE_KEY: is not a PEM-encoded private key"),
        ({"PRIVATE_KEY": EC_PEM}, "PRIVATE_KEY: GitHub App keys are RSA"),
        ({"PRIVATE_KEY": "x", "PRIVATE_KEY_PATH": "y"}, "PRIVATE_KEY: set either"),
        ({"PRIVATE_KEY_PATH": "/nonexistent/key.pem"}, "PRIVATE_KEY_PATH (/nonexistent/key.pem)"),
        ({"AUTOPACK_LOG_FORMAT": "xml"}, "AUTOPACK_LOG_FORMAT: must be one of"),
        ({"AUTOPACK_WORKER_CONCURRENCY": "0"}, "AUTOPACK_WORKER_CONCURRENCY: must be a whole"),
        ({"AUTOPACK_WORKER_CONCURRENCY": "2.5"}, "AUTOPACK_WORKER_CONCURRENCY: must be a whole"),
        ({"AUTOPACK_WORKER_CONCURRENCY": "999"}, "AUTOPACK_WORKER_CONCURRENCY: must be a whole"),
        ({"AUTOPACK_RETRY_BACKOFF_SECONDS": "-1"}, "AUTOPACK_RETRY_BACKOFF_SECONDS: must be"),
        ({"AUTOPACK_CONFIG": "/nonexistent.toml"}, "AUTOPACK_CONFIG (/nonexistent.toml): cannot"),
        ({"WEBHOOK_SECRET": "s3cr3t"}, "WEBHOOK_SECRET: must be at least 20 characters"),
        ({"AUTOPACK_API_TOKEN": "x" * 19}, "AUTOPACK_API_TOKEN: must be at least 20 characters"),
    ],
)
def test_bad_environment(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(env)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert "BEGIN" not in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert "x" * 19 not in str(caught.value)


GOOD_TOML = """
planner = "claude"
integration_branch_prefix = "bots/"

[builders.claude]
backend = "command"
command = ["claude-wrapper", "--phase"]
timeout_seconds = 600

[auditors.reviewer]
backend = "openai"
base_url = "http://127.0.0.1:9999/v1"
model = "reviewer-1"
api_key_env = "REVIEWER_KEY"

[limits]
max_concurrent_runs = 2

[repositories]
allowed = ["octo-org/*"]

[probes]
allow_repository_probes = true
"""


def test_operator_config(tmp_path: Path) -> None:
    path = tmp_path / "autopack.toml"
    path.write_text(GOOD_TOML)
    operator = load({"AUTOPACK_CONFIG": str(path)}).operator
    assert operator.builders["claude"].command == ["claude-wrapper", "--phase"]
    assert operator.auditors["reviewer"].model == "reviewer-1"
    assert operator.limits.max_concurrent_runs == 2
    assert operator.limits.max_run_minutes == 120
    assert operator.repositories.allowed == ["octo-org/*"]
    assert operator.probes.allow_repository_probes
    assert operator.integration_branch_prefix == "bots/"


def test_the_operator_marks_which_builder_profiles_a_repository_may_name(tmp_path: Path) -> None:
    path = tmp_path / "autopack.toml"
    every = GOOD_TOML + "\n[builders.cheap]\nbackend = 'command'\ncommand = ['cheap']\n"
    path.write_text(every)
    assert set(load({"AUTOPACK_CONFIG": str(path)}).operator.nameable_builders()) == {
        "claude",
        "cheap",
    }  # unmarked: every profile
    marked = 'allowed = ["octo-org/*"]\nbuilder_profiles = ["cheap"]'
    path.write_text(every.replace('allowed = ["octo-org/*"]', marked))
    operator = load({"AUTOPACK_CONFIG": str(path)}).operator
    assert set(operator.nameable_builders()) == {"cheap"}
    assert set(operator.builders) == {"claude", "cheap"}  # still the planner's to use


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("planner = ", "not valid TOML"),
        ("[limits]\nmax_concurent_runs = 3", "limits.max_concurent_runs: Extra inputs"),
        ("[limits]\nmax_concurrent_runs = 0", "limits.max_concurrent_runs: Input should be"),
        ("[builders.x]\nbackend = 'command'", "builders.x: backend 'command' needs a non-empty"),
        ("[builders.x]\nbackend = 'openai'", "builders.x: backend 'openai' needs base_url"),
        ("[builders.x]\nbackend = 'shell'\ncommand = ['a']", "builders.x.backend: Input should"),
        ("planner = 'nobody'", "planner 'nobody' is not one of the [builders] profiles"),
        ("integration_branch_prefix = 'main'", "integration_branch_prefix must look like"),
        (
            "[repositories]\nbuilder_profiles = ['ghost']",
            "repositories.builder_profiles names 'ghost', not one of the [builders] profiles",
        ),
        ("[repositories]\nbuilder_profiles = 'cheap'", "repositories.builder_profiles: Input"),
    ],
)
def test_bad_operator_config(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "autopack.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load({"AUTOPACK_CONFIG": str(path)})
    assert str(caught.value).startswith(f"AUTOPACK_CONFIG ({path}): ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
