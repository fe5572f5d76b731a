"""task tags (a JSON list of strings on each task); the audit log; who triggered / terminated a run;
the executors the leading scheduler reports

Revision ID: 0008
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.registry.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills existing rows with [] (and stays: dropping it would copy the table on
    # SQLite). The type matches models.JsonDict: JSONB on PostgreSQL, JSON elsewhere.
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column(
        "zq_task_scheduled_tasks",
        sa.Column("tags", json_type, nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column(
        "zq_task_scheduler_leader",
        sa.Column("executors", json_type, nullable=False, server_default=sa.text("'[]'")),
    )
    for column in ("triggered_by", "terminated_by"):
        op.add_column(
            "zq_task_task_executions",
            sa.Column(column, sa.String(length=64), nullable=False, server_default=""),
        )
    op.create_table(
        "zq_task_audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("target_name", sa.String(length=100), nullable=False),
        sa.Column("changes", json_type, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_zq_task_audit_log_actor"), "zq_task_audit_log", ["actor"], unique=False)
    op.create_index("ix_zq_audit_target", "zq_task_audit_log", ["target_type", "target_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_zq_audit_target", table_name="zq_task_audit_log")
    op.drop_index(op.f("ix_zq_task_audit_log_actor"), table_name="zq_task_audit_log")
    op.drop_table("zq_task_audit_log")
    for column in ("triggered_by", "terminated_by"):
        op.execute(f"ALTER TABLE zq_task_task_executions DROP COLUMN {column}")
    op.execute("ALTER TABLE zq_task_scheduler_leader DROP COLUMN executors")
    op.execute("ALTER TABLE zq_task_scheduled_tasks DROP COLUMN tags")
