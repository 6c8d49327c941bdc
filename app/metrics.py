"""Autopack's Prometheus metrics: one registry and the few functions that feed it.

Every label takes values from a small fixed set (event names, outcomes, states, route kinds,
installation ids); run ids, SHAs, repositories and URLs never become labels. The counters live
in the process that does the work: deliveries in the web process, runs and GitHub calls in the
worker (`autopack serve` has both). Gauges read from the database are set at scrape time by
`app/web/metrics.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from app.domain.events import CIFinished, Event
from app.domain.run_state import PhaseStatus, RunState, RunStatus

# Our own registry, not prometheus_client's global one: tests read exactly what we export.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY, namespace="autopack")

DELIVERIES = Counter(
    "autopack_webhook_deliveries_total",
    "Webhook deliveries received, by event and outcome.",
    ["event", "outcome"],
    registry=REGISTRY,
)
RUNS_FINISHED = Counter(
    "autopack_runs_finished_total",
    "Runs that reached a terminal state, by that state.",
    ["state"],
    registry=REGISTRY,
)
PHASE_DURATION = Histogram(
    "autopack_phase_duration_seconds",
    "Wall time of a phase from its start to green or failed, by outcome.",
    ["outcome"],
    buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, float("inf")),
    registry=REGISTRY,
)
TOKENS = Counter(
    "autopack_tokens_total",
    "Builder and auditor tokens reported, by the phase's task category.",
    ["task_category"],
    registry=REGISTRY,
)
CI_RUNS = Counter(
    "autopack_ci_runs_total",
    "CI results the machine accepted for a pushed commit (re-runs included), by result.",
    ["result"],
    registry=REGISTRY,
)
GITHUB_CALLS = Counter(
    "autopack_github_api_calls_total",
    "GitHub API requests answered (every retry counts), by installation, method, route kind "
    "and status class.",
    ["installation", "method", "route", "status"],
    registry=REGISTRY,
)
GITHUB_RATE_REMAINING = Gauge(
    "autopack_github_rate_limit_remaining",
    "x-ratelimit-remaining of the last GitHub answer, by installation and rate-limit resource.",
    ["installation", "resource"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "autopack_queue_depth",
    "Work waiting at scrape time: due run jobs (jobs) and unprocessed deliveries (inbox).",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_OLDEST_AGE = Gauge(
    "autopack_queue_oldest_age_seconds",
    "Age of the oldest waiting item of each queue at scrape time (0 when empty).",
    ["queue"],
    registry=REGISTRY,
)
RUNS_ACTIVE = Gauge(
    "autopack_runs_active",
    "Runs not yet terminal at scrape time, by status.",
    ["status"],
    registry=REGISTRY,
)
DATABASE_UP = Gauge(
    "autopack_metrics_database_up",
    "1 when the scrape-time database queries answered, else 0 (queue and run gauges absent).",
    registry=REGISTRY,
)

OTHER = "other"
_DELIVERY_OUTCOMES = {
    # The webhook handler's log outcomes, renamed where the metric reads better.
    "queued": "accepted",
    "duplicate": "duplicate",
    "bad_signature": "bad_signature",
    "refused_no_secret": "no_secret",
    "too_large": "too_large",
    "encoded": "encoded",
    "read_timeout": "read_timeout",
    "busy": "busy",
    "bad_headers": "bad_headers",
    "bad_json": "bad_json",
    "pong": "ignored",
    "ignored": "ignored",
    "store_failed": "store_error",
}
# Outcomes decided before the signature was checked: the event header is anyone's to choose.
_UNVERIFIED = frozenset(
    {"no_secret", "too_large", "encoded", "read_timeout", "busy", "bad_signature"}
)
_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
_RATE_RESOURCES = frozenset({"core", "graphql", "search", "code_search", "integration_manifest"})
_REPO_ROUTES = {
    "git": "git",
    "check-runs": "checks",
    "check-suites": "checks",
    "statuses": "checks",
    "issues": "issues",
    "labels": "issues",
    "pulls": "pulls",
}
_APP_ROOTS = frozenset({"app", "installation", "app-manifests"})
ACTIVE_STATUSES = tuple(status for status in RunStatus if not status.is_terminal)


def render() -> bytes:
    """The registry in the Prometheus text exposition format."""
    return generate_latest(REGISTRY)


def observe_delivery(event: str, outcome: str, known_events: Collection[str]) -> None:
    """Count one webhook delivery by its (bounded) event name and the handler's outcome."""
    label = _DELIVERY_OUTCOMES.get(outcome, OTHER)
    if label in _UNVERIFIED:
        name = "unverified"
    elif event in known_events or event == "ping":
        name = event
    else:
        name = OTHER
    DELIVERIES.labels(event=name, outcome=label).inc()


