"""the trace a backfill's runs belong to (W3C traceparent of the call that asked for it)

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BACKFILLS = "zq_task_backfills"


def upgrade() -> None:
    op.add_column(BACKFILLS, sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute(f"ALTER TABLE {BACKFILLS} DROP COLUMN traceparent")
