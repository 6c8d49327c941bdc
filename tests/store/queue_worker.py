"""A queue worker process for test_queue_processes: drains the queue, reporting every hold.

Usage: python tests/store/queue_worker.py <database-url> <worker-name>

Prints `ready`, waits for a line on stdin (so that both workers start together), then claims,
holds, completes and releases runs until no job is pending. Each hold is printed as one JSON
line: run id, owner, job ids, and start/end on the system-wide monotonic clock.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.store.db import create_engine
from app.store.jobs import NewJob
from app.store.models import JobRow
from app.store.queue import JobStatus, RunQueue

LEASE = timedelta(seconds=30)
HOLD_SECONDS = 0.003


async def pending_jobs(engine: AsyncEngine) -> int:
    """How many jobs are still pending anywhere."""
    async with engine.connect() as conn:
        statement = select(func.count()).where(JobRow.status == JobStatus.PENDING.value)
        return int((await conn.execute(statement)).scalar_one())


async def main(url: str, name: str) -> None:
    engine = create_engine(url)
    queue = RunQueue(engine)
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        while True:
            claim = await queue.claim(name, LEASE)
            if claim is None:
                # Another worker may hold the last runs and enqueue follow-ups: poll until
                # nothing at all is pending.
                if await pending_jobs(engine) == 0:
                    break
                await asyncio.sleep(0.005)
                continue
            start = time.monotonic_ns()
            for job in claim.jobs:
                followups = json.loads(job.payload)["followups"]
                if followups > 0:
                    # An effect result feeding the machine: the run is claimed again later.
                    await queue.enqueue(
                        claim.run_id,
                        NewJob(
                            json.dumps({"followups": followups - 1}),
                            f"{claim.run_id}:{followups - 1}",
                        ),
                    )
            await asyncio.sleep(HOLD_SECONDS)
            await queue.complete(claim, [job.id for job in claim.jobs])
            end = time.monotonic_ns()
            record = {
                "run": claim.run_id,
                "owner": name,
                "jobs": [job.id for job in claim.jobs],
                "start": start,
                "end": end,
            }
            print(json.dumps(record), flush=True)
            if not await queue.release(claim):
                raise SystemExit(f"{name} lost the lease of {claim.run_id}")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
