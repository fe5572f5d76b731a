"""run parameters (logical date, params), backfills, and reruns linked to the run they rerun

Revision ID: 0007
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.registry.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
EXECUTIONS = "zq_task_task_executions"


def upgrade() -> None:
    op.add_column(EXECUTIONS, sa.Column("logical_date", sa.String(length=10), nullable=True))
    op.add_column(EXECUTIONS, sa.Column("params", JSON, nullable=True))
    op.add_column(EXECUTIONS, sa.Column("backfill_id", sa.Integer(), nullable=True))
    op.add_column(EXECUTIONS, sa.Column("rerun_of_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_zq_task_task_executions_backfill_id"), EXECUTIONS, ["backfill_id"])
    op.create_index(op.f("ix_zq_task_task_executions_rerun_of_id"), EXECUTIONS, ["rerun_of_id"])
    op.create_table(
        "zq_task_backfills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.String(length=10), nullable=False),
        sa.Column("end_date", sa.String(length=10), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("rerun_succeeded", sa.Boolean(), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("planned", JSON, nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["zq_task_scheduled_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_zq_task_backfills_task_id"), "zq_task_backfills", ["task_id"])
    op.create_index(op.f("ix_zq_task_backfills_status"), "zq_task_backfills", ["status"])


def downgrade() -> None:
    op.drop_table("zq_task_backfills")
    op.drop_index(op.f("ix_zq_task_task_executions_rerun_of_id"), table_name=EXECUTIONS)
    op.drop_index(op.f("ix_zq_task_task_executions_backfill_id"), table_name=EXECUTIONS)
    for column in ("rerun_of_id", "backfill_id", "params", "logical_date"):
        op.execute(f"ALTER TABLE {EXECUTIONS} DROP COLUMN {column}")
