"""Settings, read once at start from the environment, `.env` and the operator's TOML file."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./autopack.db"
DEFAULT_DATA_DIR = "./.autonomous_runs"
MAX_CONFIG_BYTES = 1024 * 1024
MIN_SECRET_CHARS = 20


class ConfigError(Exception):
    """A bad or missing setting; the message is one line naming the variable."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuilderProfile(_Strict):
    """A way to run a coding agent, defined by the operator (never by a repository)."""

    backend: Literal["command", "openai"]
    command: list[str] = Field(default_factory=list)
    timeout_seconds: Annotated[int, Field(gt=0, le=24 * 3600)] = 1800
    max_output_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    cpu_seconds: Annotated[int, Field(gt=0)] | None = None
    memory_mb: Annotated[int, Field(gt=0)] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    max_turns: Annotated[int, Field(gt=0)] = 40

    @field_validator("command")
    @classmethod
    def _command_not_blank(cls, value: list[str]) -> list[str]:
        if any(not part.strip() for part in value):
            raise ValueError("command entries must not be blank")
        return value

    @model_validator(mode="after")
    def _backend_fields(self) -> BuilderProfile:
        if self.backend == "command" and not self.command:
            raise ValueError("backend 'command' needs a non-empty command list")
        if self.backend == "openai" and not (self.base_url and self.model):
            raise ValueError("backend 'openai' needs base_url and model")
        return self


class Limits(_Strict):
    """Operator-wide limits that a repository's ruleset can lower but never raise."""

    max_concurrent_runs: Annotated[int, Field(gt=0)] = 4
    max_runs_per_repository: Annotated[int, Field(gt=0)] = 2
    max_run_minutes: Annotated[int, Field(gt=0)] = 120
    max_tokens_per_run: Annotated[int, Field(gt=0)] = 5_000_000


class Repositories(_Strict):
    """Which repositories this deployment serves; empty means every installed repository."""

    allowed: list[str] = Field(default_factory=list)


class Probes(_Strict):
    """Whether repository-defined probe commands may run on this server (off by default)."""

    allow_repository_probes: bool = False


class OperatorConfig(_Strict):
    """The operator's TOML file (`AUTOPACK_CONFIG`)."""

    builders: dict[str, BuilderProfile] = Field(default_factory=dict)
    auditors: dict[str, BuilderProfile] = Field(default_factory=dict)
    planner: str | None = None
    limits: Limits = Field(default_factory=Limits)
    repositories: Repositories = Field(default_factory=Repositories)
    probes: Probes = Field(default_factory=Probes)
    integration_branch_prefix: str = "autopack/"

    @model_validator(mode="after")
    def _references(self) -> OperatorConfig:
        if self.planner is not None and self.planner not in self.builders:
            raise ValueError(f"planner {self.planner!r} is not one of the [builders] profiles")
        prefix = self.integration_branch_prefix
        if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix:
            raise ValueError("integration_branch_prefix must look like 'name/' (no leading '/')")
        return self


