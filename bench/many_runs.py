"""Many runs benchmark: runs labelled at once across repositories, driven by worker processes
on PostgreSQL, one worker SIGKILLed in the middle.

Real processes as an operator runs them (`autopack web` and `autopack worker` x N, started as in
tests/engine/processes.py) against the GitHub simulator in this process. Each run is the 3-phase
plan of bench/run_overhead.py; the builder (bench/sleeping_builder.py, sandboxed with bubblewrap,
the default) sleeps `--builder-seconds`; CI (the simulator's check runs) reports `--ci-seconds`
after each push. All issues are opened first, then labelled `autopack:run` in one go.

The operator config sets `[limits]` to let every slot work: `max_concurrent_runs` = all slots,
`max_runs_per_repository` = slots / repositories (rounded up); both can be given.

What is reported, and how it is measured:
* wall: from the labelling to the last run's `finished_at`, against the ideal
  runs x phases x builder seconds / (workers x AUTOPACK_WORKER_CONCURRENCY), the time the builders
  alone need when every slot is always busy (CI and supervision hidden behind other runs' builders).
* lost: labelled issues without a run that ended DONE_SUCCESS (failed, stuck or never started).
* fairness: per repository, the time from the labelling until its last run finished; the slowest
  repository against the fastest.
* API calls: the simulator's request log, installation-token calls only (`app == "autopack"`: what
  counts against a repository's rate limit); App-JWT calls (token mints, webhook-delivery listing
  for the catch-up) are counted apart. Per run = total / runs; per phase = per run / 3 (run start
  and end included). With a kill, the effects the dead worker repeats are in it.
* supervisor ms per phase: CPU time (utime + stime, /proc/PID/stat) of the worker and web
  processes from the labelling to the end (start-up excluded; a restarted worker counts whole),
  divided by the phases run. Builders are separate processes (their CPU is reported apart, from
  the workers' reaped children); the simulator and CI run in this process; waiting on GitHub or
  the database costs no CPU. It is CPU rather than wall time because with 32 runs on one event loop
  per process and 2 shared cores, the wall time of one run's step mostly measures the other runs'
  work (bench/run_overhead.py, which measures wall time less builder and GitHub waits, drives
  one run at a time). Free slots polling for work are in it; their share is estimated from a
  waiting worker's CPU, read for a few seconds before the labelling. PostgreSQL's backends (their
  /proc CPU) are shown apart.
* where the time goes: seconds per visit of each state, from the transitions in the event log;
  and how long deliveries waited in the inbox (stored by `web`, processed by a worker).
* resume: the first worker is killed once `--kill-at` of the runs have ended (and while it holds
  runs) and restarted at once. Shown: when the restarted worker said it runs, how many runs it
  took back from the dead pid at its start (its log), and for each run the dead worker held: the
  time until a live worker leased it again (the polled lease less its length) and until the run's
  first new entry in its event log (the re-run builder comes first, so this includes it).

    .venv/bin/python bench/many_runs.py [--runs 200] [--repos 20] [--builder-seconds 2]
        [--ci-seconds 0.5] [--concurrency 16] [--workers 2] [--kill-at 0.5]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/autopack_bench_many]

The database's schema is reset. `--runs 20 --repos 4 --builder-seconds 0.5` is the quick size:
about a minute on a quiet machine, a few minutes on a busy one.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the simulator and the process helpers live under tests/

from app.store.db import create_engine  # noqa: E402
from app.store.models import InboxRow, RunEventRow, RunRow  # noqa: E402
from bench.run_overhead import FILES, KINDS, PLAN, kind_of, route_of  # noqa: E402
from tests.conftest import reset_postgres  # noqa: E402
from tests.engine.processes import AUTOPACK, Server, free_port  # noqa: E402
from tests.fakegithub import issues_ops  # noqa: E402
from tests.fakegithub.ci import CIScript  # noqa: E402
from tests.fakegithub.core import RequestRecord  # noqa: E402
from tests.fakegithub.scenario import FakeGitHub  # noqa: E402
from tests.sandboxing import read_only_paths  # noqa: E402

BUILDER = ROOT / "bench" / "sleeping_builder.py"
OWNER = "acme"
PHASES = PLAN.count("- [ ]")
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/autopack_bench_many"
MONITOR = "many-runs-bench"  # this process's application_name, left out of the backends' CPU
RECLAIM_POLL = 0.05  # seconds between polls until the killed worker's runs are leased again
RECLAIM_WATCH = 60.0  # seconds after the kill for those fast polls
IDLE_SECONDS = 3.0  # how long the workers' CPU is read before any run
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GOAL_WALL_RATIO, GOAL_RESUME_S, GOAL_CALLS_PER_RUN, GOAL_MS_PER_PHASE = 1.5, 15.0, 40, 50.0

# -- the report's arithmetic (pure) -----------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """What was asked for: runs x phases, builder seconds, slots over all workers."""

    runs: int
    repos: int
    phases: int
    builder_seconds: float
    workers: int
    concurrency: int

    @property
    def slots(self) -> int:
        """Runs driven at once over all worker processes."""
        return self.workers * self.concurrency

    @property
    def ideal_seconds(self) -> float:
        """The builders' time alone with every slot always busy."""
        return self.runs * self.phases * self.builder_seconds / self.slots


