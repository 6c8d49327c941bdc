"""Run overhead benchmark: supervisor time and GitHub API calls per phase on the happy path.

Whole runs (a 3-phase, 2-tier plan; a command builder; CI that passes) are driven by a real
Autopack (web + worker in this process, as in tests/engine/harness.py) against the GitHub
simulator, with 1 and with N runs started at once (one repository each), on SQLite and, given
--postgres, PostgreSQL.

What is counted (instrumented here by wrapping methods, never in app code):
* supervisor time: the wall time of the run driver's steps on a run plus the inbox worker's
  handling of that repository's deliveries, minus the builder subprocess (spawn to exit, as the
  runner reports it) and minus the time spent waiting on GitHub round trips (the simulator
  answers in this process; on github.com that latency is GitHub's, not ours). Waiting for CI is
  not in it: the driver lets go of a run while CI runs. Database time is part of it and is shown.
* API calls: the simulator's request log entries made with the app's installation tokens
  (`app == "autopack"`: REST and GraphQL; token mints and `GET /app` use the App JWT and are
  counted apart; tarball downloads from the codeload host are not API calls). Run-start and
  run-end calls (permission check, strategy, branch, final report, artefacts) are included and
  spread over the phases.

    .venv/bin/python bench/run_overhead.py [--runs 50] [--ci-poll 30]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/autopack_bench]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the simulator and the test builder live under tests/

from app.agents.command import CommandRunner, ProcessRun  # noqa: E402
from app.agents.workspace import TarballSource  # noqa: E402
from app.config import BuilderProfile, OperatorConfig, Settings  # noqa: E402
from app.engine.driver import RunDriver  # noqa: E402
from app.engine.envelope import Envelope  # noqa: E402
from app.engine.worker import InboxWorker  # noqa: E402
from app.github.client import RetryingGitHubAPI  # noqa: E402
from app.store import migrate  # noqa: E402
from app.store.db import create_engine  # noqa: E402
from app.store.inbox import Inbox, InboxDelivery  # noqa: E402
from app.store.queue import RunQueue  # noqa: E402
from app.store.runs import RunRecord, RunStore  # noqa: E402
from app.web.app import create_app  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402
from tests.fakegithub.ci import CIScript  # noqa: E402
from tests.fakegithub.core import RequestRecord  # noqa: E402
from tests.fakegithub.scenario import FakeGitHub  # noqa: E402
from tests.sandboxing import read_only_paths  # noqa: E402

BUILDER = ROOT / "tests" / "engine" / "scripts" / "phase_builder.py"
OWNER = "acme"
OWN_BOT = "autopack"  # the simulator's app slug: its bot is autopack[bot]
PLAN = """Make widgets better.

## Tier 1: groundwork
- [ ] Add the settings module
- [ ] Add the loader

## Tier 2: polish
- [ ] Describe it in the README {category=docs complexity=low mode=tweak_light}
"""
# The same work in 9 phases (3 tiers of 3): against PLAN, it shows what one more phase costs.
PLAN_9 = "Make widgets better.\n" + "".join(
    f"\n## Tier {tier}: part {tier}\n"
    + "".join(f"- [ ] Add piece {tier}.{n}\n" for n in range(1, 4))
    for tier in range(1, 4)
)
FILES = {
    "README.md": "# widgets\n",
    "src/app.py": "print('hi')\n",
    ".github/autopack.yml": "builder: default\nci: {start_timeout_minutes: 1}\n",
}
GOAL_CALLS, GOAL_MS = 10, 50.0

# -- instrumentation -------------------------------------------------------------------------

Interval = tuple[float, float]


@dataclass
class Slot:
    """What one driver step or one inbox delivery spent, as intervals of perf_counter time."""

    busy: list[Interval] = field(default_factory=list)
    builder: list[Interval] = field(default_factory=list)
    github: list[Interval] = field(default_factory=list)
    db: list[Interval] = field(default_factory=list)
    steps: int = 0
    deliveries: int = 0
    db_calls: int = 0
    run_id: str | None = None  # set once the driver has claimed a run

    def merge(self, other: Slot) -> None:
        """Add another slot's intervals and counts to this one."""
        for name in ("busy", "builder", "github", "db"):
            getattr(self, name).extend(getattr(other, name))
        self.steps += other.steps
        self.deliveries += other.deliveries
        self.db_calls += other.db_calls

    @property
    def own(self) -> float:
        """Supervisor seconds: busy, less the builder subprocess and GitHub round trips.

        Unions, because the driver and the inbox worker may work on the same run at once, and
        the excluded intervals always lie inside busy ones.
        """
        return covered(self.busy) - covered(self.builder + self.github)


