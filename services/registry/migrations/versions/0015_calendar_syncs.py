"""library calendars' sessions as data_sync_trading_calendar runs fetched them

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.registry.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "zq_task_calendar_syncs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("calendar", sa.String(64), nullable=False, unique=True),
        sa.Column("ranges", json, nullable=False),
        sa.Column("closed_dates", json, nullable=False),
        sa.Column("opened_dates", json, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", services.registry.db.UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("zq_task_calendar_syncs")