@dataclass(frozen=True)
class RunEnd:
    """One labelled issue's outcome: `finished` is seconds after the labelling, if it ended."""

    repository: str
    status: str | None  # None: no run was ever created for the issue
    finished: float | None


def lost(ends: Sequence[RunEnd]) -> int:
    """Labelled issues whose run did not end DONE_SUCCESS."""
    return sum(end.status != "DONE_SUCCESS" or end.finished is None for end in ends)


def repository_finishes(ends: Sequence[RunEnd]) -> dict[str, float]:
    """Per repository, when its last run finished (seconds after labelling); repositories with
    a run that never finished are left out (they are counted as lost)."""
    finishes: dict[str, float] = {}
    unfinished = {end.repository for end in ends if end.finished is None}
    for end in ends:
        if end.repository not in unfinished and end.finished is not None:
            finishes[end.repository] = max(finishes.get(end.repository, 0.0), end.finished)
    return finishes


def fairness(finishes: Mapping[str, float]) -> float:
    """The slowest repository's completion time over the fastest's (1.0 is perfectly fair)."""
    if not finishes:
        return math.nan
    fastest = min(finishes.values())
    return max(finishes.values()) / fastest if fastest > 0 else math.inf


def wall_seconds(ends: Sequence[RunEnd]) -> float:
    """From the labelling to the last run's end."""
    return max((end.finished for end in ends if end.finished is not None), default=math.nan)


def per_run_and_phase(total: float, runs: int, phases: int) -> tuple[float, float]:
    """A total over the whole benchmark, per run and per phase."""
    if runs <= 0 or phases <= 0:
        return math.nan, math.nan
    return total / runs, total / (runs * phases)


def delays(since: float, moments: Mapping[str, float | None]) -> list[float]:
    """Seconds from `since` to each moment; a run that never moved counts as infinitely late."""
    return sorted(math.inf if moment is None else moment - since for moment in moments.values())


def calls_by_kind(
    log: Iterable[RequestRecord],
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Installation-token calls by kind and by route, and App-JWT calls by route."""
    kinds: Counter[str] = Counter(dict.fromkeys(KINDS, 0))
    routes: Counter[str] = Counter()
    jwt: Counter[str] = Counter()
    for record in log:
        if record.app == "autopack":
            route = route_of(record)[1]
            routes[route] += 1
            kinds[kind_of(route)] += 1
        elif record.app == "jwt":
            jwt[re.sub(r"/\d+", "/{n}", f"{record.method} {record.path}")] += 1
    return kinds, routes, jwt


def state_seconds(transitions: Iterable[tuple[str, str, float]]) -> dict[str, list[float]]:
    """Seconds per visit of each state, from (run, "A -> B", epoch s) in each run's order: the
    run is in B until its next transition (the last state, terminal, has no duration)."""
    spent: dict[str, list[float]] = {}
    entered: dict[str, tuple[str, float]] = {}
    for run, name, at in transitions:
        if run in entered:
            state, since = entered[run]
            spent.setdefault(state, []).append(at - since)
        entered[run] = (name.split(" -> ")[-1], at)
    return spent


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, 95th percentile (nearest rank) and maximum."""
    if not values:
        return math.nan, math.nan, math.nan
    ordered = sorted(values)
    rank = max(math.ceil(0.95 * len(ordered)) - 1, 0)
    return statistics.median(ordered), ordered[rank], ordered[-1]


def idle_polling_seconds(
    idle_ms_per_s: float, workers: int, wall: float, busy_share: float
) -> float:
    """An estimate of the workers' CPU spent by slots without a run polling for one: a waiting
    worker's rate, times the share of slots that were free, over the wall time."""
    return idle_ms_per_s / 1000 * workers * wall * (1 - busy_share)


@dataclass(frozen=True)
class Goal:
    """One of the issue's goals, with the figure it is judged on."""

    name: str
    figure: str
    met: bool


def goals(
    shape: Shape,
    wall: float,
    lost_runs: int,
    resume: list[float] | None,
    calls_per_run: float,
    ms_per_phase: float,
) -> list[Goal]:
    """The issue's five goals against this run's figures (resume None: no kill)."""
    ratio = wall / shape.ideal_seconds
    result = [
        Goal(f"wall ≤ {GOAL_WALL_RATIO} x ideal", f"{ratio:.2f} x ideal", ratio <= GOAL_WALL_RATIO),
        Goal("0 runs lost", f"{lost_runs} lost", lost_runs == 0),
    ]
    if resume is not None:
        worst = max(resume, default=0.0)
        result.append(
            Goal(
                f"resume ≤ {GOAL_RESUME_S:.0f} s",
                f"{worst:.1f} s (slowest run)",
                worst <= GOAL_RESUME_S,
            )
        )
    if shape.phases == 3:
        result.append(
            Goal(
                f"≤ {GOAL_CALLS_PER_RUN} API calls per 3-phase run",
                f"{calls_per_run:.1f}",
                calls_per_run <= GOAL_CALLS_PER_RUN,
            )
        )
    result.append(
        Goal(
            f"≤ {GOAL_MS_PER_PHASE:.0f} ms supervisor per phase",
            f"{ms_per_phase:.0f} ms CPU",
            ms_per_phase <= GOAL_MS_PER_PHASE,
        )
    )
    return result


# -- processes' CPU ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    """A process's CPU seconds: its own, and its reaped children's (the builders)."""

    own: float = 0.0
    children: float = 0.0

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.own - other.own, self.children - other.children)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.own + other.own, self.children + other.children)


