"""The dashboard over HTTP: sign-in, redirects, escaping and each page's content, on real runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from app.store.db import create_engine
from app.web.app import create_app
from app.web.auth import COOKIE_NAME
from app.web.dashboard import safe_next
from app.web.timeline import OUTCOME_COLOURS
from tests.web.dashboard_data import (
    HOSTILE_PHASE,
    HOSTILE_TITLE,
    TOKEN,
    Recorded,
    record,
    settings,
)

Client = TestClient[Any, Any]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("dashboard-runs"))


async def _client(
    aiohttp_client: Any, recorded: Recorded, tmp_path: Path, token: str | None
) -> AsyncIterator[Client]:
    engine = create_engine(recorded.copy_url(tmp_path))
    client: Client = await aiohttp_client(
        create_app(settings(token), engine=engine, with_worker=False)
    )
    yield client
    await engine.dispose()


@pytest.fixture
async def anonymous(
    aiohttp_client: Any, recorded: Recorded, tmp_path: Path
) -> AsyncIterator[Client]:
    """A client of a dashboard over the recorded runs, not signed in."""
    async for client in _client(aiohttp_client, recorded, tmp_path, TOKEN):
        yield client


@pytest.fixture
async def client(anonymous: Client) -> Client:
    """The same, signed in through the form."""
    response = await sign_in(anonymous, TOKEN)
    assert response.status == 303
    return anonymous


async def sign_in(client: Client, token: str, next_: str = "") -> ClientResponse:
    data = {"token": token, "next": next_}
    return await client.post("/login", data=data, allow_redirects=False)


class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(html)
    return parser.tags


def assert_inert(html: str) -> None:
    """No script, no event handler attribute, no foreign resource anywhere on the page."""
    for tag, attrs in tags(html):
        assert tag not in ("script", "iframe", "object", "embed"), tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert "://" not in value, (tag, attrs)


async def page(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path, allow_redirects=False)
    assert response.status == status, (path, response.status)
    assert response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    html = await response.text()
    assert_inert(html)
    return html


# --- signing in and out ---


@pytest.mark.parametrize(
    "path", ["/", "/runs/acme-widgets-1-1", "/repos/acme/widgets/backlog", "/budget", "/?status=x"]
)
async def test_pages_without_a_session_go_to_the_login_form(anonymous: Client, path: str) -> None:
    response = await anonymous.get(path, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")
    form = await anonymous.get(response.headers["Location"])
    assert form.status == 200
    assert 'name="token"' in await form.text()


async def test_a_wrong_token_gets_the_form_again_with_401(anonymous: Client) -> None:
    response = await sign_in(anonymous, "not-the-token")
    assert response.status == 401
    html = await response.text()
    assert "That is not the API token." in html
    assert 'name="token"' in html
    assert "Set-Cookie" not in response.headers
    assert (await anonymous.get("/", allow_redirects=False)).status == 303


async def test_the_right_token_sets_a_strict_http_only_cookie(anonymous: Client) -> None:
    response = await sign_in(anonymous, TOKEN)
    assert response.status == 303
    assert response.headers["Location"] == "/"
    cookie = response.cookies[COOKIE_NAME]
    assert cookie.value
    assert TOKEN not in cookie.value  # the cookie never carries the token itself
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # plain http: a Secure cookie would never come back
    assert (await anonymous.get("/", allow_redirects=False)).status == 200


async def test_the_cookie_is_secure_over_https(anonymous: Client) -> None:
    response = await anonymous.post(
        "/login",
        data={"token": TOKEN},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.cookies[COOKIE_NAME]["secure"] is True


async def test_sign_in_returns_to_the_page_asked_for(anonymous: Client, recorded: Recorded) -> None:
    wanted = f"/runs/{recorded.green}"
    redirect = await anonymous.get(wanted, allow_redirects=False)
    form = await anonymous.get(redirect.headers["Location"])
    assert f'name="next" value="{wanted}"' in await form.text()
    response = await sign_in(anonymous, TOKEN, wanted)
    assert response.headers["Location"] == wanted


@pytest.mark.parametrize(
    ("offered", "target"),
    [
        ("/runs/x?after=3", "/runs/x?after=3"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/login", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        ("", "/"),
    ],
)
def test_after_sign_in_only_paths_on_this_site(offered: str, target: str) -> None:
    assert safe_next(offered) == target


async def test_the_form_sends_a_signed_in_browser_on(client: Client) -> None:
    response = await client.get("/login?next=/budget", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/budget"


async def test_sign_out_clears_the_cookie(client: Client) -> None:
    response = await client.post("/logout", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/login"
    cleared = response.cookies[COOKIE_NAME]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"
    assert (await client.get("/", allow_redirects=False)).status == 303


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "same-origin", "Origin": "https://dash.example"}, 303),
        ({"Origin": "https://dash.example", "X-Forwarded-Host": "dash.example"}, 303),
    ],
)
async def test_forms_posted_from_another_site_are_refused(
    anonymous: Client, headers: dict[str, str], status: int
) -> None:
    response = await anonymous.post(
        "/login", data={"token": TOKEN}, headers=headers, allow_redirects=False
    )
    assert response.status == status
    assert (COOKIE_NAME in response.cookies) == (status == 303)


async def test_a_bearer_header_works_like_the_cookie(anonymous: Client) -> None:
    response = await anonymous.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200


async def test_without_a_configured_token_nobody_gets_in(
    aiohttp_client: Any, recorded: Recorded, tmp_path: Path
) -> None:
    async for client in _client(aiohttp_client, recorded, tmp_path, None):
        form = await client.get("/login")
        assert "AUTOPACK_API_TOKEN is not set" in await form.text()
        response = await sign_in(client, "")
        assert response.status == 401
        assert COOKIE_NAME not in response.cookies
        assert (await client.get("/", allow_redirects=False)).status == 303


async def test_static_files_need_no_session(anonymous: Client) -> None:
    css = await anonymous.get("/static/dashboard.css")
    assert css.status == 200
    assert css.content_type == "text/css"
    assert "svg.timeline" in await css.text()
    assert (await anonymous.get("/static/favicon.svg")).content_type == "image/svg+xml"
    assert (await anonymous.get("/static/../app.py")).status == 404
    assert (await anonymous.get("/static/secret.txt")).status == 404


# --- pages ---


async def test_runs_list_shows_both_runs_and_escapes_the_hostile_title(
    client: Client, recorded: Recorded
) -> None:
    html = await page(client, "/")
    assert f'href="/runs/{recorded.green}"' in html
    assert f'href="/runs/{recorded.failed}"' in html
    assert "DONE_SUCCESS" in html
    assert "DONE_FAILED_REQUIRES_HUMAN_REVIEW" in html
    assert "DONE_FAILED_BUDGET_EXHAUSTED" in html
    assert HOSTILE_TITLE not in html
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt; &amp; &lt;img" in html
    assert 'href="/repos/acme/widgets/backlog"' in html


async def test_runs_list_filters_by_status(client: Client, recorded: Recorded) -> None:
    html = await page(client, "/?status=DONE_SUCCESS")
    assert recorded.green in html
    assert recorded.failed not in html
    html = await page(client, "/?status=terminal")
    assert all(run in html for run in (recorded.green, recorded.failed, recorded.exhausted))
    html = await page(client, "/?status=active")
    assert "No runs match these filters" in html
    html = await page(client, "/?repository=acme/other")
    assert "No runs match these filters" in html
    # The filter form sends empty fields for "any".
    html = await page(client, "/?repository=&status=")
    assert recorded.green in html


# base64 of ["0001-01-01T00:00:00+01:00","a"]: a date before the start of the calendar in UTC.
EDGE_OF_TIME = "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzAxOjAwIiwiYSJd"


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/?status=no-such-status", "status"),
        ("/?status=%00", "status"),
        ("/?cursor=%%%not-a-cursor", "cursor"),
        ("/?cursor=garbage", "cursor"),
        (f"/?cursor={EDGE_OF_TIME}", "cursor"),
        ("/?repository=%00", "repository"),
        ("/?repository=acme", "repository"),
        ("/?status=active&status=terminal", "status"),
        ("/?colour=blue", "colour"),
        ("/runs/x?after=%C2%B2", "after"),
        ("/runs/x?after=-1", "after"),
        ("/runs/x?after=1e3", "after"),
        ("/runs/x?before=3", "before"),
        ("/repos/acme/%00/backlog", "repo"),
        ("/repos/-acme/widgets/backlog", "owner"),
        ("/repos/acme/wid%20gets/backlog", "repo"),
        ("/budget?repository=acme/widgets", "repository"),
    ],
)
async def test_a_bad_parameter_is_a_400_page_naming_it(
    client: Client, path: str, parameter: str
) -> None:
    html = await page(client, path, status=400)
    assert "Bad request" in html
    assert f"{parameter}: " in html


async def test_green_run_page(client: Client, recorded: Recorded) -> None:
    html = await page(client, f"/runs/{recorded.green}")
    assert "DONE_SUCCESS" in html
    # The timeline: one bar per attempt, red CI first, then green, in phase lanes.
    bars = [attrs for tag, attrs in tags(html) if tag == "rect" and attrs.get("class") == "bar"]
    assert [b["data-outcome"] for b in bars] == ["ci_red", "green", "green"]
    assert bars[0]["fill"] == OUTCOME_COLOURS["ci_red"]
    assert bars[0]["y"] == bars[1]["y"] != bars[2]["y"]
    # Budgets, phases and the issue with its place in the code.
    assert "3,000 / 3,500" in html
    assert "T1 CI runs" in html
    assert "builder:todo:T1_P1" in html
    assert "work/T1_P1.txt:2" in html
    assert "a TODO is left in the file" in html
    # The issue title and the phase title came from the issue: shown, escaped.
    assert HOSTILE_TITLE not in html
    assert HOSTILE_PHASE not in html
    assert "Add &lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert "Log" in html
    assert "transition" in html


async def test_failed_run_page(client: Client, recorded: Recorded) -> None:
    html = await page(client, f"/runs/{recorded.failed}")
    assert "DONE_FAILED_REQUIRES_HUMAN_REVIEW" in html
    assert "auditor attempts used up" in html
    bars = [attrs for tag, attrs in tags(html) if tag == "rect" and attrs.get("class") == "bar"]
    assert [b["data-outcome"] for b in bars] == ["builder_failed"] * 3
    assert [b.get("stroke-dasharray") for b in bars] == [None, None, "3 2"]  # the auditor's
    assert "the command exited with code 1" in html


async def test_run_log_pages(client: Client, recorded: Recorded) -> None:
    html = await page(client, f"/runs/{recorded.green}?after=100000")
    assert "No log entries after #100000" in html
    assert "ci_red" in html  # the rest of the page is still there


async def test_unknown_run_is_404(client: Client) -> None:
    html = await page(client, "/runs/%3Cscript%3Enope", status=404)
    assert "Run not found" in html
    assert "&lt;script&gt;nope" in html


async def test_backlog_page(client: Client, recorded: Recorded) -> None:
    html = await page(client, "/repos/acme/widgets/backlog")
    assert "Backlog of acme/widgets" in html
    # The green run's minor issue went unseen for two runs since: resolved, off the backlog.
    assert "builder:todo:T1_P1" not in html
    assert "builder:failed" in html
    assert f'href="/runs/{recorded.failed}"' in html
    assert f'Last run: <a class="mono" href="/runs/{recorded.exhausted}"' in html
    html = await page(client, "/repos/acme/empty/backlog")
    assert "No open issues." in html


async def test_budget_page(client: Client, recorded: Recorded) -> None:
    html = await page(client, "/budget")
    assert "3 runs: 1 DONE_FAILED_BUDGET_EXHAUSTED" in html
    assert "feature:medium" in html
    assert "The auditor was called in on 1 phases" in html
    # Spend per operator profile and role: the builder's attempts and the auditor's escalation.
    profiles = html.split("Spend per profile", 1)[1].split("Runs that ran out of budget", 1)[0]
    assert '<td class="mono">default</td><td>builder</td>' in profiles
    assert "<td>auditor</td>" in profiles
    # The run that ran out: which one, why, and how far it got.
    aborts = html.split("Runs that ran out of budget", 1)[1]
    assert f'href="/runs/{recorded.exhausted}"' in aborts
    assert recorded.green not in aborts
    assert "3,500" in aborts


async def test_signed_in_pages_offer_sign_out(client: Client) -> None:
    html = await page(client, "/")
    forms = [attrs for tag, attrs in tags(html) if tag == "form"]
    assert {"method": "post", "action": "/logout"} in forms
