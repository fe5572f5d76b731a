"""when the scheduler leader's term was taken and last renewed (the lease reaper reaps only runs that
went silent under a leader known to be alive: runs/reaper.py)

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.registry.db

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LEADER = "zq_task_scheduler_leader"


def upgrade() -> None:
    op.add_column(LEADER, sa.Column("taken_at", services.registry.db.UTCDateTime(), nullable=True))
    op.add_column(LEADER, sa.Column("renewed_at", services.registry.db.UTCDateTime(), nullable=True))


def downgrade() -> None:
    op.execute(f"ALTER TABLE {LEADER} DROP COLUMN renewed_at")
    op.execute(f"ALTER TABLE {LEADER} DROP COLUMN taken_at")