def parse_stat(line: str) -> Cpu:
    """utime+stime and cutime+cstime of a /proc/PID/stat line (the name may hold spaces)."""
    fields = line.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return Cpu((utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS)


def cpu_of(pid: int) -> Cpu | None:
    """The process's CPU now, or None once it is gone."""
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (FileNotFoundError, ProcessLookupError):
        return None


class BackendCpu:
    """PostgreSQL backends serving the benchmark's database, sampled now and then: a backend
    that ends between two samples loses at most one interval."""

    def __init__(self) -> None:
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    async def sample(self, engine: AsyncEngine) -> None:
        """Read the CPU of every backend on this database but the benchmark's own."""
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "select pid from pg_stat_activity "
                    "where datname = current_database() and application_name <> :me"
                ),
                {"me": MONITOR},
            )
            pids = [row[0] for row in rows]
        for pid in pids:
            cpu = cpu_of(pid)
            if cpu is not None:
                self.first.setdefault(pid, cpu.own)
                self.last[pid] = cpu.own

    def since(self, baseline: Mapping[int, float]) -> float:
        """CPU seconds used since `baseline` (a copy of `last` taken then)."""
        return sum(value - baseline.get(pid, self.first[pid]) for pid, value in self.last.items())


# -- the world ---------------------------------------------------------------------------------


def _repositories(sim: FakeGitHub, args: argparse.Namespace) -> list[str]:
    inst = sim.install(OWNER)
    ci = dataclasses.replace(CIScript.pass_(), delay=args.ci_seconds)
    repos = [f"{OWNER}/r{index:02d}" for index in range(args.repos)]
    for repo in repos:
        sim.create_repo(repo, FILES, installation=inst, ci=ci)
        sim.set_permission(repo, "alice", "write")
    return repos


def _operator_config(args: argparse.Namespace, slots: int) -> str:
    read_only = [*read_only_paths(), str(BUILDER.parent)]
    per_repository = args.max_runs_per_repository or math.ceil(slots / args.repos)
    return (
        "[builders.default]\n"
        'backend = "command"\n'
        f"command = {json.dumps([sys.executable, str(BUILDER)])}\n"
        "timeout_seconds = 120\n"
        f"read_only = {json.dumps(read_only)}\n"
        f'env.BENCH_BUILDER_SECONDS = "{args.builder_seconds}"\n'
        "[limits]\n"
        f"max_concurrent_runs = {args.max_concurrent_runs or slots}\n"
        f"max_runs_per_repository = {per_repository}\n"
    )


async def _environment(
    sim: FakeGitHub, work: Path, args: argparse.Namespace, slots: int
) -> dict[str, str]:
    config = work / "autopack.toml"
    config.write_text(_operator_config(args, slots))
    key = work / "app.pem"
    key.write_text(sim.app.private_key_pem)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "APP_ID": str(sim.app.id),
        "PRIVATE_KEY_PATH": str(key),
        "WEBHOOK_SECRET": sim.app.webhook_secret,
        "GITHUB_API_URL": sim.url,
        "DATABASE_URL": args.postgres,
        "AUTOPACK_DATA_DIR": str(work / "data"),
        "AUTOPACK_CONFIG": str(config),
        "AUTOPACK_WORKER_CONCURRENCY": str(args.concurrency),
        "AUTOPACK_LOG_FORMAT": "json",
        "PORT": str(free_port()),
    }
    migrate = await asyncio.create_subprocess_exec(
        AUTOPACK, "migrate", env=env, cwd=work, stdout=asyncio.subprocess.DEVNULL
    )
    if await migrate.wait() != 0:
        raise SystemExit("autopack migrate failed")
    return env


# -- watching the runs -------------------------------------------------------------------------


def pid_of(server: Server) -> int:
    """The process id of a started server."""
    assert server.process is not None
    return server.process.pid


def owner_prefix(pid: int) -> str:
    """The start of every lease owner name of a worker process on this host."""
    return f"{socket.gethostname()}:{pid}:"


