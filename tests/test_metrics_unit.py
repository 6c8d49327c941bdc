"""app/metrics.py: run metrics from real machine transitions, the GitHub client hook against the
simulator, label mapping, and the worker's opt-in metrics port."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aiohttp
import gidgethub
import pytest
from aiohttp.test_utils import unused_port
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from app import metrics
from app.config import ConfigError, Settings, load_settings
from app.domain.events import (
    BuilderFinished,
    BuilderOutcome,
    Cancelled,
    CIFinished,
    CIResult,
    Event,
    GateEvaluated,
    PhasesQueued,
    Pushed,
)
from app.domain.gate import Decision
from app.domain.machine import advance
from app.domain.run_state import RunState, RunStatus
from app.domain.strategy import Strategy
from app.domain.taxonomy import TaskCategory
from app.github.client import GitHubApp
from app.web.metrics import worker_metrics
from tests.domain.machine_fixtures import RUN_ID, bootstrap, green_phase, make_strategy
from tests.fakegithub.scenario import FakeGitHub

REPO = "acme/widgets"


def sample(name: str, **labels: str) -> float:
    """The current value of one series (0 when it does not exist yet)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class Snapshot:
    """Counter values before a test acts, so assertions read deltas (the registry is global)."""

    def __init__(self) -> None:
        self._before = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.REGISTRY.collect()
            for s in family.samples
        }

    def delta(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return sample(name, **labels) - self._before.get(key, 0.0)


@dataclasses.dataclass
class Replay:
    """Drives a run through the machine the way the driver does, one clock tick per event.

    `started` follows a phase's start the way the engine's memo does (set when the next phase
    begins, kept after it ends).
    """

    state: RunState
    now: float = 1000.0
    started: float | None = None
    step: float = 10.0

    def feed(self, events: Iterable[Event]) -> Replay:
        for event in events:
            self.now += self.step
            after, _ = advance(self.state, event)
            metrics.observe_transition(self.state, after, self.now, self.started, event=event)
            if after.phase_index != self.state.phase_index:
                self.started = self.now
            self.state = after
        return self


def to_ci(phase: str = "p1") -> list[Event]:
    """Builder, gate and push of attempt 1: the run then waits for CI on sha-<phase>."""
    return [
        BuilderFinished(phase, 1, BuilderOutcome.OK, tokens_used=10),
        GateEvaluated(phase, 1, Decision.PASS),
        Pushed(phase, 1, f"sha-{phase}"),
    ]


def red(phase: str = "p1", rerun: int = 0) -> CIFinished:
    return CIFinished(phase, f"sha-{phase}", CIResult.RED, ("tests",), rerun=rerun)


def two_categories() -> Strategy:
    strategy = make_strategy((2,))
    p1, p2 = strategy.phases
    docs = dataclasses.replace(p2, task_category=TaskCategory.DOCS)
    return dataclasses.replace(strategy, phases=(p1, docs))


def test_a_successful_run_counts_its_end_phases_tokens_and_ci() -> None:
    snap = Snapshot()
    replay = Replay(RunState(RUN_ID)).feed(bootstrap(two_categories()))
    # PhasesQueued (the third event, at 1030) started p1.
    assert replay.state.status is RunStatus.PHASE_EXECUTION
    assert replay.started == 1030.0
    replay.feed(green_phase("p1"))  # five events: p1 green at 1080, p2 starts then
    assert replay.started == 1080.0
    replay.step = 100.0
    replay.feed(green_phase("p2"))  # p2 green at 1580
    assert replay.state.status is RunStatus.DONE_SUCCESS

    assert snap.delta("autopack_runs_finished_total", state="DONE_SUCCESS") == 1
    assert snap.delta("autopack_phase_duration_seconds_count", outcome="green") == 2
    assert snap.delta("autopack_phase_duration_seconds_sum", outcome="green") == 50 + 500
    # 50 s falls in the 60 s bucket, 500 s only from the 600 s bucket on.
    assert snap.delta("autopack_phase_duration_seconds_bucket", outcome="green", le="60.0") == 1
    assert snap.delta("autopack_phase_duration_seconds_bucket", outcome="green", le="600.0") == 2
    assert snap.delta("autopack_tokens_total", task_category="feature") == 10
    assert snap.delta("autopack_tokens_total", task_category="docs") == 10
    assert snap.delta("autopack_ci_runs_total", result="green") == 2
    assert snap.delta("autopack_ci_runs_total", result="red") == 0


def test_red_ci_reruns_and_a_failed_phase_are_counted() -> None:
    strategy = make_strategy((1,), max_builder_attempts=1, auditor_backend=None, max_reruns=1)
    snap = Snapshot()
    replay = Replay(RunState(RUN_ID)).feed(bootstrap(strategy))
    started = replay.started
    replay.feed([*to_ci(), red(), red(rerun=1)])
    final = replay.state
    assert final.status.is_terminal
    assert final.phases[0].status.value == "failed"
    assert started is not None

    assert snap.delta("autopack_ci_runs_total", result="red") == 2
    assert snap.delta("autopack_runs_finished_total", state=final.status.value) == 1
    assert snap.delta("autopack_phase_duration_seconds_count", outcome="failed") == 1
    assert snap.delta("autopack_phase_duration_seconds_sum", outcome="failed") == (
        replay.now - started
    )
    assert snap.delta("autopack_phase_duration_seconds_count", outcome="green") == 0


def test_a_cancelled_run_closes_its_running_phase_as_failed() -> None:
    snap = Snapshot()
    replay = Replay(RunState(RUN_ID)).feed(bootstrap(make_strategy((2,))))
    replay.feed([Cancelled("alice")])
    assert replay.state.status is RunStatus.DONE_FAILED_CANCELLED
    assert snap.delta("autopack_runs_finished_total", state="DONE_FAILED_CANCELLED") == 1
    # p1 ran for one tick; p2 never started and is skipped, which is not a duration.
    assert snap.delta("autopack_phase_duration_seconds_count", outcome="failed") == 1
    assert snap.delta("autopack_phase_duration_seconds_sum", outcome="failed") == 10
    # Once terminal, the machine ignores everything: nothing is counted twice.
    replay.feed([Cancelled("bob")])
    assert snap.delta("autopack_runs_finished_total", state="DONE_FAILED_CANCELLED") == 1


def test_an_ignored_event_changes_nothing_and_keeps_the_start() -> None:
    replay = Replay(RunState(RUN_ID)).feed(bootstrap(make_strategy()))
    state = replay.state
    snap = Snapshot()
    stale = green_phase("p1")[3]  # CI for a commit nobody pushed
    after, _ = advance(state, stale)
    assert after is state
    metrics.observe_transition(state, after, 5000.0, 1030.0, event=stale)
    assert snap.delta("autopack_ci_runs_total", result="green") == 0


def test_a_phase_with_an_unknown_start_gets_no_duration() -> None:
    replay = Replay(RunState(RUN_ID)).feed(bootstrap(make_strategy()))
    replay.started = None  # e.g. a worker restarted without the start time
    snap = Snapshot()
    replay.feed(green_phase("p1"))
    assert replay.state.status is RunStatus.DONE_SUCCESS
    assert snap.delta("autopack_phase_duration_seconds_count", outcome="green") == 0
    assert snap.delta("autopack_runs_finished_total", state="DONE_SUCCESS") == 1


def test_a_phase_that_fails_as_it_starts_lasts_zero_seconds() -> None:
    # No budget left for even one attempt: p1 is started and failed by the same transition.
    strategy = make_strategy((1,), incident_token_cap=0)
    state = Replay(RunState(RUN_ID)).feed(bootstrap(strategy)[:2]).state
    snap = Snapshot()
    after, _ = advance(state, PhasesQueued())
    assert after.phases[0].status.value == "failed"
    metrics.observe_transition(state, after, 5000.0, 12.0, event=PhasesQueued())
    assert snap.delta("autopack_phase_duration_seconds_count", outcome="failed") == 1
    assert snap.delta("autopack_phase_duration_seconds_sum", outcome="failed") == 0


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/repos/o/r/git/refs/heads/autopack/x", "git"),
        ("/repos/o/r/git/matching-refs/heads/autopack", "git"),
        ("/repos/o/r/check-runs/5", "checks"),
        ("/repos/o/r/check-suites/5/rerequest", "checks"),
        ("/repos/o/r/commits/abc/check-runs", "checks"),
        ("/repos/o/r/commits/abc/status", "checks"),
        ("/repos/o/r/statuses/abc", "checks"),
        ("/repos/o/r/commits/abc", "repos"),
        ("/repos/o/r/issues/3/comments", "issues"),
        ("/repos/o/r/labels", "issues"),
        ("/repos/o/r/pulls/4", "pulls"),
        ("/repos/o/r/collaborators/alice/permission", "repos"),
        ("/repos/o/r/tarball/abc", "repos"),
        ("/repos/o/r", "repos"),
        ("/repos/o/r/installation", "repos"),
        ("/graphql", "graphql"),
        ("/app", "app"),
        ("/app/hook/deliveries", "app"),
        ("/app/installations/9/access_tokens", "app"),
        ("/installation/repositories", "app"),
        ("/orgs/acme/installation", "app"),
        ("/users/alice/installation", "app"),
        ("/user", "other"),
        ("/", "other"),
    ],
)
def test_route_kind(path: str, kind: str) -> None:
    assert metrics.route_kind(path) == kind


