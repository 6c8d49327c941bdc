"""When Autopack last posted a refusal comment on an issue (at most one per issue per window).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refusal_notices",
        sa.Column("repository", sa.String(255), primary_key=True),
        sa.Column("issue_number", sa.Integer(), primary_key=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("refusal_notices")