class Worker(Server):
    """`autopack worker` with its stdout in its log too: the start-up line says it is ready."""

    READY = b"autopack: worker running"

    def __init__(self, env: dict[str, str], cwd: Path, name: str) -> None:
        super().__init__(env, cwd, command="worker", name=name)

    async def _spawn(self, log: BinaryIO) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            AUTOPACK, self.command, env=self.env, cwd=self.cwd, stdout=log, stderr=log
        )

    def is_ready(self) -> bool:
        """Whether the worker said it runs (after its start-up, with its drivers started)."""
        return self.READY in self.log_path.read_bytes()

    async def ready(self) -> None:
        """Wait (bounded) until the worker said it runs: its start-up is not in its CPU figure."""
        async with asyncio.timeout(60):
            while not self.is_ready():  # noqa: ASYNC110 - a file, not an event
                await asyncio.sleep(0.1)


@dataclass
class Kill:
    """The SIGKILL of one worker: when, the runs it held, when each of them moved again."""

    at: datetime
    dead: str  # the killed worker's lease owner prefix
    restarted: str  # the restarted worker's
    reclaimed: dict[str, float | None]  # run -> epoch s when a live worker leased it
    taken_by: Counter[str] = field(default_factory=Counter)
    moved: dict[str, float | None] = field(default_factory=dict)  # run -> first new event
    up_at: float | None = None  # when the restarted worker said it runs (polled, epoch s)
    taken_back: int = 0  # runs it took back from the dead pid at start (its log says)

    def read_restart_log(self, log: Path) -> None:
        """How many runs the restarted worker took back from the dead pid at its start."""
        for line in log.read_text(errors="replace").splitlines():
            found = re.search(r'"took back (\d+) run', line)
            if found:
                self.taken_back = int(found.group(1))


@dataclass
class Fleet:
    """The Autopack processes and the CPU each used since the labelling."""

    env: dict[str, str]
    work: Path
    web: Server
    workers: list[Worker]
    start: dict[int, Cpu] = field(default_factory=dict)
    end: dict[int, Cpu] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)

    def servers(self) -> list[Server]:
        """Every process started, the killed one included."""
        return [self.web, *self.workers]

    def mark_start(self) -> None:
        """Read every process's CPU at the labelling (start-up is not counted)."""
        for server in self.servers():
            pid = pid_of(server)
            self.roles[pid] = server.command
            self.start[pid] = cpu_of(pid) or Cpu()

    def mark_end(self, server: Server) -> None:
        """Read one process's CPU for the last time (before its kill, or at the end)."""
        pid = pid_of(server)
        self.roles.setdefault(pid, server.command)
        self.end[pid] = cpu_of(pid) or self.end.get(pid, Cpu())

    def used(self, role: str) -> Cpu:
        """CPU used by the processes of one role ("web", "worker") between the marks."""
        total = Cpu()
        for pid, end in self.end.items():
            if self.roles[pid] == role:
                total = total + (end - self.start.get(pid, Cpu()))
        return total


async def _runs(engine: AsyncEngine) -> Sequence[tuple[str, bool, str | None, datetime | None]]:
    columns = (RunRow.id, RunRow.terminal, RunRow.lease_owner, RunRow.lease_until)
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(select(*columns))]  # type: ignore[misc]


@dataclass
class Watch:
    """What polling the runs table saw."""

    leased: list[int] = field(default_factory=list)  # runs under a live lease, per poll
    kill: Kill | None = None
    timed_out: bool = False


async def watch(
    args: argparse.Namespace, engine: AsyncEngine, fleet: Fleet, backends: BackendCpu
) -> Watch:
    """Poll the runs until all ended (or the timeout); kill a worker midway and restart it."""
    seen = Watch()
    lease = float(fleet.env.get("AUTOPACK_LEASE_SECONDS", "10"))
    deadline = time.monotonic() + args.timeout
    next_sample = 0.0
    while time.monotonic() < deadline:
        rows = await _runs(engine)
        now = datetime.now(UTC).timestamp()
        live = {
            run: owner
            for run, terminal, owner, until in rows
            if owner is not None and not terminal and _live(owner, until, now)
        }
        seen.leased.append(len(live))
        if time.monotonic() >= next_sample:
            await backends.sample(engine)
            next_sample = time.monotonic() + 1.0
        if seen.kill is not None:
            note_reclaims(seen.kill, rows, now, lease)
            if seen.kill.up_at is None and fleet.workers[-1].is_ready():
                seen.kill.up_at = now
        elif args.kill_at > 0 and sum(r[1] for r in rows) >= args.kill_at * args.runs:
            seen.kill = await _kill(fleet, live)
        if len(rows) >= args.runs and all(terminal for _, terminal, _, _ in rows):
            return seen
        # Fast while the restarted worker or the killed one's runs are to be seen moving.
        waiting = (
            seen.kill is not None
            and (seen.kill.up_at is None or None in seen.kill.reclaimed.values())
            and now - seen.kill.at.timestamp() < RECLAIM_WATCH
        )
        await asyncio.sleep(min(args.poll, RECLAIM_POLL) if waiting else args.poll)
    seen.timed_out = True
    return seen


