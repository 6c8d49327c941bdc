"""The OpenAPI 3.1 document: valid, in step with the router, and true of the live app."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.web.app import create_app
from app.web.keys import LOGIN_THROTTLE
from app.web.openapi import PATHS, UNDOCUMENTED, document
from app.web.throttle import LoginThrottle
from tests.fakegithub.scenario import FakeGitHub
from tests.web.api_support import AUTH, TOKEN, api_client, real_runs, validator

# Routes outside /api that must be either documented or excluded on purpose.
TOP_LEVEL = ("/metrics", "/health", "/health/ready", "/")
EXAMPLES = 100  # 2 x 100 cases take about 3 s: well under the 30 s allowed


def _routes() -> set[tuple[str, str]]:
    app = create_app(Settings(), with_worker=False)
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method not in ("HEAD", "OPTIONS")
    }


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    validate(doc, cls=OpenAPIV31SpecValidator)
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)  # each component is a 2020-12 schema


def test_every_api_route_is_documented_and_every_documented_path_exists() -> None:
    routes = _routes()
    documented = {(method.upper(), path) for path, ops in PATHS.items() for method in ops}
    api_routes = {(m, p) for m, p in routes if p.startswith("/api/") and p not in UNDOCUMENTED}
    assert api_routes == documented
    paths = {p for _, p in routes}
    for path in TOP_LEVEL:
        assert (path in PATHS) != (path in UNDOCUMENTED), path
    assert "/api/github/webhooks" in paths
    assert "/health" in paths


def test_every_operation_is_secured_and_answers_json() -> None:
    for path, ops in PATHS.items():
        for operation in ops.values():
            responses = operation["responses"]
            assert "application/json" in responses["200"]["content"], path
            if path == "/api/openapi.json":
                assert operation["security"] == []
                continue
            assert operation["security"] == [{"bearer": []}], path
            assert "401" in responses, path
            assert "WWW-Authenticate" in responses["401"]["headers"], path
            for status, answer in responses.items():
                assert "schema" in answer["content"]["application/json"], (path, status)


def test_the_served_document_is_the_document() -> None:
    assert document() == document()
    one = document()
    one["paths"].clear()
    assert document()["paths"]  # callers get a copy


async def test_served_at_api_openapi_json(aiohttp_client: Any, engine: AsyncEngine) -> None:
    client = await api_client(aiohttp_client, engine)
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert await response.json() == document()


def test_a_response_that_drifts_from_its_schema_is_caught() -> None:
    # The validators used on real responses do reject a wrong shape.
    errors = list(validator("Error").iter_errors({"error": "teapot", "message": 1, "x": 2}))
    assert len(errors) == 3


def _fuzz(base_url: str, run_id: str) -> int:
    """Positive and negative schemathesis cases against the live server; returns cases sent."""
    schema = schemathesis.openapi.from_dict(document())
    sent = 0
    real = schema["/api/runs/{id}"]["GET"].as_strategy(path_parameters={"id": run_id})
    events = schema["/api/runs/{id}/events"]["GET"].as_strategy(path_parameters={"id": run_id})
    strategies = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE),
        schema.as_strategy(GenerationMode.NEGATIVE),
        real,
        events,
    )

    @given(case=strategies)
    @settings(
        max_examples=EXAMPLES * 2,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        nonlocal sent
        # A case whose headers are broken on purpose (e.g. no Authorization) is sent as made.
        if not case.meta.is_negative_at(ParameterLocation.HEADER):
            case.headers = {**(case.headers or {}), **AUTH}
        response = case.call(base_url=base_url, timeout=10)
        assert response.status_code < 500, (case.path, case.query, response.text[:300])
        # A cursor is opaque: one matching its pattern but not handed out is rightly refused.
        made_up_cursor = "cursor" in (case.query or {})
        case.validate_response(
            response, excluded_checks=[positive_data_acceptance] if made_up_cursor else None
        )
        sent += 1

    check()
    return sent


async def test_schemathesis_finds_no_server_error(
    fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    good, _ = await real_runs(fakegithub, engine, tmp_path / "data")
    app = create_app(Settings(api_token=SecretStr(TOKEN)), engine=engine, with_worker=False)
    # Negative cases send wrong tokens by the hundred; throttled, the rest would all be 429.
    app[LOGIN_THROTTLE] = LoginThrottle(allowed=10**6)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        # The fuzzer is synchronous (requests): it runs in a thread while this loop serves.
        sent = await asyncio.to_thread(_fuzz, str(server.make_url("")).rstrip("/"), good.id)
    finally:
        await server.close()
    assert sent >= EXAMPLES
