"""The statements that queue and complete a run's jobs, shared by the queue and the run store.

The run store uses them to write a job together with the run's state in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, update

from app.store.db import conflict_insert
from app.store.models import JobRow


class JobStatus(StrEnum):
    """Where a job stands."""

    PENDING = "pending"
    DONE = "done"


class JobKind(StrEnum):
    """What a job asks of the driver."""

    EVENT = "event"  # apply the event in `payload` to the machine
    KICK = "kick"  # look at the run now (a new run: carry out its first effect)
    POLL = "poll"  # look at CI now (a webhook named the commit the run waits for)


@dataclass(frozen=True)
class NewJob:
    """A job to queue for a run; `dedupe_key` makes queueing it twice a no-op.

    `event_type` names the event of an EVENT job, so that the queue can be asked for one (a
    pending cancel) without reading payloads.
    """

    payload: str = ""
    dedupe_key: str | None = None
    kind: JobKind = JobKind.EVENT
    event_type: str = ""


def insert_job(
    dialect: str,
    run_id: str,
    job: NewJob,
    moment: datetime,
    available_at: datetime | None = None,
) -> Any:
    """INSERT the job unless its dedupe key was used for the run; RETURNING the new id."""
    table = JobRow.__table__
    assert isinstance(table, Table)
    return (
        conflict_insert(dialect, table)
        .values(
            run_id=run_id,
            payload=job.payload,
            dedupe_key=job.dedupe_key,
            kind=job.kind.value,
            event_type=job.event_type,
            status=JobStatus.PENDING.value,
            created_at=moment,
            available_at=available_at if available_at is not None else moment,
        )
        .on_conflict_do_nothing(index_elements=["run_id", "dedupe_key"])
        .returning(table.c.id)
    )


def complete_jobs(run_id: str, job_ids: Sequence[int], moment: datetime) -> Any:
    """UPDATE the run's pending jobs among `job_ids` to done."""
    return (
        update(JobRow)
        .where(
            JobRow.run_id == run_id,
            JobRow.id.in_(list(job_ids)),
            JobRow.status == JobStatus.PENDING.value,
        )
        .values(status=JobStatus.DONE.value, done_at=moment)
    )