def _live(owner: str | None, until: datetime | None, now: float) -> bool:
    return owner is not None and until is not None and until.timestamp() > now


async def _kill(fleet: Fleet, live: Mapping[str, str]) -> Kill | None:
    """SIGKILL the first worker while it holds runs, and start it again at once."""
    victim = fleet.workers[0]
    dead = owner_prefix(pid_of(victim))
    held = [run for run, owner in live.items() if owner.startswith(dead)]
    if not held:
        return None  # it holds nothing right now: try again at the next poll
    fleet.mark_end(victim)
    at = datetime.now(UTC)
    await victim.kill()
    restarted = Worker(fleet.env, fleet.work, name="worker-1-restarted")
    await restarted.start()
    fleet.workers.append(restarted)
    return Kill(at, dead, owner_prefix(pid_of(restarted)), reclaimed=dict.fromkeys(held))


def note_reclaims(
    kill: Kill,
    rows: Iterable[tuple[str, bool, str | None, datetime | None]],
    now: float,
    lease: float,
) -> None:
    """A held run leased by a live worker: when (its lease's end less the lease length; seen
    before the first renewal, a third of a lease later, as the polls are more frequent)."""
    for run, _, owner, until in rows:
        if run not in kill.reclaimed or kill.reclaimed[run] is not None:
            continue
        if owner is None or until is None or not _live(owner, until, now):
            continue
        if owner.startswith(kill.dead):
            continue
        kill.reclaimed[run] = until.timestamp() - lease
        kill.taken_by["restarted" if owner.startswith(kill.restarted) else "other"] += 1


async def follow_up(engine: AsyncEngine, kill: Kill) -> None:
    """Each held run's first event-log entry after the kill; runs that had ended by then (held
    only until the release that follows the last save) are dropped from the figures."""
    held = list(kill.reclaimed)
    ended = select(RunRow.id).where(RunRow.id.in_(held), RunRow.finished_at <= kill.at)
    first = (
        select(RunEventRow.run_id, func.min(RunEventRow.created_at))
        .where(RunEventRow.run_id.in_(held), RunEventRow.created_at > kill.at)
        .group_by(RunEventRow.run_id)
    )
    async with engine.connect() as conn:
        done = set((await conn.execute(ended)).scalars())
        found = {run: at.timestamp() for run, at in await conn.execute(first)}
    kill.reclaimed = {run: at for run, at in kill.reclaimed.items() if run not in done}
    kill.moved = {run: found.get(run) for run in kill.reclaimed}


async def transitions(engine: AsyncEngine) -> list[tuple[str, str, float]]:
    """Every run's state transitions, in order, with their times (epoch s)."""
    statement = (
        select(RunEventRow.run_id, RunEventRow.name, RunEventRow.created_at)
        .where(RunEventRow.kind == "transition")
        .order_by(RunEventRow.run_id, RunEventRow.seq)
    )
    async with engine.connect() as conn:
        return [(run, name, at.timestamp()) for run, name, at in await conn.execute(statement)]


async def inbox_lags(engine: AsyncEngine) -> dict[str, list[float]]:
    """Seconds from a delivery's storing to the end of its processing, by event and action."""
    columns = (InboxRow.event, InboxRow.action, InboxRow.received_at, InboxRow.processed_at)
    lags: dict[str, list[float]] = {}
    async with engine.connect() as conn:
        for event, action, received, processed in await conn.execute(select(*columns)):
            if processed is not None:
                key = f"{event}.{action}" if action else event
                lags.setdefault(key, []).append((processed - received).total_seconds())
    return lags


async def outcomes(
    engine: AsyncEngine, labelled: Sequence[tuple[str, int]], since: float
) -> tuple[list[RunEnd], int]:
    """One RunEnd per labelled issue, and how many runs there are beyond one per issue."""
    columns = (RunRow.repository, RunRow.issue_number, RunRow.status, RunRow.finished_at)
    async with engine.connect() as conn:
        rows = list(await conn.execute(select(*columns)))
    by_issue = {(repo.lower(), number): (status, at) for repo, number, status, at in rows}
    ends = []
    for repo, number in labelled:
        status, at = by_issue.get((repo.lower(), number), (None, None))
        ends.append(RunEnd(repo, status, None if at is None else at.timestamp() - since))
    return ends, len(rows) - len(by_issue)


