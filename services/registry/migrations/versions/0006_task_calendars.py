"""tasks: trading calendar, calendar shift and holiday policy; custom calendars

Revision ID: 0006
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.registry.db

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

TASKS = "zq_task_scheduled_tasks"


def upgrade() -> None:
    # Server defaults fill existing rows (no calendar, no shift, holidays silent).
    op.add_column(TASKS, sa.Column("calendar", sa.String(64), nullable=True))
    op.add_column(TASKS, sa.Column("calendar_shift", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(
        TASKS, sa.Column("calendar_holidays", sa.String(16), nullable=False, server_default="silent")
    )
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "zq_task_calendars",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("base", sa.String(64), nullable=False),
        sa.Column("added_dates", json, nullable=False),
        sa.Column("removed_dates", json, nullable=False),
        sa.Column("data_end", sa.String(10), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("zq_task_calendars")
    for column in ("calendar_holidays", "calendar_shift", "calendar"):
        op.execute(f"ALTER TABLE {TASKS} DROP COLUMN {column}")