class Settings(BaseModel):
    """Everything the service reads from its environment; secrets are masked in reprs."""

    model_config = ConfigDict(frozen=True)

    app_id: int | None = None
    private_key: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    github_api_url: str = DEFAULT_API_URL
    database_url: str = DEFAULT_DATABASE_URL
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    config_path: Path | None = None
    api_token: SecretStr | None = None
    port: int = 8000
    log_format: Literal["auto", "json", "text"] = "auto"
    # How often a run waiting for CI looks at its check runs when no webhook came.
    ci_poll_seconds: float = 30.0
    # How long a worker holds a run or a delivery before another worker may take it over.
    lease_seconds: float = 60.0
    # `autopack worker` serves /metrics and /health on this port when set (it has no web server).
    metrics_port: int | None = None
    operator: OperatorConfig = Field(default_factory=OperatorConfig)

    @property
    def can_call_github(self) -> bool:
        """True when the App id and key are both set."""
        return self.app_id is not None and self.private_key is not None

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite default (or another SQLite file)."""
        return self.database_url.startswith("sqlite")


def load_settings(
    environ: Mapping[str, str] | None = None, dotenv_path: Path | None = Path(".env")
) -> Settings:
    """Read settings from `environ` (default: the process environment) over `.env` when present."""
    env: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        env.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    env.update(os.environ if environ is None else environ)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    values: dict[str, Any] = {
        "app_id": _parse_app_id(get("APP_ID")),
        "private_key": _read_private_key(get("PRIVATE_KEY"), get("PRIVATE_KEY_PATH")),
        "webhook_secret": _parse_secret("WEBHOOK_SECRET", get("WEBHOOK_SECRET")),
        "github_api_url": _parse_api_url(get("GITHUB_API_URL") or DEFAULT_API_URL),
        "database_url": _parse_database_url(get("DATABASE_URL") or DEFAULT_DATABASE_URL),
        "data_dir": Path(get("AUTOPACK_DATA_DIR") or DEFAULT_DATA_DIR),
        "api_token": _parse_secret("AUTOPACK_API_TOKEN", get("AUTOPACK_API_TOKEN")),
        "port": _parse_port(get("PORT")),
        "log_format": _parse_choice("AUTOPACK_LOG_FORMAT", get("AUTOPACK_LOG_FORMAT") or "auto"),
        "ci_poll_seconds": _parse_seconds(
            "AUTOPACK_CI_POLL_SECONDS", get("AUTOPACK_CI_POLL_SECONDS")
        ),
        "lease_seconds": _parse_seconds(
            "AUTOPACK_LEASE_SECONDS", get("AUTOPACK_LEASE_SECONDS"), default=60.0
        ),
        "metrics_port": _parse_metrics_port(get("AUTOPACK_METRICS_PORT")),
    }
    config_path = get("AUTOPACK_CONFIG")
    if config_path is not None:
        values["config_path"] = Path(config_path)
        values["operator"] = load_operator_config(Path(config_path))
    return Settings(**values)


def load_operator_config(path: Path) -> OperatorConfig:
    """Parse and validate the operator's TOML file, or raise ConfigError naming the problem."""
    where = f"AUTOPACK_CONFIG ({path})"
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the file: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: file is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    try:
        return OperatorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def _parse_app_id(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) <= 0:
        raise ConfigError(f"APP_ID: must be a positive integer (the GitHub App id), got {value!r}")
    return int(value)


def _parse_secret(name: str, value: str | None) -> str | None:
    # A short secret can be guessed (the API token) or brute-forced offline from one signed
    # delivery (the webhook secret); `openssl rand -hex 32` gives 64 characters.
    if value is not None and len(value) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{name}: must be at least {MIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32), "
            f"got {len(value)}"
        )
    return value


def _parse_port(value: str | None) -> int:
    if value is None:
        return 8000
    if not value.strip().isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(f"PORT: must be a TCP port number between 1 and 65535, got {value!r}")
    return int(value)


def _parse_metrics_port(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.strip().isdigit() or not 0 < int(value) < 65536:
        raise ConfigError(
            f"AUTOPACK_METRICS_PORT: must be a TCP port number between 1 and 65535, got {value!r}"
        )
    return int(value)


def _parse_seconds(name: str, value: str | None, default: float = 30.0) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0.1 <= seconds <= 3600:
        raise ConfigError(f"{name}: must be a number of seconds from 0.1 to 3600, got {value!r}")
    return seconds


def _parse_api_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"GITHUB_API_URL: must be an http(s) URL, got {value!r}")
    return value.rstrip("/")


def _parse_database_url(value: str) -> str:
    if value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return value
    if value.startswith(("postgres://", "postgresql://")):
        # Heroku-style URLs name no driver; we only speak asyncpg to PostgreSQL.
        return "postgresql+asyncpg://" + value.split("://", 1)[1]
    scheme = value.split("://", 1)[0] if "://" in value else "(none)"
    raise ConfigError(
        "DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg://, "
        f"got scheme {scheme!r}"
    )


LogFormat = Literal["auto", "json", "text"]
_LOG_FORMATS: dict[str, LogFormat] = {"auto": "auto", "json": "json", "text": "text"}


def _parse_choice(name: str, value: str) -> LogFormat:
    if value in _LOG_FORMATS:
        return _LOG_FORMATS[value]
    raise ConfigError(f"{name}: must be one of auto, json, text, got {value!r}")


def _read_private_key(text: str | None, path: str | None) -> SecretStr | None:
    if text is not None and path is not None:
        raise ConfigError("PRIVATE_KEY: set either PRIVATE_KEY or PRIVATE_KEY_PATH, not both")
    name = "PRIVATE_KEY"
    if path is not None:
        name = f"PRIVATE_KEY_PATH ({path})"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"{name}: cannot read the key file: {reason}") from None
    if text is None:
        return None
    # Probot convention: a key pasted into one environment line has its newlines escaped.
    pem = text.replace("\\n", "\n").strip() + "\n"
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: is not a PEM-encoded private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{name}: GitHub App keys are RSA; this key is another type")
    return SecretStr(pem)