def route_kind(path: str) -> str:
    """A GitHub REST path's API family: git, checks, issues, pulls, repos, graphql, app, other."""
    parts = [part for part in path.split("/") if part]
    if not parts:
        return OTHER
    root = parts[0]
    if root == "graphql":
        return "graphql"
    if root in _APP_ROOTS or (root in ("orgs", "users") and parts[-1] == "installation"):
        return "app"
    if root != "repos":
        return OTHER
    if len(parts) >= 6 and parts[3] == "commits" and parts[5] in ("check-runs", "status"):
        return "checks"  # /repos/{o}/{r}/commits/{ref}/check-runs, .../status
    if len(parts) >= 4:
        return _REPO_ROUTES.get(parts[3], "repos")
    return "repos"


def observe_github_call(
    installation: str,
    method: str,
    url: str,
    base_url: str,
    status: int,
    headers: Mapping[str, str],
) -> None:
    """Count one answered GitHub request and record the rate limit it reported."""
    path = urlsplit(url).path
    base_path = urlsplit(base_url).path.rstrip("/")  # GHES: /api/v3
    if base_path and path.startswith(base_path + "/"):
        path = path[len(base_path) :]
    verb = method.upper() if method.upper() in _METHODS else OTHER
    GITHUB_CALLS.labels(
        installation=installation, method=verb, route=route_kind(path), status=f"{status // 100}xx"
    ).inc()
    remaining = _header(headers, "x-ratelimit-remaining")
    if remaining is None or not remaining.isdigit():
        return
    resource = _header(headers, "x-ratelimit-resource") or "core"
    resource = resource if resource in _RATE_RESOURCES else OTHER
    GITHUB_RATE_REMAINING.labels(installation=installation, resource=resource).set(int(remaining))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # aiohttp's headers are case-insensitive; a plain mapping may use any case.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value.strip() if value is not None else None


def observe_transition(
    before: RunState,
    after: RunState,
    now: float,
    phase_started_at: float | None,
    *,
    event: Event,
) -> None:
    """Record what one accepted machine transition means for the run metrics.

    Counts a run turning terminal, the duration of each phase that turned green or failed,
    the tokens added per task category and, for a `CIFinished` event, the CI result. `now`
    and `phase_started_at` are epoch seconds; `phase_started_at` is when the phase running
    in `before` started (the engine's `Memo.phase_started_at`), None when unknown.
    """
    if after is before:  # the machine ignored the event
        return
    if after.status.is_terminal and not before.status.is_terminal:
        RUNS_FINISHED.labels(state=after.status.value).inc()
    previous = {phase.phase_id: phase.status for phase in before.phases}
    for phase in after.phases:
        was = previous.get(phase.phase_id, PhaseStatus.PENDING)
        if phase.status not in (PhaseStatus.GREEN, PhaseStatus.FAILED) or was is phase.status:
            continue
        if was is PhaseStatus.PENDING:
            # Started and ended in this one transition (it failed at once).
            PHASE_DURATION.labels(outcome=phase.status.value).observe(0.0)
        elif was is PhaseStatus.RUNNING and phase_started_at is not None:
            duration = max(0.0, now - phase_started_at)
            PHASE_DURATION.labels(outcome=phase.status.value).observe(duration)
    for category, tokens in _token_deltas(before, after):
        TOKENS.labels(task_category=category).inc(tokens)
    if isinstance(event, CIFinished):
        CI_RUNS.labels(result=event.result.value).inc()


def _token_deltas(before: RunState, after: RunState) -> Iterable[tuple[str, int]]:
    if after.strategy is None:
        return
    categories = {p.phase_id: p.task_category.value for p in after.strategy.phases}
    old = {phase.phase_id: phase.tokens for phase in before.phases}
    for phase in after.phases:
        added = phase.tokens - old.get(phase.phase_id, 0)
        if added > 0:
            yield categories.get(phase.phase_id, OTHER), added


@dataclass(frozen=True)
class DatabaseSnapshot:
    """What the database says at scrape time: queue depths and ages, active runs by status."""

    queue_depth: Mapping[str, int]
    queue_oldest_age: Mapping[str, float]
    runs_active: Mapping[str, int]


def set_database_gauges(snapshot: DatabaseSnapshot | None) -> None:
    """Publish a scrape-time snapshot; None (database unreachable) removes the gauges."""
    for gauge in (QUEUE_DEPTH, QUEUE_OLDEST_AGE, RUNS_ACTIVE):
        gauge.clear()
    if snapshot is None:
        DATABASE_UP.set(0)
        return
    DATABASE_UP.set(1)
    for queue, depth in snapshot.queue_depth.items():
        QUEUE_DEPTH.labels(queue=queue).set(depth)
    for queue, age in snapshot.queue_oldest_age.items():
        QUEUE_OLDEST_AGE.labels(queue=queue).set(age)
    # Every active status is exported, zero included, so a series never just disappears.
    for status in ACTIVE_STATUSES:
        RUNS_ACTIVE.labels(status=status.value).set(snapshot.runs_active.get(status.value, 0))
