"""Priority 7: injected faults."""

from __future__ import annotations

import time

from tests.fakegithub.receiver import Receiver
from tests.fakegithub.scenario import FakeGitHub
from tests.fakegithub.testkit import api, first_installation

REPO = "/repos/acme/widgets"


def _setup(sim: FakeGitHub, receiver: Receiver) -> None:
    sim.install("acme")
    sim.create_repo("acme/widgets")
    sim.webhook_url = receiver.url


async def test_error_bursts_by_prefix(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.fail_next(2, status=503, path_prefix=f"{REPO}/issues")
    fakegithub.faults.fail_next(1, status=502)
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        statuses = [(await gh.get(f"{REPO}/issues"))[0] for _ in range(3)]
        other = [(await gh.get(REPO))[0] for _ in range(2)]
    # The prefixed burst serves the first two; the unscoped one takes the next request.
    assert statuses == [503, 503, 502]
    assert other == [200, 200]
    assert [r.status for r in fakegithub.request_log] == [503, 503, 502, 200, 200]


async def test_secondary_rate_limit(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.secondary_rate_limit(1, retry_after=7)
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        status, body, headers = await gh.call("GET", REPO)
        again, _, _ = await gh.call("GET", REPO)
    assert (status, headers["retry-after"]) == (403, "7")
    assert body["message"].startswith("You have exceeded a secondary rate limit")
    assert again == 200


async def test_reshaped_answers(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.reshape_next(1, lambda body: [body["full_name"], None], f"^{REPO}$")
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        status, reshaped, headers = await gh.call("GET", REPO)
        again = await gh.get(REPO)
        issues = await gh.get(f"{REPO}/issues")
    assert (status, reshaped) == (200, ["acme/widgets", None])
    assert "x-ratelimit-remaining" in headers  # the answer's own headers are kept
    assert again[1]["full_name"] == "acme/widgets"  # once
    assert issues == (200, [])  # only matching paths


async def test_latency_is_added(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.latency = 0.05
    async with api(fakegithub, first_installation(fakegithub)) as gh:
        started = time.perf_counter()
        await gh.get(REPO)
        elapsed = time.perf_counter() - started
    assert elapsed >= 0.05  # a lower bound only: never a timed upper bound
    assert fakegithub.request_log[-1].ms >= 50


async def test_dropped_deliveries(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.drop_next = 1
    await fakegithub.open_issue("acme/widgets", "lost", "")
    await fakegithub.open_issue("acme/widgets", "arrives", "")
    assert [r.payload["issue"]["title"] for r in webhook_receiver.received] == ["arrives"]
    dropped = fakegithub.deliveries[0]
    assert (dropped.delivered, dropped.error) == (False, "dropped by fault injection")


async def test_duplicated_deliveries(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.duplicate_next = 1
    await fakegithub.open_issue("acme/widgets", "twice", "")
    guids = [r.headers["X-GitHub-Delivery"] for r in webhook_receiver.received]
    assert len(guids) == 2
    assert guids[0] == guids[1]


async def test_out_of_order_deliveries(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.reorder_next = 3
    number = await fakegithub.open_issue("acme/widgets", "t", "")
    await fakegithub.label_issue("acme/widgets", number, "a")
    assert webhook_receiver.received == []  # held until the third
    await fakegithub.comment("acme/widgets", number, "hello")
    await fakegithub.idle()
    assert webhook_receiver.events() == [
        ("issue_comment", "created"),
        ("issues", "labeled"),
        ("issues", "opened"),
    ]


async def test_release_held_early(fakegithub: FakeGitHub, webhook_receiver: Receiver) -> None:
    _setup(fakegithub, webhook_receiver)
    fakegithub.faults.reorder_next = 5
    number = await fakegithub.open_issue("acme/widgets", "t", "")
    await fakegithub.label_issue("acme/widgets", number, "a")
    fakegithub.faults.reorder_next = 0
    fakegithub.release_held()
    await fakegithub.idle()
    assert webhook_receiver.events() == [("issues", "labeled"), ("issues", "opened")]
