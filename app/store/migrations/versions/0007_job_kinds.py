"""Job kinds as a column (event, kick, poll) and the event type of event jobs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="event"))
        batch.add_column(sa.Column("event_type", sa.String(64), nullable=False, server_default=""))
    jobs = sa.table(
        "jobs",
        sa.column("id", sa.Integer()),
        sa.column("payload", sa.Text()),
        sa.column("status", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("event_type", sa.String()),
    )
    bind = op.get_bind()
    # Pending jobs of older versions carried their kind inside the payload: read it out.
    pending = bind.execute(sa.select(jobs.c.id, jobs.c.payload).where(jobs.c.status == "pending"))
    for job_id, payload in pending.all():
        kind, event_type = _kind_of(payload)
        bind.execute(
            sa.update(jobs).where(jobs.c.id == job_id).values(kind=kind, event_type=event_type)
        )


def _kind_of(payload: str) -> tuple[str, str]:
    try:
        data = json.loads(payload)
    except ValueError:
        return "event", ""
    if not isinstance(data, dict):
        return "event", ""
    if data.get("kick"):
        return "kick", ""
    if data.get("poll"):
        return "poll", ""
    event = data.get("event")
    name = event.get("type") if isinstance(event, dict) else None
    return "event", name if isinstance(name, str) else ""


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("event_type")
        batch.drop_column("kind")