@pytest.mark.parametrize(
    ("event", "outcome", "labels"),
    [
        ("issues", "queued", ("issues", "accepted")),
        ("issues", "duplicate", ("issues", "duplicate")),
        ("ping", "pong", ("ping", "ignored")),
        ("push", "ignored", ("other", "ignored")),
        ("x" * 40, "ignored", ("other", "ignored")),
        ("issues", "store_failed", ("issues", "store_error")),
        ("", "bad_headers", ("other", "bad_headers")),
        # Before the signature is checked the header is anyone's: never a label of its own.
        ("issues", "bad_signature", ("unverified", "bad_signature")),
        ("made-up", "too_large", ("unverified", "too_large")),
        ("issues", "refused_no_secret", ("unverified", "no_secret")),
        ("issues", "something_new", ("issues", "other")),
    ],
)
def test_delivery_labels_are_bounded(event: str, outcome: str, labels: tuple[str, str]) -> None:
    snap = Snapshot()
    metrics.observe_delivery(event, outcome, frozenset({"issues"}))
    name, label = labels
    assert snap.delta("autopack_webhook_deliveries_total", event=name, outcome=label) == 1


def test_ghes_base_path_is_stripped_and_rate_limit_resources_are_bounded() -> None:
    snap = Snapshot()
    headers = {"X-RateLimit-Remaining": "41", "X-RateLimit-Resource": "weird"}
    metrics.observe_github_call(
        "7", "get", "https://ghe.example/api/v3/repos/o/r/pulls?page=2", "https://ghe.example/api/v3",
        200, headers,
    )  # fmt: skip
    labels = {"installation": "7", "method": "GET", "route": "pulls", "status": "2xx"}
    assert snap.delta("autopack_github_api_calls_total", **labels) == 1
    assert sample("autopack_github_rate_limit_remaining", installation="7", resource="other") == 41