def log_warnings(work: Path) -> Counter[str]:
    """Warning and error lines of the processes' JSON logs, by process and message."""
    found: Counter[str] = Counter()
    for path in sorted(work.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("level") in ("warning", "error", "critical"):
                found[f"{path.stem}: {record['level']}: {record.get('message', '')[:80]}"] += 1
    return found


async def idle_cpu(workers: Sequence[Worker]) -> float:
    """A started worker's CPU while there is no work (its polls), in ms per second."""
    pids = [pid_of(worker) for worker in workers]
    before = [cpu_of(pid) or Cpu() for pid in pids]
    started = time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    elapsed = time.perf_counter() - started
    after = [cpu_of(pid) or Cpu() for pid in pids]
    used = sum((a - b).own for a, b in zip(after, before, strict=True))
    return used * 1000 / elapsed / len(pids)


def keep_logs(work: Path, destination: Path) -> None:
    """Copy the processes' logs out of the work folder before it goes."""
    destination.mkdir(parents=True, exist_ok=True)
    for log in work.glob("*.log"):
        shutil.copy(log, destination / log.name)


# -- one measurement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Everything one measurement produced."""

    shape: Shape
    labelled_at: float  # epoch s
    ends: list[RunEnd]
    extra_runs: int
    kinds: Counter[str]
    routes: Counter[str]
    jwt_routes: Counter[str]
    worker_cpu: Cpu
    web_cpu: Cpu
    postgres_cpu: float
    bench_cpu: float
    leased: list[int]
    kill: Kill | None
    timed_out: bool
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    warnings: Counter[str]
    idle_ms_per_s: float  # a waiting worker's CPU, for scale
    states: dict[str, list[float]]  # seconds per visit of each state
    inbox: dict[str, list[float]]  # seconds from storing to processed, by delivery kind

    @property
    def done(self) -> int:
        """Runs that ended DONE_SUCCESS."""
        return len(self.ends) - lost(self.ends)

    @property
    def calls(self) -> tuple[float, float]:
        """Installation-token API calls per run and per phase (over the runs that ended)."""
        return per_run_and_phase(sum(self.kinds.values()), self.done, self.shape.phases)

    @property
    def ms_per_phase(self) -> float:
        """Supervisor CPU (workers and web) per phase run, in milliseconds."""
        own = self.worker_cpu.own + self.web_cpu.own
        return per_run_and_phase(own * 1000, self.done, self.shape.phases)[1]

    @property
    def resume(self) -> list[float] | None:
        """Seconds from the kill to each held run's first new event (None: no kill)."""
        return None if self.kill is None else delays(self.kill.at.timestamp(), self.kill.moved)


async def measure(args: argparse.Namespace) -> Report:
    """Start the world and the processes, label every issue at once, watch until all ended."""
    shape = Shape(
        args.runs, args.repos, PHASES, args.builder_seconds, args.workers, args.concurrency
    )
    load_before = os.getloadavg()
    await reset_postgres(args.postgres)
    sim = FakeGitHub(rate_limit=1_000_000)
    await sim.start()
    engine = create_engine(
        args.postgres, connect_args={"server_settings": {"application_name": MONITOR}}
    )
    backends = BackendCpu()
    try:
        repos = _repositories(sim, args)
        with tempfile.TemporaryDirectory(prefix="many-runs-") as folder:
            work = Path(folder)
            env = await _environment(sim, work, args, shape.slots)
            fleet = Fleet(
                env,
                work,
                Server(env, work, command="web", name="web"),
                [Worker(env, work, name=f"worker-{n + 1}") for n in range(args.workers)],
            )
            try:
                for server in fleet.servers():
                    await server.start()
                for worker in fleet.workers:
                    await worker.ready()
                sim.webhook_url = f"{fleet.web.url}/api/github/webhooks"
                labelled = []
                for index in range(args.runs):
                    repo = repos[index % len(repos)]
                    number = await sim.open_issue(repo, f"Build thing {index}", PLAN, user="alice")
                    labelled.append((repo, number))
                await sim.idle()
                idle = await idle_cpu(fleet.workers)
                await backends.sample(engine)
                backends_at_start = dict(backends.last)
                fleet.mark_start()
                bench_cpu, started = time.process_time(), time.time()
                for repo, number in labelled:  # all at once: deliveries queue in this order
                    issue = sim.repo(repo).issues[number]
                    issues_ops.add_labels(
                        sim.core, sim.repo(repo), issue, ["autopack:run"], sim.user("alice")
                    )
                seen = await watch(args, engine, fleet, backends)
                await sim.idle(timeout=30)
                await backends.sample(engine)
                for server in fleet.servers():
                    if server.process is not None and server.process.returncode is None:
                        fleet.mark_end(server)
                bench_cpu = time.process_time() - bench_cpu
            finally:
                sim.webhook_url = None
                for server in fleet.servers():
                    await server.stop()
            warnings = log_warnings(work)
            if seen.kill is not None:
                seen.kill.read_restart_log(fleet.workers[-1].log_path)
            if args.logs is not None:
                keep_logs(work, args.logs)
        ends, extra = await outcomes(engine, labelled, started)
        states = state_seconds(await transitions(engine))
        inbox = await inbox_lags(engine)
        if seen.kill is not None:
            await follow_up(engine, seen.kill)
    finally:
        await engine.dispose()
        await sim.stop()
    kinds, routes, jwt = calls_by_kind(sim.request_log)
    return Report(
        shape,
        started,
        ends,
        extra,
        kinds,
        routes,
        jwt,
        fleet.used("worker"),
        fleet.used("web"),
        backends.since(backends_at_start),
        bench_cpu,
        seen.leased,
        seen.kill,
        seen.timed_out,
        load_before,
        os.getloadavg(),
        warnings,
        idle,
        states,
        inbox,
    )


# -- report ------------------------------------------------------------------------------------


def _pair(values: Sequence[float]) -> str:
    """ "median / max" of some seconds, "∞" for a run that never moved."""
    if not values:
        return "-"
    return " / ".join(
        "∞" if math.isinf(v) else f"{v:.1f}" for v in (statistics.median(values), max(values))
    )


def summary_table(r: Report) -> str:
    """The headline row: wall against the ideal, losses, fairness, calls, supervisor time."""
    s = r.shape
    wall = wall_seconds(r.ends)
    finishes = repository_finishes(r.ends)
    per_run, per_phase = r.calls
    span = f"{min(finishes.values()):.1f}-{max(finishes.values()):.1f}" if finishes else "-"
    return "\n".join(
        [
            "| runs x phases | repos | workers x slots | builder s | wall s | ideal s "
            "| wall / ideal | lost | repo done s | fairness | API calls / run | / phase "
            "| supervisor CPU ms / phase |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {s.runs} x {s.phases} | {s.repos} | {s.workers} x {s.concurrency} "
            f"| {s.builder_seconds:g} | {wall:.1f}{' (timed out)' if r.timed_out else ''} "
            f"| {s.ideal_seconds:.1f} | {wall / s.ideal_seconds:.2f} | {lost(r.ends)} | {span} "
            f"| {fairness(finishes):.2f} | {per_run:.1f} | {per_phase:.1f} "
            f"| {r.ms_per_phase:.0f} |",
        ]
    )


def cpu_table(r: Report) -> str:
    """Where the CPU went, per phase: Autopack, its database, the builders, the simulator."""
    phases = max(r.done * r.shape.phases, 1)
    wall = wall_seconds(r.ends)
    busy = statistics.fmean(r.leased or [0]) / r.shape.slots
    polling = idle_polling_seconds(r.idle_ms_per_s, r.shape.workers, wall, busy)
    cells = {
        "workers": r.worker_cpu.own,
        "of which free slots polling (estimate)": polling,
        "web": r.web_cpu.own,
        "PostgreSQL backends": r.postgres_cpu,
        "builders (bwrap + interpreter)": r.worker_cpu.children,
        "benchmark process (simulator, CI)": r.bench_cpu,
    }
    cells["all"] = sum(cells.values()) - polling
    cells[f"{os.cpu_count()} cores x wall"] = (os.cpu_count() or 1) * wall
    return "\n".join(
        [
            "| CPU ms per phase | " + " | ".join(cells) + " |",
            "|---|" + "---:|" * len(cells),
            "| | " + " | ".join(f"{v * 1000 / phases:.0f}" for v in cells.values()) + " |",
        ]
    )


def kill_table(r: Report) -> str:
    """The SIGKILL: the runs the worker held, and how long until they moved again."""
    kill = r.kill
    if kill is None:
        return "no worker was killed"
    since = kill.at.timestamp()
    taken = ", ".join(f"{count} by the {who} worker" for who, count in kill.taken_by.items())
    seen = {run: at for run, at in kill.reclaimed.items() if at is not None}
    unseen = len(kill.reclaimed) - len(seen)
    # A lease shorter than a poll may go unseen; the event log says when those runs moved.
    missed = f" ({unseen} not seen)" if unseen else ""
    up = "-" if kill.up_at is None else f"{kill.up_at - since:.1f}"
    return "\n".join(
        [
            "| killed at s | runs held | restarted worker up after s | taken back at its start "
            "| leased again after s (median / max) "
            "| first new event after s (median / max) | leased again by |",
            "|---:|---:|---:|---:|---:|---:|---|",
            f"| {since - r.labelled_at:.1f} | {len(kill.reclaimed)} | {up} | {kill.taken_back} "
            f"| {_pair(delays(since, seen))}{missed} "
            f"| {_pair(delays(since, kill.moved))} | {taken or '-'} |",
        ]
    )


def kinds_table(r: Report) -> str:
    """API calls per run by kind of route, installation-token calls only."""
    runs = max(r.done, 1)
    return "\n".join(
        [
            "| API calls per run | " + " | ".join(KINDS) + " | total | App-JWT calls (all) |",
            "|---|" + "---:|" * (len(KINDS) + 2),
            "| | "
            + " | ".join(f"{r.kinds[k] / runs:.2f}" for k in KINDS)
            + f" | {sum(r.kinds.values()) / runs:.2f} | {sum(r.jwt_routes.values())} |",
        ]
    )


def routes_table(r: Report) -> str:
    """API calls per run by route."""
    runs = max(r.done, 1)
    names = sorted(r.routes, key=lambda name: (KINDS.index(kind_of(name)), name))
    lines = ["| kind | route | calls per run |", "|---|---|---:|"]
    lines += [f"| {kind_of(n)} | `{n}` | {r.routes[n] / runs:.2f} |" for n in names]
    # With the App's JWT: token mints and the catch-up's delivery listing (not per run).
    lines += [
        f"| App JWT (all runs) | `{n}` | {c} in all |" for n, c in sorted(r.jwt_routes.items())
    ]
    return "\n".join(lines)


def states_table(r: Report) -> str:
    """Where a run's time goes: seconds per visit of each state, and per phase in all."""
    phases = max(r.done * r.shape.phases, 1)
    lines = [
        "| state | visits | s per visit: median | p95 | max | s per phase (all visits) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for state, values in sorted(r.states.items(), key=lambda item: -sum(item[1])):
        median, p95, top = spread(values)
        lines.append(
            f"| {state} | {len(values)} | {median:.2f} | {p95:.2f} | {top:.2f} "
            f"| {sum(values) / phases:.2f} |"
        )
    return "\n".join(lines)


def inbox_table(r: Report) -> str:
    """How long deliveries waited in the inbox: stored by `web`, processed by a worker."""
    lines = [
        "| delivery | count | stored to processed s: median | p95 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, values in sorted(r.inbox.items()):
        median, p95, top = spread(values)
        lines.append(f"| `{kind}` | {len(values)} | {median:.2f} | {p95:.2f} | {top:.2f} |")
    return "\n".join(lines)


def goals_list(r: Report) -> str:
    """The issue's goals, met or not, with their figures."""
    found = goals(r.shape, wall_seconds(r.ends), lost(r.ends), r.resume, r.calls[0], r.ms_per_phase)
    return "\n".join(f"* {g.name}: {'met' if g.met else 'NOT met'} ({g.figure})" for g in found)


def print_report(r: Report, elapsed: float) -> None:
    """Every table, then the machine's state, as markdown ready for docs/benchmarks.md."""
    tables = (summary_table, kill_table, cpu_table, states_table, inbox_table, kinds_table)
    for table in (*tables, routes_table, goals_list):
        print(table(r), end="\n\n")
    statuses = Counter(end.status or "(no run)" for end in r.ends)
    leased = r.leased or [0]
    print(f"outcomes: {dict(statuses)}; runs beyond one per issue: {r.extra_runs}")
    print(f"a worker with nothing to do uses {r.idle_ms_per_s:.0f} ms CPU per second")
    print(
        f"runs under a live lease per poll: mean {statistics.fmean(leased):.1f}, "
        f"max {max(leased)} (of {r.shape.slots} slots)"
    )
    for line, count in r.warnings.most_common(12):
        print(f"log: {count} x {line}")
    print(
        json.dumps(
            {
                "machine_cpus": os.cpu_count(),
                "load_before": [round(v, 2) for v in r.load_before],
                "load_after": [round(v, 2) for v in r.load_after],
                "elapsed_s": round(elapsed, 1),
            }
        )
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults are the issue's full size."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="issues labelled at once")
    parser.add_argument("--repos", type=int, default=20, help="repositories they are spread over")
    parser.add_argument("--builder-seconds", type=float, default=2.0, help="each builder sleeps")
    parser.add_argument("--ci-seconds", type=float, default=0.5, help="CI's time per push")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="AUTOPACK_WORKER_CONCURRENCY of each worker"
    )
    parser.add_argument("--workers", type=int, default=2, help="`autopack worker` processes")
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="SIGKILL the first worker once this share of runs ended (0: never)",
    )
    parser.add_argument(
        "--max-concurrent-runs",
        type=int,
        default=0,
        help="[limits] max_concurrent_runs (default: all slots)",
    )
    parser.add_argument(
        "--max-runs-per-repository",
        type=int,
        default=0,
        help="[limits] max_runs_per_repository (default: slots / repos)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for all runs")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between polls")
    parser.add_argument("--postgres", default=DEFAULT_URL, help="its schema is reset")
    parser.add_argument("--logs", type=Path, default=None, help="keep the processes' logs here")
    args = parser.parse_args(argv)
    if min(args.runs, args.repos, args.concurrency, args.workers) < 1:
        parser.error("--runs, --repos, --concurrency and --workers must be at least 1")
    if args.builder_seconds <= 0 or not 0 <= args.kill_at < 1:
        parser.error("--builder-seconds must be positive and --kill-at in [0, 1)")
    if not args.postgres.startswith("postgresql"):
        parser.error("--postgres must be a PostgreSQL URL: several workers need one")
    return args


async def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    report = await measure(args)
    print_report(report, time.perf_counter() - started)


if __name__ == "__main__":
    asyncio.run(main())