def covered(intervals: list[Interval]) -> float:
    """The length of the union of intervals."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


_CURRENT: contextvars.ContextVar[Slot | None] = contextvars.ContextVar("bench_slot", default=None)
_DB_CLASSES = (RunStore, RunQueue, Inbox)
AsyncFn = Callable[..., Awaitable[Any]]


class Meter:
    """Wraps the driver, inbox worker, GitHub client, stores and builder runner with timers."""

    def __init__(self) -> None:
        self.runs: dict[str, Slot] = {}
        self.repos: dict[str, Slot] = {}
        self.idle = Slot()  # driver steps that found nothing to claim
        self.db_methods: Counter[str] = Counter()  # calls made for a run or a delivery
        self.webhooks: Counter[str] = Counter()  # "event.action", "(own)" when Autopack caused it

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Patch the classes for the duration of one measurement."""
        patches: list[tuple[type, str, Callable[[AsyncFn], AsyncFn]]] = [
            (RunDriver, "step", self._step),
            (RunDriver, "_drive", _claimed),
            (InboxWorker, "_process", self._process),
            (CommandRunner, "execute", _builder),
            (RetryingGitHubAPI, "_request", _timed("github", "", Counter())),
            (TarballSource, "download", _timed("github", "", Counter())),
        ]
        for cls in _DB_CLASSES:
            patches += [
                (cls, name, _timed("db", f"{cls.__name__}.{name}", self.db_methods))
                for name, value in vars(cls).items()
                if not name.startswith("_") and asyncio.iscoroutinefunction(value)
            ]
        saved = [(cls, name, vars(cls)[name]) for cls, name, _ in patches]
        try:
            for cls, name, wrap in patches:
                setattr(cls, name, wrap(vars(cls)[name]))
            yield
        finally:
            for cls, name, original in saved:
                setattr(cls, name, original)

    def _step(self, original: AsyncFn) -> AsyncFn:
        @functools.wraps(original)
        async def step(driver: RunDriver) -> bool:
            slot = Slot(steps=1)
            token = _CURRENT.set(slot)
            started = time.perf_counter()
            try:
                return bool(await original(driver))
            finally:
                slot.busy.append((started, time.perf_counter()))
                _CURRENT.reset(token)
                target = self.runs.setdefault(slot.run_id, Slot()) if slot.run_id else self.idle
                target.merge(slot)

        return step

    def _process(self, original: AsyncFn) -> AsyncFn:
        @functools.wraps(original)
        async def process(worker: InboxWorker, delivery: InboxDelivery) -> None:
            slot = Slot(deliveries=1)
            token = _CURRENT.set(slot)
            started = time.perf_counter()
            try:
                await original(worker, delivery)
            finally:
                slot.busy.append((started, time.perf_counter()))
                _CURRENT.reset(token)
                repo = (delivery.payload.get("repository") or {}).get("full_name", "?")
                sender = (delivery.payload.get("sender") or {}).get("login", "")
                own = " (own)" if sender.endswith("[bot]") and sender.startswith(OWN_BOT) else ""
                self.webhooks[f"{delivery.event}.{delivery.action}{own}"] += 1
                self.repos.setdefault(repo.lower(), Slot()).merge(slot)

        return process


def _claimed(original: AsyncFn) -> AsyncFn:
    @functools.wraps(original)
    async def drive(driver: RunDriver, held: Any) -> None:
        slot = _CURRENT.get()
        if slot is not None:
            slot.run_id = held.claim.run_id
        await original(driver, held)

    return drive


def _builder(original: AsyncFn) -> AsyncFn:
    @functools.wraps(original)
    async def execute(runner: CommandRunner, *args: Any, **kwargs: Any) -> ProcessRun:
        result: ProcessRun = await original(runner, *args, **kwargs)
        slot = _CURRENT.get()
        if slot is not None:  # spawn to exit, as the runner measured it
            end = time.perf_counter()
            slot.builder.append((end - result.duration_seconds, end))
        return result

    return execute


