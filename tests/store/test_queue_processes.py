"""Two real worker processes on one PostgreSQL never hold the same run at the same time."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.jobs import NewJob
from app.store.models import JobRow
from app.store.queue import RunQueue
from app.store.runs import RunStore
from tests.conftest import POSTGRES_URL
from tests.store.test_runs import T0, new_run

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not POSTGRES_URL,
        reason="AUTOPACK_TEST_DATABASE_URL is not set: the multi-process test needs PostgreSQL",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("queue_worker.py")
RUNS = 20
DEADLINE_SECONDS = 60


async def start_worker(url: str, name: str) -> asyncio.subprocess.Process:
    """Start one worker process; it waits for a line on stdin before working."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        url,
        name,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


async def drain(process: asyncio.subprocess.Process) -> tuple[int, bytes, bytes]:
    """Wait for a worker to finish; its exit code, stdout and stderr."""
    assert process.stdout is not None
    assert process.stderr is not None
    out, err, code = await asyncio.gather(
        process.stdout.read(), process.stderr.read(), process.wait()
    )
    return code, out, err


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_two_workers_share_the_queue_without_sharing_a_run(
    engine: AsyncEngine, database_url: str
) -> None:
    runs, queue = RunStore(engine), RunQueue(engine)
    for issue in range(RUNS):
        run = await runs.create_run(new_run(issue=issue), now=T0)
        # The first job makes its handler enqueue two follow-ups, one at a time, so every run
        # is claimed, released and claimed again while both workers are busy.
        # The workers use the real clock, so the jobs are enqueued by it too.
        await queue.enqueue(run.id, NewJob(json.dumps({"followups": 2})))
        await queue.enqueue(run.id, NewJob(json.dumps({"followups": 0})))

    workers = [await start_worker(database_url, name) for name in ("alpha", "beta")]
    try:
        for process in workers:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), DEADLINE_SECONDS)
            assert line == b"ready\n"
        for process in workers:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
            process.stdin.close()
        results = await asyncio.wait_for(
            asyncio.gather(*(drain(process) for process in workers)), DEADLINE_SECONDS
        )
    finally:
        for process in workers:
            if process.returncode is None:
                process.kill()
            await process.wait()

    holds: list[dict[str, Any]] = []
    for code, out, err in results:
        assert code == 0, err.decode()
        holds.extend(json.loads(line) for line in out.decode().splitlines())

    # Every job was processed exactly once, and every job in the table is done.
    processed = [job for hold in holds for job in hold["jobs"]]
    async with engine.connect() as conn:
        stored = (await conn.execute(select(JobRow.id, JobRow.status))).all()
    assert len(stored) == RUNS * 4
    assert sorted(processed) == sorted(job_id for job_id, _ in stored)
    assert {status for _, status in stored} == {"done"}

    # Both workers took part, and no two holds of one run ever overlapped.
    assert {hold["owner"] for hold in holds} == {"alpha", "beta"}
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for hold in holds:
        by_run[hold["run"]].append(hold)
    assert len(by_run) == RUNS
    for run_holds in by_run.values():
        run_holds.sort(key=lambda hold: hold["start"])
        for before, after in itertools.pairwise(run_holds):
            assert before["end"] < after["start"], (before, after)
