"""Settings, read once at start from the environment, `.env` and the operator's TOML file."""

from __future__ import annotations

import os
import shutil
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


class SandboxKeys(_Strict):
    """How the processes of a profile (or the probes) are contained; see docs/builders.md."""

    sandbox: Literal["bwrap", "none"] = "bwrap"
    read_only: list[str] = Field(default_factory=list)
    read_write: list[str] = Field(default_factory=list)
    network: bool = True
    max_processes: Annotated[int, Field(gt=0)] = 512
    max_file_mb: Annotated[int, Field(gt=0)] = 1024

    @field_validator("read_only", "read_write")
    @classmethod
    def _absolute_paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/") or "\0" in path or os.path.normpath(path) != path:
                raise ValueError(f"{path!r} must be an absolute path without '..', '.' or '//'")
            if path == "/":
                raise ValueError("'/' cannot be listed: the sandbox already shows it read-only")
        return value


SANDBOX_KEYS = frozenset(SandboxKeys.model_fields)


class BuilderProfile(SandboxKeys):
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
        if self.backend == "openai" and SANDBOX_KEYS & self.model_fields_set:
            keys = ", ".join(sorted(SANDBOX_KEYS & self.model_fields_set))
            raise ValueError(f"{keys}: only backend 'command' starts a process to contain")
        return self


class Limits(_Strict):
    """Operator-wide limits that a repository's ruleset can lower but never raise."""

    max_concurrent_runs: Annotated[int, Field(gt=0)] = 4
    max_runs_per_repository: Annotated[int, Field(gt=0)] = 2
    max_run_minutes: Annotated[int, Field(gt=0)] = 120
    max_tokens_per_run: Annotated[int, Field(gt=0)] = 5_000_000


class Repositories(_Strict):
    """Which repositories this deployment serves (empty: every installed repository), and which
    [builders] profiles their rulesets may name (None: all of them)."""

    allowed: list[str] = Field(default_factory=list)
    builder_profiles: list[str] | None = None


class Probes(SandboxKeys):
    """Whether repository-defined probe commands may run on this server (off by default)."""

    allow_repository_probes: bool = False


class OperatorConfig(_Strict):
    """The operator's TOML file (`AUTOPACK_CONFIG`)."""

    builders: dict[str, BuilderProfile] = Field(default_factory=dict)
    auditors: dict[str, BuilderProfile] = Field(default_factory=dict)
    planners: dict[str, BuilderProfile] = Field(default_factory=dict)
    planner: str | None = None
    limits: Limits = Field(default_factory=Limits)
    repositories: Repositories = Field(default_factory=Repositories)
    probes: Probes = Field(default_factory=Probes)
    integration_branch_prefix: str = "autopack/"

    @model_validator(mode="after")
    def _references(self) -> OperatorConfig:
        if self.planner is not None and self.planner_profile() is None:
            raise ValueError(
                f"planner {self.planner!r} is not one of the [builders] profiles or [planners]"
            )
        unknown = sorted(set(self.repositories.builder_profiles or ()) - set(self.builders))
        if unknown:
            raise ValueError(
                f"repositories.builder_profiles names {', '.join(map(repr, unknown))}, not one "
                "of the [builders] profiles"
            )
        prefix = self.integration_branch_prefix
        if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix:
            raise ValueError("integration_branch_prefix must look like 'name/' (no leading '/')")
        return self

    def nameable_builders(self) -> dict[str, BuilderProfile]:
        """The builder profiles a repository's ruleset may name (`builder`, `builders`)."""
        names = self.repositories.builder_profiles
        if names is None:
            return dict(self.builders)
        return {name: profile for name, profile in self.builders.items() if name in names}

    def planner_profile(self) -> tuple[str, BuilderProfile] | None:
        """The profile `planner` names, with where it is: [planners] first, else [builders]."""
        for table, profiles in (("planners", self.planners), ("builders", self.builders)):
            if self.planner is not None and self.planner in profiles:
                return f"{table}.{self.planner}", profiles[self.planner]
        return None


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
    # Files a sandboxed process must never see (the key is also held in `private_key`).
    private_key_path: Path | None = None
    dotenv_path: Path | None = Path(".env")
    # bubblewrap, found on PATH at start; None when it is not installed.
    bwrap_path: Path | None = Field(default_factory=lambda: _find_bwrap(None))
    api_token: SecretStr | None = None
    port: int = 8000
    log_format: Literal["auto", "json", "text"] = "auto"
    # How often a run waiting for CI looks at its check runs when no webhook came.
    ci_poll_seconds: float = 30.0
    # How long a worker holds a run or a delivery before another worker may take it over;
    # renewed every third of it while held, so short enough to recover quickly from a crash.
    lease_seconds: float = 10.0
    # Runs one worker process drives at once (each under its own lease).
    worker_concurrency: int = 8
    # `autopack worker` serves /metrics and /health on this port when set (it has no web server).
    metrics_port: int | None = None
    # The first wait before retrying a failed GitHub call or download; it doubles each try.
    retry_backoff_seconds: float = 1.0
    operator: OperatorConfig = Field(default_factory=OperatorConfig)

    @property
    def can_call_github(self) -> bool:
        """True when the App id and key are both set."""
        return self.app_id is not None and self.private_key is not None

    @property
    def is_sqlite(self) -> bool:
        """True when the database is the embedded SQLite default (or another SQLite file)."""
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file, when the database is one (not in memory)."""
        if not self.is_sqlite:
            return None
        name = self.database_url.split(":///", 1)[-1].split("?", 1)[0]
        return None if name in ("", ":memory:") else Path(name)


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
            "AUTOPACK_LEASE_SECONDS", get("AUTOPACK_LEASE_SECONDS"), default=10.0
        ),
        "worker_concurrency": _parse_count(
            "AUTOPACK_WORKER_CONCURRENCY", get("AUTOPACK_WORKER_CONCURRENCY"), default=8
        ),
        "metrics_port": _parse_metrics_port(get("AUTOPACK_METRICS_PORT")),
        "retry_backoff_seconds": _parse_seconds(
            "AUTOPACK_RETRY_BACKOFF_SECONDS", get("AUTOPACK_RETRY_BACKOFF_SECONDS"), default=1.0
        ),
        "private_key_path": Path(key_path) if (key_path := get("PRIVATE_KEY_PATH")) else None,
        "dotenv_path": dotenv_path,
        "bwrap_path": _find_bwrap(get("PATH")),
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


def _find_bwrap(path: str | None) -> Path | None:
    found = shutil.which("bwrap", path=path)
    return Path(found) if found else None


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


def _parse_count(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.strip().isdigit() or not 1 <= int(value) <= 256:
        raise ConfigError(f"{name}: must be a whole number from 1 to 256, got {value!r}")
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