def _timed(category: str, label: str, counter: Counter[str]) -> Callable[[AsyncFn], AsyncFn]:
    """A wrapper recording the call's interval in the current slot under `category`."""

    def wrap(original: AsyncFn) -> AsyncFn:
        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            slot = _CURRENT.get()
            if slot is None:
                return await original(*args, **kwargs)
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                getattr(slot, category).append((started, time.perf_counter()))
                slot.db_calls += category == "db"
                counter[label] += 1

        return timed

    return wrap


# -- API calls -------------------------------------------------------------------------------

_REPO = re.compile(r"^/repos/([^/]+/[^/]+)(/.*)?$")
_ROUTE_RULES = [
    (re.compile(r"/git/(refs|ref|matching-refs)/(heads|tags)/.*"), r"/git/\1/\2/{ref}"),
    (re.compile(r"/contents/.*"), "/contents/{path}"),
    (re.compile(r"/tarball/.*"), "/tarball/{ref}"),
    (re.compile(r"/collaborators/[^/]+/permission"), "/collaborators/{user}/permission"),
    (re.compile(r"/commits/[^/]+(/check-runs|/check-suites)$"), r"/commits/{sha}\1"),
    (re.compile(r"/commits/(?!\{sha\}/check-).+$"), "/commits/{ref}"),
    (re.compile(r"/labels/[^/]+$"), "/labels/{name}"),
    (re.compile(r"/branches/.+$"), "/branches/{branch}"),
    (re.compile(r"/[0-9a-f]{40}"), "/{sha}"),
    (re.compile(r"/\d+"), "/{n}"),
]


def route_of(record: RequestRecord) -> tuple[str | None, str]:
    """(repository or None, "METHOD route template") of one request."""
    match = _REPO.match(record.path)
    if match is None:
        return None, f"{record.method} {record.path}"
    rest = match.group(2) or ""
    for pattern, replacement in _ROUTE_RULES:
        rest = pattern.sub(replacement, rest)
    return match.group(1).lower(), f"{record.method} /repos/{{r}}{rest}"


def kind_of(route: str) -> str:
    """The breakdown column a route belongs to."""
    if "/git/" in route:
        return "git"
    if "check-runs" in route or "check-suites" in route:
        return "checks"
    if "/issues" in route:
        return "issues"
    if "/pulls" in route or route.endswith("/graphql"):
        return "pulls"
    return "repo reads" if route.split(" ")[1].startswith("/repos/") else "other"


KINDS = ("git", "checks", "issues", "pulls", "repo reads", "other")

# -- one measurement -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFigures:
    """One finished run's numbers (milliseconds are totals over the run)."""

    status: str
    phases: int
    seconds: float
    own_ms: float  # driver and intake together (union)
    driver_ms: float
    intake_ms: float
    db_ms: float
    db_calls: int
    github_ms: float
    builder_ms: float
    deliveries: int
    calls: int
    kinds: dict[str, int]


@dataclass(frozen=True)
class Measurement:
    """One configuration: backend x concurrent runs."""

    backend: str
    concurrency: int
    wall: float
    runs: list[RunFigures]
    routes: Counter[str]
    jwt_calls: int
    idle_steps: int
    timed_out: bool
    db_methods: Counter[str]
    webhooks: Counter[str]
    cpu_ms: float = 0.0  # this process's CPU less the simulator's request handling
    plan_phases: int = 3

    @property
    def label(self) -> str:
        """How the configuration is named in column headings."""
        extra = f" ({self.plan_phases} phases)" if self.plan_phases != 3 else ""
        return f"{self.backend} x{self.concurrency}{extra}"


async def _all_finished(store: RunStore, count: int, limit_s: float) -> list[RunRecord]:
    # Seldom: on SQLite this poll shares the app's single connection.
    deadline = time.monotonic() + limit_s
    while True:
        runs = await store.list_runs(limit=count + 10)
        if len(runs) >= count and all(run.terminal for run in runs):
            return runs
        if time.monotonic() > deadline:
            return runs
        await asyncio.sleep(1.0)