@pytest.fixture
async def github(fakegithub: FakeGitHub) -> AsyncIterator[tuple[FakeGitHub, GitHubApp, int]]:
    inst = fakegithub.install("acme")
    fakegithub.create_repo(REPO, installation=inst)
    fakegithub.rate_limits.set_limit(100)

    async def no_sleep(_: float) -> None:
        return None

    async with aiohttp.ClientSession() as session:
        app = GitHubApp(
            session, fakegithub.url, fakegithub.app.id, fakegithub.app.private_key_pem,
            sleep=no_sleep,
        )  # fmt: skip
        yield fakegithub, app, inst.id


async def test_client_counts_calls_by_route_and_reads_the_rate_limit(
    github: tuple[FakeGitHub, GitHubApp, int],
) -> None:
    sim, app, inst_id = github
    gh = app.installation(inst_id)
    installation = str(inst_id)
    snap = Snapshot()

    await gh.getitem(f"/repos/{REPO}")
    await gh.getitem(f"/repos/{REPO}/git/ref/heads/main")
    number = await sim.open_issue(REPO, "Add X", "please", user="alice")
    await gh.post(f"/repos/{REPO}/issues/{number}/comments", data={"body": "hello"})

    def calls(method: str, route: str, status: str = "2xx") -> float:
        labels = {"installation": installation, "method": method, "route": route}
        return snap.delta("autopack_github_api_calls_total", **labels, status=status)

    assert calls("GET", "repos") == 1
    assert calls("GET", "git") == 1
    assert calls("POST", "issues") == 1
    # The simulator's installation budget: 100 an hour, three used.
    assert sample("autopack_github_rate_limit_remaining", installation=installation,
                  resource="core") == 97  # fmt: skip
    assert app.rate_limits()[inst_id].remaining == 97


