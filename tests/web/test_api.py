"""The operator's REST API over real HTTP: auth, filters, pagination, and real runs' data."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.domain.backlog import Backlog, BacklogEntry
from app.domain.issue_record import Severity
from app.domain.run_state import RunStatus
from app.store.backlogs import BacklogStore
from app.store.runs import RunStore
from app.web import auth
from app.web.keys import SETTINGS
from tests.fakegithub.scenario import FakeGitHub
from tests.web.api_support import AUTH, TOKEN, api_client, make_run, real_runs, validator

T0 = datetime(2025, 1, 1, tzinfo=UTC)


# --- auth -------------------------------------------------------------------------------------


async def test_without_a_configured_token_every_call_is_refused(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    client = await api_client(aiohttp_client, engine, token=None)
    for path in ("/api/runs", "/api/runs/x", "/api/reports/budget", "/api/repos/a/b/backlog"):
        response = await client.get(path, headers={"Authorization": "Bearer "})
        assert response.status == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert body["error"] == "unauthorized"
        assert "AUTOPACK_API_TOKEN" in body["message"]
        assert "not set" in body["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
async def test_a_wrong_or_missing_token_is_401(
    aiohttp_client: Any, engine: AsyncEngine, headers: dict[str, str]
) -> None:
    client = await api_client(aiohttp_client, engine)
    response = await client.get("/api/runs", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = await response.json()
    assert body["error"] == "unauthorized"
    assert "not set" not in body["message"]
    assert TOKEN not in await response.text()


async def test_the_right_token_is_accepted_whatever_the_scheme_case(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    client = await api_client(aiohttp_client, engine)
    for scheme in ("Bearer", "bearer", "BEARER"):
        response = await client.get("/api/runs", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"


async def test_the_openapi_document_is_public(aiohttp_client: Any, engine: AsyncEngine) -> None:
    client = await api_client(aiohttp_client, engine, token=None)
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert (await response.json())["openapi"] == "3.1.0"


def _request(token: str | None, headers: dict[str, str] | None = None) -> web.Request:
    app = web.Application()
    app[SETTINGS] = Settings(api_token=SecretStr(token) if token is not None else None)
    return make_mocked_request("GET", "/", headers=headers or {}, app=app)


def test_the_session_cookie_is_an_hmac_of_the_token_not_the_token() -> None:
    settings = Settings(api_token=SecretStr(TOKEN))
    value = auth.session_cookie_value(settings)
    assert value is not None
    assert TOKEN not in value
    assert len(value) == 64
    assert int(value, 16) >= 0
    other = auth.session_cookie_value(Settings(api_token=SecretStr(TOKEN + "2")))
    assert other != value
    assert (
        value
        == hmac.new(TOKEN.encode(), b"autopack-dashboard-session-v1", hashlib.sha256).hexdigest()
    )
    assert auth.session_cookie_value(Settings()) is None
    assert auth.session_cookie_value(Settings(api_token=SecretStr(""))) is None


def test_cookie_and_bearer_checks() -> None:
    cookie = auth.session_cookie_value(Settings(api_token=SecretStr(TOKEN)))
    assert cookie is not None
    good = {"Cookie": f"{auth.COOKIE_NAME}={cookie}"}
    assert auth.cookie_ok(_request(TOKEN, good))
    assert not auth.cookie_ok(_request(TOKEN + "2", good))  # a changed token logs everyone out
    assert not auth.cookie_ok(_request(TOKEN, {"Cookie": f"{auth.COOKIE_NAME}={TOKEN}"}))
    assert not auth.cookie_ok(_request(TOKEN))
    assert not auth.cookie_ok(_request(None, good))
    assert auth.bearer_ok(_request(TOKEN, AUTH))
    assert not auth.bearer_ok(_request(TOKEN, good))  # the cookie is not a bearer token
    assert not auth.bearer_ok(_request("", {"Authorization": "Bearer "}))
    assert auth.token_matches(Settings(api_token=SecretStr(TOKEN)), TOKEN)
    assert not auth.token_matches(Settings(), "")


# --- listing ----------------------------------------------------------------------------------


async def _seed(engine: AsyncEngine) -> list[str]:
    """Seven runs, an hour apart, newest last: ids in creation order."""
    store = RunStore(engine)
    plan = [
        ("acme/widgets", RunStatus.DONE_SUCCESS),
        ("acme/widgets", RunStatus.DONE_FAILED_BUDGET_EXHAUSTED),
        ("acme/gadgets", RunStatus.PHASE_EXECUTION),
        ("acme/widgets", RunStatus.CI_RUNNING),
        ("acme/gadgets", RunStatus.DONE_FAILED_CANCELLED),
        ("acme/widgets", RunStatus.GATE),
        ("acme/gadgets", RunStatus.DONE_SUCCESS),
    ]
    ids = []
    for number, (repo, status) in enumerate(plan, start=1):
        record = await make_run(store, repo, number, T0 + timedelta(hours=number), status)
        ids.append(record.id)
    return ids


async def _get(client: TestClient[Any, Any], url: str, status: int = 200) -> Any:
    response = await client.get(url, headers=AUTH)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_list_filters(aiohttp_client: Any, engine: AsyncEngine) -> None:
    ids = await _seed(engine)
    client = await api_client(aiohttp_client, engine)
    everything = await _get(client, "/api/runs")
    assert [r["id"] for r in everything["runs"]] == ids[::-1]
    assert everything["next"] is None
    assert everything["next_cursor"] is None
    validator("RunList").validate(everything)

    async def listed(query: str) -> list[str]:
        return [r["id"] for r in (await _get(client, f"/api/runs?{query}"))["runs"]]

    assert await listed("repository=acme/gadgets") == [ids[6], ids[4], ids[2]]
    assert await listed("status=DONE_SUCCESS") == [ids[6], ids[0]]
    assert await listed("status=active") == [ids[5], ids[3], ids[2]]
    assert await listed("status=terminal") == [ids[6], ids[4], ids[1], ids[0]]
    assert await listed("repository=acme/widgets&status=terminal") == [ids[1], ids[0]]
    # since is inclusive, and any zone is understood.
    assert await listed("since=2025-01-01T06:00:00%2B00:00") == [ids[6], ids[5]]
    assert await listed("since=2025-01-01T07:00:00%2B01:00") == [ids[6], ids[5]]
    assert await listed("since=2025-01-01T06:00:00Z") == [ids[6], ids[5]]
    assert await listed("repository=nobody/here") == []
    first = everything["runs"][-1]
    assert first["status"] == "DONE_SUCCESS"
    assert first["terminal"] is True
    assert first["failure_reason"] is None
    assert first["created_at"] == "2025-01-01T01:00:00+00:00"
    assert first["promotion"] is not None


async def test_pagination_walks_every_run_once(aiohttp_client: Any, engine: AsyncEngine) -> None:
    ids = await _seed(engine)
    client = await api_client(aiohttp_client, engine)
    url: str | None = "/api/runs?limit=3&repository=acme/widgets"
    seen: list[str] = []
    pages = 0
    while url is not None:
        body = await _get(client, url)
        assert len(body["runs"]) <= 3
        seen += [r["id"] for r in body["runs"]]
        url = body["next"]
        if url is not None:
            # The next link keeps the filters and the page size.
            query = parse_qs(urlsplit(url).query)
            assert query["repository"] == ["acme/widgets"]
            assert query["limit"] == ["3"]
            assert query["cursor"] == [body["next_cursor"]]
        pages += 1
    assert seen == [ids[5], ids[3], ids[1], ids[0]]
    assert pages == 2


async def test_a_page_stays_stable_when_new_runs_arrive(
    aiohttp_client: Any, engine: AsyncEngine
) -> None:
    ids = await _seed(engine)
    client = await api_client(aiohttp_client, engine)
    first = await _get(client, "/api/runs?limit=2")
    await make_run(RunStore(engine), "acme/new", 99, T0 + timedelta(days=1))
    second = await _get(client, first["next"])
    assert [r["id"] for r in second["runs"]] == [ids[4], ids[3]]


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("limit=%EF%BC%95", "limit"),  # a fullwidth digit is not a number here
        ("status=DONE", "status"),
        ("status=done_success", "status"),
        ("since=2025-01-01T00:00:00", "since"),  # no zone
        ("since=yesterday", "since"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),  # before year 1 in UTC
        ("repository=acme", "repository"),
        ("repository=acme/widgets/extra", "repository"),
        ("repository=-acme/widgets", "repository"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=", "cursor"),
        ("cursor=WyJ4IiwgMV0", "cursor"),  # valid base64 JSON, wrong shape
        ("cursor=WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIlx1MDAwMCJd", "cursor"),  # NUL id
        ("cursor=%21%21", "cursor"),
        # ["0001-01-01T00:00:00+01:00","a"]: before the start of the calendar once in UTC.
        ("cursor=WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzAxOjAwIiwiYSJd", "cursor"),
        ("repository=acme/%00", "repository"),
        ("repository=acme/..", "repository"),
        ("since=%00", "since"),
        ("status=%00", "status"),
        ("colour=blue", "colour"),  # a misspelt filter is not silently ignored
        ("limit=1&limit=2", "limit"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    aiohttp_client: Any, engine: AsyncEngine, query: str, parameter: str
) -> None:
    client = await api_client(aiohttp_client, engine)
    body = await _get(client, f"/api/runs?{query}", status=400)
    assert body["error"] == "bad_request"
    assert body["parameter"] == parameter
    validator("Error").validate(body)


async def test_bad_report_and_backlog_parameters(aiohttp_client: Any, engine: AsyncEngine) -> None:
    client = await api_client(aiohttp_client, engine)
    body = await _get(client, "/api/reports/budget?since=nope", status=400)
    assert body["parameter"] == "since"
    body = await _get(client, "/api/repos/-bad/widgets/backlog", status=400)
    assert body["parameter"] == "owner"
    body = await _get(client, "/api/repos/acme/wid%20gets/backlog", status=400)
    assert body["parameter"] == "repo"
    body = await _get(client, "/api/runs/x/events?after=-1", status=400)
    assert body["parameter"] == "after"
    body = await _get(client, "/api/runs/x/events?limit=501", status=400)
    assert body["parameter"] == "limit"


async def test_unknown_runs_are_404(aiohttp_client: Any, engine: AsyncEngine) -> None:
    client = await api_client(aiohttp_client, engine)
    for path in ("/api/runs/nope-1-1", "/api/runs/nope-1-1/events", "/api/runs/%00x"):
        body = await _get(client, path, status=404)
        assert body["error"] == "not_found"
        validator("Error").validate(body)


# --- backlog ----------------------------------------------------------------------------------


def _entry(key: str, severity: Severity, runs: int, tiers: int = 1) -> BacklogEntry:
    return BacklogEntry(
        issue_key=key,
        category=key.split(":")[0],
        base_severity=severity,
        age_in_runs=runs,
        age_in_tiers=tiers,
        occurrence_count=runs,
        first_seen_run="r1",
        last_seen_run="r4",
        last_seen_at="2025-01-04T00:00:00+00:00",
    )


async def test_backlog_shows_effective_severity(aiohttp_client: Any, engine: AsyncEngine) -> None:
    backlog = Backlog(
        (
            _entry("lint:young", Severity.MINOR, runs=1),
            _entry("lint:old", Severity.MINOR, runs=4),  # > 3 runs: counts as major
            _entry("lint:wide", Severity.MINOR, runs=1, tiers=3),  # > 2 tiers: major
            _entry("tests:broken", Severity.MAJOR, runs=1),
        ),
        last_run="r4",
    )
    await BacklogStore(engine).put("acme/widgets", backlog)
    client = await api_client(aiohttp_client, engine)
    body = await _get(client, "/api/repos/acme/widgets/backlog")
    validator("Backlog").validate(body)
    effective = {e["issue_key"]: e["effective_severity"] for e in body["entries"]}
    assert effective == {
        "lint:young": "minor",
        "lint:old": "major",
        "lint:wide": "major",
        "tests:broken": "major",
    }
    assert body["entries"][-1]["issue_key"] == "lint:young"  # effective majors first
    assert body["counts"] == {"total": 4, "effective_major": 3}
    assert body["top"]["runs"][0] == "lint:old"
    assert body["last_run"] == "r4"
    empty = await _get(client, "/api/repos/acme/gadgets/backlog")
    assert empty["entries"] == []
    assert empty["counts"]["total"] == 0


# --- real runs --------------------------------------------------------------------------------


async def test_real_runs_through_the_api(
    aiohttp_client: Any, fakegithub: FakeGitHub, engine: AsyncEngine, tmp_path: Path
) -> None:
    good, spent = await real_runs(fakegithub, engine, tmp_path / "data")
    client = await api_client(aiohttp_client, engine)

    listing = await _get(client, "/api/runs?repository=acme/widgets")
    assert [r["id"] for r in listing["runs"]] == [spent.id, good.id]
    summary = listing["runs"][1]
    assert summary["tokens"] == 1000
    assert summary["token_cap"] == 1500
    assert summary["phases"] == {"total": 1, "green": 1, "failed": 0}
    assert summary["ci_runs"] >= 1
    assert summary["issue_title"] == "One thing"
    assert summary["pull_number"] is not None
    assert summary["promotion"]["eligible"] is True

    detail = await _get(client, f"/api/runs/{good.id}")
    validator("RunDetail").validate(detail)
    assert [t["tier_id"] for t in detail["tiers"]] == ["T1"]
    assert detail["tiers"][0]["clean"] is True
    (phase,) = detail["phases"]
    assert phase["status"] == "green"
    assert phase["slice"] == f"{phase['task_category']}:{phase['complexity']}"
    (attempt,) = detail["attempts"]
    assert attempt["outcome"] == "green"
    assert attempt["tokens"] == 1000
    assert attempt["finished_at"] is not None
    budgets = detail["budgets"]
    assert budgets["run"]["tokens"] == {"used": 1000, "cap": 1500, "exhausted": False}
    assert budgets["run"]["wall_seconds"]["cap"] == 120 * 60
    assert 0 <= budgets["run"]["wall_seconds"]["used"] < 120
    assert budgets["tiers"][0]["ci_runs"]["used"] >= 1

    failed = await _get(client, f"/api/runs/{spent.id}")
    assert failed["run"]["status"] == "DONE_FAILED_BUDGET_EXHAUSTED"
    assert failed["run"]["failure_reason"]
    assert failed["run"]["promotion"]["eligible"] is False
    assert failed["budgets"]["run"]["tokens"]["exhausted"] is True

    # The event log, paged by seq, in order and without gaps.
    seqs: list[int] = []
    url: str | None = f"/api/runs/{good.id}/events?limit=5"
    while url is not None:
        page = await _get(client, url)
        validator("EventPage").validate(page)
        seqs += [e["seq"] for e in page["events"]]
        url = page["next"]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) > 5
    tail = await _get(client, f"/api/runs/{good.id}/events?after={seqs[-2]}")
    assert [e["seq"] for e in tail["events"]] == [seqs[-1]]
    assert tail["next"] is None

    report = await _get(client, "/api/reports/budget")
    validator("BudgetReport").validate(report)
    assert report["runs"]["total"] == 2
    (abort,) = report["budget_aborts"]
    assert abort["run_id"] == spent.id
    assert abort["reason"] == failed["run"]["failure_reason"]
    assert abort["tier_id"] == "T2"  # stopped before its first phase could start
    assert abort["phase_id"] == "T2.P1"
    assert abort["top_tier"] == "T1"  # ... after T1 spent the tokens
    assert abort["slice_tokens"] == {"feature:medium": 2000, "docs:low": 0}
    assert abort["top_slice"] in abort["slice_tokens"]
    assert abort["auditor_called"] is False
    assert sum(s["tokens"] for s in report["slices"]) == 1000 + abort["tokens"]
    # Spend per operator profile: every attempt here was the one builder profile's.
    assert [(p["profile"], p["role"], p["runs"]) for p in report["profiles"]] == [
        ("default", "builder", 2)
    ]
    assert report["profiles"][0]["tokens"] == 1000 + abort["tokens"]
    scoped = await _get(client, "/api/reports/budget?repository=acme/gadgets")
    assert scoped["budget_aborts"] == []
    assert scoped["runs"]["total"] == 0
    later = await _get(client, "/api/reports/budget?since=2999-01-01T00:00:00Z")
    assert later["slices"] == []
    assert later["profiles"] == []