async def _inbox_drained(inbox: Inbox) -> None:
    async with asyncio.timeout(30):
        busy = {"pending", "processing"}
        while busy & set(await inbox.counts()):  # noqa: ASYNC110 - no event across the server
            await asyncio.sleep(0.2)


def _settings(sim: FakeGitHub, data_dir: Path, ci_poll: float) -> Settings:
    profile = BuilderProfile(
        backend="command",
        command=[sys.executable, str(BUILDER)],
        timeout_seconds=120,
        read_only=read_only_paths(),  # the interpreter and the test builder, as in the tests
    )
    return Settings(
        app_id=sim.app.id,
        private_key=sim.app.private_key_pem,  # type: ignore[arg-type]
        webhook_secret=sim.app.webhook_secret,  # type: ignore[arg-type]
        github_api_url=sim.url,
        data_dir=data_dir,
        ci_poll_seconds=ci_poll,
        operator=OperatorConfig(builders={"default": profile}),
    )


async def measure(
    backend: str, url: str, concurrency: int, args: argparse.Namespace, plan: str = PLAN
) -> Measurement:
    """Start `concurrency` runs of `plan` at once and wait (bounded) for all of them to end."""
    sim = FakeGitHub(rate_limit=100_000)
    await sim.start()
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        inst = sim.install(OWNER)
        repos = [f"{OWNER}/w{index:03d}" for index in range(concurrency)]
        for repo in repos:
            sim.create_repo(repo, FILES, installation=inst, ci=CIScript.pass_())
            sim.set_permission(repo, "alice", "write")
        meter = Meter()
        with tempfile.TemporaryDirectory() as data, meter.installed():
            settings = _settings(sim, Path(data), args.ci_poll)
            server = TestServer(create_app(settings, engine=engine), host="127.0.0.1")
            await server.start_server()
            sim.webhook_url = str(server.make_url("/api/github/webhooks"))
            try:
                started, cpu = datetime.now(UTC), time.process_time()
                for repo in repos:
                    number = await sim.open_issue(repo, "Build the thing", plan, user="alice")
                    await sim.label_issue(repo, number, "autopack:run", sender="alice")
                records = await _all_finished(RunStore(engine), concurrency, args.timeout)
                cpu = time.process_time() - cpu - sum(r.ms for r in sim.request_log) / 1000
                await sim.idle()
                await _inbox_drained(Inbox(engine))  # Autopack's own last events, for the tally
            finally:
                sim.webhook_url = None
                await server.close()
    finally:
        await engine.dispose()
        await sim.stop()
    ends = [r.finished_at for r in records if r.finished_at is not None]
    wall = (max(ends, default=datetime.now(UTC)) - started).total_seconds()
    timed_out = len(ends) < concurrency
    result = _figures(backend, concurrency, wall, timed_out, records, meter, sim.request_log)
    phases = plan.count("- [ ]")
    return dataclasses.replace(result, cpu_ms=cpu * 1000, plan_phases=phases)


def _figures(
    backend: str,
    concurrency: int,
    wall: float,
    timed_out: bool,
    records: list[RunRecord],
    meter: Meter,
    log: list[RequestRecord],
) -> Measurement:
    per_repo: dict[str | None, Counter[str]] = {}
    routes: Counter[str] = Counter()
    for request in log:
        if request.app == "autopack":
            repo, route = route_of(request)
            routes[route] += 1
            per_repo.setdefault(repo, Counter())[route] += 1
    # Installation-token calls outside /repos/ (the GraphQL mutation): spread over the runs.
    shared = per_repo.get(None, Counter())
    runs = []
    for record in records:
        driver = meter.runs.get(record.id, Slot())
        intake = meter.repos.get(record.repository.lower(), Slot())
        both = Slot()
        both.merge(driver)
        both.merge(intake)
        kinds = Counter(dict.fromkeys(KINDS, 0))
        for route, count in per_repo.get(record.repository.lower(), Counter()).items():
            kinds[kind_of(route)] += count
        for route, count in shared.items():
            kinds[kind_of(route)] += count / max(len(records), 1)
        end = record.finished_at or datetime.now(UTC)
        runs.append(
            RunFigures(
                status=record.status,
                phases=len(Envelope.loads(record.state).state.phases),
                seconds=(end - record.created_at).total_seconds(),
                own_ms=both.own * 1000,
                driver_ms=driver.own * 1000,
                intake_ms=intake.own * 1000,
                db_ms=covered(both.db) * 1000,
                db_calls=both.db_calls,
                github_ms=covered(both.github) * 1000,
                builder_ms=covered(both.builder) * 1000,
                deliveries=intake.deliveries,
                calls=round(sum(kinds.values())),
                kinds=dict(kinds),
            )
        )
    jwt = sum(1 for request in log if request.app == "jwt")
    return Measurement(
        backend,
        concurrency,
        wall,
        runs,
        routes,
        jwt,
        meter.idle.steps,
        timed_out,
        meter.db_methods,
        meter.webhooks,
    )


