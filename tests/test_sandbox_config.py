"""The sandbox keys of the operator's file, the [planners] table, and what Settings knows."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, Settings, load_settings
from tests.github.fake_github import make_keypair

COMMAND = "backend = 'command'\ncommand = ['/usr/bin/agent']\n"


def operator_file(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "autopack.toml"
    path.write_text(toml)
    return load_settings({"AUTOPACK_CONFIG": str(path)}, dotenv_path=None)


def test_the_sandbox_keys_default_to_a_sandbox_with_network(tmp_path: Path) -> None:
    profile = operator_file(tmp_path, f"[builders.a]\n{COMMAND}").operator.builders["a"]

    assert profile.sandbox == "bwrap"
    assert profile.read_only == []
    assert profile.read_write == []
    assert profile.network is True
    assert profile.max_processes == 512
    assert profile.max_file_mb == 1024


def test_every_sandbox_key_is_read_for_builders_auditors_planners_and_probes(
    tmp_path: Path,
) -> None:
    keys = (
        "sandbox = 'none'\nread_only = ['/opt/agent']\nread_write = ['/var/cache/agent']\n"
        "network = false\nmax_processes = 64\nmax_file_mb = 10\n"
    )
    toml = (
        f"planner = 'plan'\n[builders.a]\n{COMMAND}{keys}[auditors.b]\n{COMMAND}{keys}"
        f"[planners.plan]\n{COMMAND}{keys}[probes]\nallow_repository_probes = true\n{keys}"
    )
    operator = operator_file(tmp_path, toml).operator
    planner = operator.planner_profile()
    assert planner is not None
    name, planner_keys = planner
    assert name == "planners.plan"
    for profile in (operator.builders["a"], operator.auditors["b"], planner_keys, operator.probes):
        assert profile.sandbox == "none"
        assert profile.read_only == ["/opt/agent"]
        assert profile.read_write == ["/var/cache/agent"]
        assert profile.network is False
        assert profile.max_processes == 64
        assert profile.max_file_mb == 10


def test_planner_may_still_name_a_builders_profile(tmp_path: Path) -> None:
    operator = operator_file(tmp_path, f"planner = 'a'\n[builders.a]\n{COMMAND}").operator

    planner = operator.planner_profile()
    assert planner is not None
    assert planner[0] == "builders.a"
    assert planner[1] is operator.builders["a"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            f"[builders.a]\n{COMMAND}read_only = ['opt/agent']",
            "builders.a.read_only: 'opt/agent' must be an absolute path",
        ),
        (
            f"[auditors.a]\n{COMMAND}read_write = ['/var/../etc']",
            "auditors.a.read_write: '/var/../etc' must be an absolute path without",
        ),
        (
            f"[planners.a]\n{COMMAND}read_write = ['/']",
            "planners.a.read_write: '/' cannot be listed",
        ),
        (f"[builders.a]\n{COMMAND}sandbox = 'docker'", "builders.a.sandbox: Input should be"),
        (f"[builders.a]\n{COMMAND}network = 'maybe'", "builders.a.network: Input should be"),
        (f"[builders.a]\n{COMMAND}max_processes = 0", "builders.a.max_processes: Input should"),
        ("[probes]\nread_only = ['x']", "probes.read_only: 'x' must be an absolute"),
        (
            "[builders.a]\nbackend = 'openai'\nbase_url = 'http://x'\nmodel = 'm'\nnetwork = false",
            "builders.a: network: only backend 'command' starts a process to contain",
        ),
        ("planner = 'ghost'", "planner 'ghost' is not one of the [builders] profiles or"),
    ],
)
def test_bad_sandbox_keys_are_one_line_errors(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        operator_file(tmp_path, toml)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_settings_know_the_files_a_sandbox_hides(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=8001\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bwrap").write_text("#!/bin/sh\n")
    (bin_dir / "bwrap").chmod(0o755)
    environ = {
        "PRIVATE_KEY_PATH": str(key),
        "DATABASE_URL": "sqlite+aiosqlite:////srv/autopack/autopack.db?mode=rwc",
        "PATH": str(bin_dir),
    }
    with pytest.raises(ConfigError):  # the key file does not exist yet: the usual error
        load_settings(environ, dotenv_path=env_file)
    key.write_text(make_keypair().private_pem)

    settings = load_settings(environ, dotenv_path=env_file)

    assert settings.private_key_path == key
    assert settings.dotenv_path == env_file
    assert settings.sqlite_file == Path("/srv/autopack/autopack.db")
    assert settings.bwrap_path == bin_dir / "bwrap"
    assert load_settings({"PATH": str(tmp_path)}, dotenv_path=None).bwrap_path is None


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite+aiosqlite:///./autopack.db", "autopack.db"),
        ("sqlite+aiosqlite:///:memory:", None),
        ("postgresql+asyncpg://u:p@db/autopack", None),
    ],
)
def test_the_sqlite_file(url: str, file: str | None) -> None:
    expected = Path(file) if file is not None else None
    assert Settings(database_url=url).sqlite_file == expected
