"""Which operator profile made each attempt, and what its pre-push review spent (spend per
profile in the budget report).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_attempts") as batch:
        batch.add_column(sa.Column("profile", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("review_profile", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("review_tokens", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("run_attempts") as batch:
        batch.drop_column("review_tokens")
        batch.drop_column("review_profile")
        batch.drop_column("profile")
