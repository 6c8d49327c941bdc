"""A run's tiers, phases, attempts and issues as rows (the projection of its state).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _run_id() -> sa.Column[str]:
    return sa.Column(
        "run_id",
        sa.String(128),
        sa.ForeignKey("runs.id", ondelete="CASCADE"),
        primary_key=True,
    )


def upgrade() -> None:
    op.create_table(
        "run_tiers",
        _run_id(),
        sa.Column("tier_id", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("token_cap", sa.BigInteger(), nullable=False),
        sa.Column("ci_runs", sa.Integer(), nullable=False),
        sa.Column("ci_run_cap", sa.Integer(), nullable=False),
        sa.Column("minor_issues", sa.Integer(), nullable=False),
        sa.Column("major_issues", sa.Integer(), nullable=False),
        sa.Column("clean", sa.Boolean(), nullable=False),
        sa.Column("cap_hits", sa.String(128), nullable=False),
    )
    op.create_table(
        "run_phases",
        _run_id(),
        sa.Column("phase_id", sa.String(64), primary_key=True),
        sa.Column("tier_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("task_category", sa.String(64), nullable=False),
        sa.Column("complexity", sa.String(16), nullable=False),
        sa.Column("builder_mode", sa.String(32), nullable=False),
        sa.Column("ci_profile", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("builder_attempts", sa.Integer(), nullable=False),
        sa.Column("auditor_attempts", sa.Integer(), nullable=False),
        sa.Column("max_builder_attempts", sa.Integer(), nullable=False),
        sa.Column("max_auditor_attempts", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("token_cap", sa.BigInteger(), nullable=False),
        sa.Column("ci_runs", sa.Integer(), nullable=False),
        sa.Column("last_commit", sa.String(64), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=False),
    )
    op.create_index("ix_run_phases_slice", "run_phases", ["task_category", "complexity"])
    op.create_table(
        "run_attempts",
        _run_id(),
        sa.Column("phase_id", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("actor", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("commit_sha", sa.String(64), nullable=True),
        sa.Column("ci_result", sa.String(16), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
    )
    op.create_table(
        "run_issues",
        _run_id(),
        sa.Column("issue_key", sa.Text(), primary_key=True),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("phase_id", sa.String(64), nullable=False),
        sa.Column("tier_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("commit_sha", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("run_issues")
    op.drop_table("run_attempts")
    op.drop_index("ix_run_phases_slice", table_name="run_phases")
    op.drop_table("run_phases")
    op.drop_table("run_tiers")