async def test_client_counts_every_attempt_of_a_retried_call(
    github: tuple[FakeGitHub, GitHubApp, int],
) -> None:
    sim, app, inst_id = github
    sim.faults.fail_next(1, status=502, path_prefix=f"/repos/{REPO}")
    snap = Snapshot()
    with pytest.raises(gidgethub.BadRequest, match="Not Found"):
        await app.installation(inst_id).getitem(f"/repos/{REPO}/pulls/999")
    await app.installation(inst_id).getitem(f"/repos/{REPO}/pulls")
    labels = {"installation": str(inst_id), "method": "GET", "route": "pulls"}
    assert snap.delta("autopack_github_api_calls_total", **labels, status="5xx") == 1
    assert snap.delta("autopack_github_api_calls_total", **labels, status="4xx") == 1
    assert snap.delta("autopack_github_api_calls_total", **labels, status="2xx") == 1


async def test_app_client_calls_count_against_the_app(
    github: tuple[FakeGitHub, GitHubApp, int],
) -> None:
    _, app, _ = github
    snap = Snapshot()
    await (await app.app_client()).getitem("/app")
    labels = {"installation": "app", "method": "GET", "route": "app", "status": "2xx"}
    assert snap.delta("autopack_github_api_calls_total", **labels) == 1
    assert sample("autopack_github_rate_limit_remaining", installation="app", resource="core") > 0


def test_metrics_port_is_read_and_checked(tmp_path: Path) -> None:
    none = tmp_path / "none.env"
    assert load_settings({}, dotenv_path=none).metrics_port is None
    assert load_settings({"AUTOPACK_METRICS_PORT": "9187"}, dotenv_path=none).metrics_port == 9187
    with pytest.raises(ConfigError, match="AUTOPACK_METRICS_PORT"):
        load_settings({"AUTOPACK_METRICS_PORT": "http"}, dotenv_path=none)


async def test_worker_serves_metrics_and_health_on_its_port(engine: AsyncEngine) -> None:
    port = unused_port()
    settings = Settings(metrics_port=port)
    metrics.observe_delivery("issues", "queued", {"issues"})  # a counter this process holds
    async with worker_metrics(settings, engine), aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await response.text()
        async with session.get(f"http://127.0.0.1:{port}/health") as response:
            assert response.status == 200
            assert (await response.json())["database"] == "ok"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["autopack_metrics_database_up"].samples[0].value == 1
    accepted = [
        s.value
        for s in families["autopack_webhook_deliveries"].samples
        if s.labels == {"event": "issues", "outcome": "accepted"} and s.name.endswith("_total")
    ]
    assert accepted
    assert accepted[0] >= 1
    # Closed with the worker: nothing listens any more.
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"http://127.0.0.1:{port}/metrics")