# -- report ----------------------------------------------------------------------------------


def _per_phase(m: Measurement, attr: str) -> list[float]:
    return [float(getattr(r, attr)) / r.phases for r in m.runs if r.phases]


def _runs(m: Measurement) -> str:
    """The "concurrent runs" cell, naming a plan other than the usual 3 phases."""
    return f"{m.concurrency}" + (f" ({m.plan_phases} phases)" if m.plan_phases != 3 else "")


def summary_table(results: list[Measurement]) -> str:
    """The headline table: supervisor time and API calls per phase."""
    lines = [
        "| backend | concurrent runs | phases | wall s | run s p50 | supervisor ms/phase p50 "
        "| mean | CPU ms/phase | API calls/phase mean | max | DONE_SUCCESS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        own, calls = _per_phase(m, "own_ms"), _per_phase(m, "calls")
        ok = sum(r.status == "DONE_SUCCESS" for r in m.runs)
        lines.append(
            f"| {m.backend} | {m.concurrency} | {sum(r.phases for r in m.runs)} "
            f"| {m.wall:.1f}{' (timed out)' if m.timed_out else ''} "
            f"| {statistics.median(r.seconds for r in m.runs):.1f} "
            f"| {statistics.median(own):.0f} | {statistics.fmean(own):.0f} "
            f"| {m.cpu_ms / max(sum(r.phases for r in m.runs), 1):.0f} "
            f"| {statistics.fmean(calls):.1f} | {max(calls):.1f} | {ok}/{m.concurrency} |"
        )
    return "\n".join(lines)


def time_table(results: list[Measurement]) -> str:
    """Where the supervisor's time goes, per phase (means over runs)."""
    columns = [
        ("driver ms", "driver_ms"),
        ("intake ms", "intake_ms"),
        ("DB ms", "db_ms"),
        ("DB calls", "db_calls"),
        ("webhooks", "deliveries"),
        ("excluded: GitHub wait ms", "github_ms"),
        ("excluded: builder ms", "builder_ms"),
    ]
    lines = [
        "| backend | concurrent runs | " + " | ".join(name for name, _ in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for m in results:
        cells = " | ".join(f"{statistics.fmean(_per_phase(m, a)):.0f}" for _, a in columns)
        lines.append(f"| {m.backend} | {_runs(m)} | {cells} |")
    return "\n".join(lines)


def kinds_table(results: list[Measurement]) -> str:
    """API calls per phase by kind of route (means over runs)."""
    lines = [
        "| backend | concurrent runs | " + " | ".join(KINDS) + " | total | JWT calls (all runs) |",
        "|---|---:|" + "---:|" * (len(KINDS) + 2),
    ]
    for m in results:
        cells = [
            statistics.fmean(r.kinds[kind] / r.phases for r in m.runs if r.phases) for kind in KINDS
        ]
        lines.append(
            f"| {m.backend} | {_runs(m)} | "
            + " | ".join(f"{c:.2f}" for c in cells)
            + f" | {sum(cells):.2f} | {m.jwt_calls} |"
        )
    return "\n".join(lines)


def routes_table(results: list[Measurement]) -> str:
    """API calls per run by route, one column per configuration."""
    names = sorted({route for m in results for route in m.routes})
    names.sort(key=lambda r: KINDS.index(kind_of(r)))
    return _counter_table(
        "kind | API route, calls per run", results, names, "routes", with_kind=True
    )


def db_table(results: list[Measurement]) -> str:
    """Database calls per phase by method (made for a run or one of its deliveries)."""
    names = sorted({name for m in results for name in m.db_methods})
    return _counter_table("database call, per phase", results, names, "db_methods", per_phase=True)


def webhooks_table(results: list[Measurement]) -> str:
    """Webhook deliveries handled per run, by event."""
    names = sorted({name for m in results for name in m.webhooks})
    return _counter_table("webhook, per run", results, names, "webhooks")


def _counter_table(
    title: str,
    results: list[Measurement],
    names: list[str],
    attr: str,
    *,
    per_phase: bool = False,
    with_kind: bool = False,
) -> str:
    """One row per counter key, one column per configuration: per phase or per run."""
    head = " | ".join(m.label for m in results)
    lines = [f"| {title} | {head} |", "|---|" + "---|" * with_kind + "---:|" * len(results)]
    for name in names:
        cells = []
        for m in results:
            divisor = sum(r.phases for r in m.runs) if per_phase else len(m.runs)
            cells.append(f"{getattr(m, attr)[name] / max(divisor, 1):.2f}")
        label = f"{kind_of(name)} | `{name}`" if with_kind else f"`{name}`"
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines)


def marginal_table(results: list[Measurement]) -> str:
    """What one more phase costs: the 9-phase run against the 3-phase run, per backend.

    Per-run costs (permission check, plan, branch, labels, pull request, final report and
    artefacts, backlog issue) do not grow with phases; this slope is what every further phase
    adds, and the per-phase figure a long run approaches.
    """
    lines = [
        "| backend | API calls, 3 phases | 9 phases | per extra phase | supervisor ms, 3 phases "
        "| 9 phases | per extra phase |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend in dict.fromkeys(m.backend for m in results):
        small = next(
            (m for m in results if (m.backend, m.concurrency, m.plan_phases) == (backend, 1, 3)),
            None,
        )
        large = next((m for m in results if m.backend == backend and m.plan_phases == 9), None)
        if small is None or large is None:
            continue
        calls = [sum(r.calls for r in m.runs) for m in (small, large)]
        own = [sum(r.own_ms for r in m.runs) for m in (small, large)]
        lines.append(
            f"| {backend} | {calls[0]} | {calls[1]} | {(calls[1] - calls[0]) / 6:.1f} "
            f"| {own[0]:.0f} | {own[1]:.0f} | {(own[1] - own[0]) / 6:.0f} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="concurrent runs (besides 1)")
    parser.add_argument("--ci-poll", type=float, default=30.0, help="ci_poll_seconds (default 30)")
    parser.add_argument("--timeout", type=float, default=240.0, help="per configuration, s")
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL; its schema is reset")
    args = parser.parse_args()
    targets: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgres:
        targets.append(("PostgreSQL", args.postgres))
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for backend, url in targets:
            # One run first, not recorded: the first one pays for imports and SQLAlchemy's
            # statement cache, which would inflate whichever configuration came first.
            if url is None:
                warm = f"sqlite+aiosqlite:///{folder}/bench-warm.db"
            else:
                await reset_postgres(url)
                warm = url
            await measure(backend, warm, 1, args)
            for concurrency in (1, args.runs):
                if url is None:
                    database = f"sqlite+aiosqlite:///{folder}/bench-{concurrency}.db"
                else:
                    await reset_postgres(url)
                    database = url
                results.append(await measure(backend, database, concurrency, args))
            if url is None:
                database = f"sqlite+aiosqlite:///{folder}/bench-9.db"
            else:
                await reset_postgres(url)
                database = url
            results.append(await measure(backend, database, 1, args, PLAN_9))
    tables = (summary_table, marginal_table, time_table, kinds_table, routes_table, db_table)
    for table in (*tables, webhooks_table):
        print(table(results), end="\n\n")
    idle = ", ".join(f"{m.backend} x{m.concurrency}: {m.idle_steps}" for m in results)
    print(f"driver steps that claimed nothing: {idle}")
    elapsed = time.perf_counter() - started
    print(json.dumps({"machine_cpus": os.cpu_count(), "elapsed_s": round(elapsed, 1)}))


if __name__ == "__main__":
    asyncio.run(main())
