"""The dashboard in a real headless Chromium: sign in, every page loads clean, the timeline shows.

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`), driven by Playwright; no
browser is ever downloaded. Without Chromium the tests skip on a workstation and fail in CI.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from app.store.db import create_engine
from app.store.progress import BUILDER_FAILED, CI_RED, GREEN
from app.web.app import create_app
from app.web.timeline import OUTCOME_COLOURS
from tests.web.dashboard_data import HOSTILE_TITLE, TOKEN, Recorded, record, settings

CHROMIUM = Path("/usr/bin/chromium")


def _unavailable(reason: str) -> None:
    # CI installs Chromium: missing there is a broken CI, not a reason to skip.
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


try:
    from PIL import Image
    from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
except ImportError as exc:  # pragma: no cover - only without the dev dependencies
    _missing: str | None = f"playwright or pillow not installed: {exc}"
else:
    _missing = None


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    """Debian's Chromium, with Playwright to drive it; skip (or fail in CI) without them."""
    if _missing is not None:
        _unavailable(_missing)
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium")
    return CHROMIUM


@pytest.fixture(scope="module")
def recorded(chromium_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record(tmp_path_factory.mktemp("browser-runs"))


@pytest.fixture
async def base_url(recorded: Recorded, tmp_path: Path) -> AsyncIterator[str]:
    """The dashboard over the recorded runs, on a real port of 127.0.0.1."""
    engine = create_engine(recorded.copy_url(tmp_path))
    server = TestServer(create_app(settings(), engine=engine, with_worker=False), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await engine.dispose()


@pytest.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(chromium_path), args=["--disable-dev-shm-usage"]
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Watched:
    """A page and everything it said that a clean page would not."""

    page: Page
    problems: list[str] = field(default_factory=list)

    def clean(self) -> None:
        """Assert no console message, page error, failed request, error answer or dialog."""
        assert self.problems == []


async def watched(browser: Browser) -> Watched:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(15_000)
    seen = Watched(page)

    def console(message: ConsoleMessage) -> None:
        seen.problems.append(f"console {message.type}: {message.text}")

    def response(answer: Any) -> None:
        if answer.status >= 400:
            seen.problems.append(f"HTTP {answer.status}: {answer.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: seen.problems.append(f"page error: {error}"))

    def failed(request: Any) -> None:
        # ERR_ABORTED: the browser dropped a load (the icon, mostly) because the test moved on.
        if request.failure != "net::ERR_ABORTED":
            seen.problems.append(f"failed: {request.url}: {request.failure}")

    page.on("requestfailed", failed)
    page.on("response", response)
    page.on("dialog", lambda dialog: seen.problems.append(f"dialog: {dialog.message}"))
    return seen


async def sign_in(seen: Watched, base_url: str, token: str = TOKEN) -> None:
    page = seen.page
    await page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/login?next=")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_every_page_loads_without_a_console_error(
    browser: Browser, base_url: str, recorded: Recorded, tmp_path: Path
) -> None:
    seen = await watched(browser)
    page = seen.page
    await sign_in(seen, base_url, "wrong")
    assert await page.locator("p.error").inner_text() == "That is not the API token."
    # The one expected complaint: Chromium reports the 401 answer of the refused sign-in.
    assert seen.problems == [
        f"HTTP 401: {base_url}/login",
        "console error: Failed to load resource: the server responded with a status of 401 "
        "(Unauthorized)",
    ]
    seen.problems.clear()
    await page.fill("input[name=token]", TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base_url}/")
    cookies = await page.context.cookies()
    (session,) = [c for c in cookies if c["name"] == "autopack_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    # The hostile issue title is text on the page, not markup: no dialog, no script ran.
    assert HOSTILE_TITLE in await page.locator("table.runs").inner_text()
    assert await page.locator("table.runs tbody tr").count() == 3
    await page.screenshot(full_page=True, path=str(tmp_path / "runs.png"))
    pages = [
        (f"/runs/{recorded.green}", "acme/widgets #1"),
        # (issue numbers depend on what else was opened, such as the backlog issue)
        (f"/runs/{recorded.failed}", "Do the impossible"),
        (f"/runs/{recorded.exhausted}", "Spend it all"),
        ("/repos/acme/widgets/backlog", "Backlog of acme/widgets"),
        ("/budget", "Budget report"),
    ]
    for number, (path, heading) in enumerate(pages):
        await page.goto(f"{base_url}{path}")
        assert heading in await page.locator("h1").inner_text()
        # The stylesheet applied: the header bar is dark, not the browser's default.
        background = await page.locator("header.top").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert background == "rgb(36, 41, 47)"
        # For a person to look at (pytest --basetemp=DIR keeps them).
        await page.screenshot(full_page=True, path=str(tmp_path / f"page{number}.png"))
    await page.click("text=Sign out")
    await page.wait_for_url(f"{base_url}/login")
    await page.goto(f"{base_url}/budget")
    assert page.url.startswith(f"{base_url}/login?next=")
    seen.clean()


async def test_run_page_screenshot_shows_the_timeline(
    browser: Browser, base_url: str, recorded: Recorded, tmp_path: Path
) -> None:
    seen = await watched(browser)
    await sign_in(seen, base_url)
    page = seen.page
    colours: dict[str, set[tuple[int, int, int]]] = {}
    for run_id in (recorded.green, recorded.failed):
        await page.goto(f"{base_url}/runs/{run_id}")
        svg = page.locator("svg.timeline")
        await svg.wait_for(state="visible")
        box = await svg.bounding_box()
        assert box is not None
        assert box["width"] > 600
        assert box["height"] > 40
        assert await page.locator("svg.timeline rect.bar").count() == 3
        # The whole page for a person to look at; the timeline alone for the colour check
        # (the legend below it shows every outcome colour).
        await page.screenshot(full_page=True, path=str(tmp_path / f"{run_id}.png"))
        colours[run_id] = _pixels(await svg.screenshot())
    green = colours[recorded.green]
    assert _rgb(OUTCOME_COLOURS[GREEN]) in green
    assert _rgb(OUTCOME_COLOURS[CI_RED]) in green
    assert _rgb(OUTCOME_COLOURS[BUILDER_FAILED]) not in green
    failed = colours[recorded.failed]
    assert _rgb(OUTCOME_COLOURS[BUILDER_FAILED]) in failed
    assert _rgb(OUTCOME_COLOURS[GREEN]) not in failed
    seen.clean()


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _pixels(png: bytes) -> set[tuple[int, int, int]]:
    raw = Image.open(io.BytesIO(png)).convert("RGB").tobytes()
    return {(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw), 3)}
