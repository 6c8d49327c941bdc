"""The deploy kit says what the code says: commands, probes, env names, secrets, users.

Docker is not needed: compose.yaml, manifests/ and the Dockerfile are parsed and checked against
the code's own names (the CLI's subcommands, the routes of the web and worker applications, the
environment variables `load_settings` reads, the operator file's schema).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from app.cli import build_parser
from app.config import Settings, load_operator_config
from app.web import health, metrics
from app.web.app import create_app
from app.web.keys import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def _env_names() -> set[str]:
    """Every variable `load_settings` reads (its `get("NAME")` calls)."""
    tree = ast.parse((ROOT / "app" / "config.py").read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "get"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }


ENV_NAMES = _env_names()


def _commands() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def _paths(app: web.Application) -> set[str]:
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


WEB_PATHS = _paths(create_app(Settings(), with_worker=False))


def _worker_paths() -> set[str]:
    """What `autopack worker` serves on AUTOPACK_METRICS_PORT (built as worker_metrics does)."""
    app = web.Application()
    app[SETTINGS] = Settings()
    metrics.setup(app)
    health.setup(app)
    return _paths(app)


WORKER_PATHS = _worker_paths()


def test_the_code_names_it_is_checked_against() -> None:
    assert {"APP_ID", "DATABASE_URL", "AUTOPACK_METRICS_PORT", "PRIVATE_KEY_PATH"} <= ENV_NAMES
    assert {"serve", "web", "worker", "migrate", "setup", "receive"} <= _commands()
    assert {"/health", "/health/ready", "/api/github/webhooks"} <= WEB_PATHS
    assert {"/metrics", "/health", "/health/ready"} == WORKER_PATHS


# -- Dockerfile ----------------------------------------------------------------------------------


def test_the_image_is_non_root_with_bubblewrap_and_autopack_as_entrypoint() -> None:
    user = re.search(r"^USER (\d+)$", DOCKERFILE, re.MULTILINE)
    assert user is not None
    assert int(user.group(1)) != 0
    assert re.search(r"apt-get install .*\bbubblewrap\b", DOCKERFILE)
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert entrypoint is not None
    assert yaml.safe_load(entrypoint.group(1))[-1] == "autopack"
    command = re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert command is not None
    assert yaml.safe_load(command.group(1))[0] in _commands()
    assert "Agent CLIs" in DOCKERFILE  # the documented place to add them
    assert "COPY app.yml" in DOCKERFILE  # what `autopack setup` registers
    for name in re.findall(r"^\s+(\w+)=", DOCKERFILE.split("ENV ", 1)[1], re.MULTILINE):
        assert name in ENV_NAMES | {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}, name


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".env", ".venv", ".git", "*.db", "*.pem", ".autonomous_runs"):
        assert pattern in ignored
    for needed in ("app", "pyproject.toml", "README.md", "app.yml"):
        assert needed not in ignored


# -- compose.yaml --------------------------------------------------------------------------------

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
AUTOPACK_SERVICES = ("migrate", "web", "worker")


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {str(k): str(v) for k, v in env.items()}


def test_compose_runs_migrate_once_then_web_and_worker() -> None:
    assert set(SERVICES) == {"postgres", *AUTOPACK_SERVICES}
    for name in AUTOPACK_SERVICES:
        service = SERVICES[name]
        assert service["command"] == [name]
        assert service["command"][0] in _commands()
        assert service["env_file"] == ".env"  # the secrets
        assert service["read_only"] is True
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert SERVICES[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }


def test_compose_settings_are_the_codes_and_agree_with_each_other() -> None:
    postgres = SERVICES["postgres"]["environment"]
    for name in AUTOPACK_SERVICES:
        env = _compose_env(SERVICES[name])
        assert set(env) <= ENV_NAMES, set(env) - ENV_NAMES
        url = env["DATABASE_URL"]
        assert url.startswith("postgresql+asyncpg://autopack:")
        assert url.endswith(f"@postgres:5432/{postgres['POSTGRES_DB']}")
        assert postgres["POSTGRES_PASSWORD"] in url  # the same ${POSTGRES_PASSWORD:-...}
        (config,) = SERVICES[name]["configs"]
        assert config["target"] == env["AUTOPACK_CONFIG"]
    worker = SERVICES["worker"]
    data = _compose_env(worker)["AUTOPACK_DATA_DIR"]
    assert f"data:{data}" in worker["volumes"]
    assert "data" in COMPOSE["volumes"]


def test_compose_healthchecks_probe_real_paths_on_the_right_ports() -> None:
    web_env, worker_env = _compose_env(SERVICES["web"]), _compose_env(SERVICES["worker"])
    for name, port, paths in (
        ("web", web_env["PORT"], WEB_PATHS),
        ("worker", worker_env["AUTOPACK_METRICS_PORT"], WORKER_PATHS),
    ):
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", probe)
        assert found is not None, probe
        assert found.group(1) == port
        assert found.group(2) in paths
    assert f"{web_env['PORT']}:{web_env['PORT']}" in SERVICES["web"]["ports"]


def test_only_the_worker_gets_what_the_sandbox_needs() -> None:
    assert "seccomp=unconfined" in SERVICES["worker"]["security_opt"]
    assert "security_opt" not in SERVICES["web"]
    assert "security_opt" not in SERVICES["migrate"]


def test_the_compose_operator_file_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "operator.toml"
    path.write_text(COMPOSE["configs"]["operator"]["content"])
    assert "default" in load_operator_config(path).builders


# -- manifests/ ----------------------------------------------------------------------------------


def _documents() -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in docs, f"{key} twice"
            docs[key] = doc
    return docs


DOCS = _documents()
KUSTOMIZATION = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text(encoding="utf-8"))
SECRET = DOCS[("Secret", "autopack")]
CONFIGMAP = DOCS[("ConfigMap", "autopack-operator")]


def _pod(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = DOCS[(kind, name)]["spec"]["template"]["spec"]
    return spec


PODS = {
    "migrate": _pod("Job", "autopack-migrate"),
    "web": _pod("Deployment", "autopack-web"),
    "worker": _pod("Deployment", "autopack-worker"),
}


def test_kustomize_lists_every_manifest_and_the_namespace() -> None:
    files = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == files
    assert ("Namespace", KUSTOMIZATION["namespace"]) in DOCS
    images = {image["name"] for image in KUSTOMIZATION["images"]}
    for pod in PODS.values():
        assert {c["image"] for c in pod["containers"]} <= images


@pytest.mark.parametrize("role", ["migrate", "web", "worker"])
def test_each_pod_runs_a_real_command_with_the_codes_settings(role: str) -> None:
    (container,) = PODS[role]["containers"]
    assert container["args"] == [role]
    assert container["args"][0] in _commands()
    names = {item["name"] for item in container.get("env", [])}
    assert names <= ENV_NAMES, names - ENV_NAMES
    for item in container.get("env", []):
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == SECRET["metadata"]["name"]
            assert ref["key"] in SECRET["stringData"]
            assert ref["key"] == item["name"]


@pytest.mark.parametrize("role", ["web", "worker"])
def test_probes_ask_the_real_paths_on_named_ports(role: str) -> None:
    (container,) = PODS[role]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    paths = WEB_PATHS if role == "web" else WORKER_PATHS
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    for probe in ("livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] in paths
        assert check["port"] in ports
    served = env["PORT"] if role == "web" else env["AUTOPACK_METRICS_PORT"]
    assert served == str(next(iter(ports.values())))


@pytest.mark.parametrize("role", ["migrate", "web", "worker"])
def test_pods_are_non_root_with_a_read_only_root(role: str) -> None:
    pod = PODS[role]
    user = re.search(r"^USER (\d+)$", DOCKERFILE, re.MULTILINE)
    assert user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "memory" in container["resources"]["limits"]


@pytest.mark.parametrize("role", ["web", "worker"])
def test_mounted_files_are_where_the_settings_point(role: str, tmp_path: Path) -> None:
    pod = PODS[role]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config = mounts[env["AUTOPACK_CONFIG"]]
    assert volumes[config["name"]]["configMap"]["name"] == CONFIGMAP["metadata"]["name"]
    assert config["subPath"] in CONFIGMAP["data"]
    key_dir, key_file = env["PRIVATE_KEY_PATH"].rsplit("/", 1)
    key_volume = volumes[mounts[key_dir]["name"]]["secret"]
    assert key_volume["secretName"] == SECRET["metadata"]["name"]
    assert [(i["key"], i["path"]) for i in key_volume["items"]] == [(key_file, key_file)]
    assert key_file in SECRET["stringData"]
    operator = tmp_path / "operator.toml"
    operator.write_text(CONFIGMAP["data"][config["subPath"]])
    assert "default" in load_operator_config(operator).builders
    if role == "worker":  # workspaces: an emptyDir at the data directory (trade-off documented)
        assert "emptyDir" in volumes[mounts[env["AUTOPACK_DATA_DIR"]]["name"]]


def test_the_service_reaches_the_web_port() -> None:
    service = DOCS[("Service", "autopack-web")]["spec"]
    (container,) = PODS["web"]["containers"]
    assert service["ports"][0]["targetPort"] in {p["name"] for p in container["ports"]}
    labels = DOCS[("Deployment", "autopack-web")]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()


def test_metrics_stay_internal_and_budgets_match_the_pods() -> None:
    worker = DOCS[("NetworkPolicy", "autopack-worker")]["spec"]
    (rule,) = worker["ingress"]
    assert rule["from"], "the worker's metrics port must not be open to everyone"
    assert [port["port"] for port in rule["ports"]] == ["metrics"]
    for role in ("web", "worker"):
        labels = DOCS[("Deployment", f"autopack-{role}")]["spec"]["template"]["metadata"]["labels"]
        for kind in ("NetworkPolicy", "PodDisruptionBudget"):
            selector = DOCS[(kind, f"autopack-{role}")]["spec"]
            selector = selector.get("podSelector") or selector["selector"]
            assert selector["matchLabels"].items() <= labels.items()
