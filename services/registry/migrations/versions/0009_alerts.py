"""alert channels, rules, the delivery outbox and its attempts; history retention (per-task
retention days, daily aggregates of purged runs)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.registry.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC = services.registry.db.UTCDateTime
NO_ID_REUSE = {"sqlite_autoincrement": True}


def upgrade() -> None:
    op.create_table(
        "zq_task_alert_channels",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        **NO_ID_REUSE,
    )
    op.create_table(
        "zq_task_alert_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("events", JSON, nullable=False),
        sa.Column("channel_ids", JSON, nullable=False),
        sa.Column("slow_seconds", sa.Integer(), nullable=False),
        sa.Column("rate_limit_count", sa.Integer(), nullable=False),
        sa.Column("rate_limit_seconds", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["zq_task_scheduled_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        **NO_ID_REUSE,
    )
    op.create_index(op.f("ix_zq_task_alert_rules_task_id"), "zq_task_alert_rules", ["task_id"])
    op.create_table(
        "zq_task_alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("sent_at", UTC(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
        **NO_ID_REUSE,
    )
    op.create_index("ix_zq_alert_due", "zq_task_alert_deliveries", ["state", "next_attempt_at"])
    for column in ("rule_id", "channel_id", "sent_at"):
        op.create_index(op.f(f"ix_zq_task_alert_deliveries_{column}"), "zq_task_alert_deliveries", [column])
    op.create_table(
        "zq_task_alert_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("at", UTC(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["zq_task_alert_deliveries.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_zq_task_alert_attempts_delivery_id"), "zq_task_alert_attempts", ["delivery_id"])

    op.add_column("zq_task_scheduled_tasks", sa.Column("retention_days", sa.Integer(), nullable=True))
    # The purge looks up the few tasks with a retention of their own every pass: never a table scan.
    op.create_index(
        op.f("ix_zq_task_scheduled_tasks_retention_days"), "zq_task_scheduled_tasks", ["retention_days"]
    )
    op.create_table(
        "zq_task_execution_daily",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("timed_runs", sa.Integer(), nullable=False),
        sa.Column("duration_total", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["zq_task_scheduled_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id", "day", "status"),
    )
    # Purges look for old ended runs by their end.
    op.create_index("ix_zq_exec_end_time", "zq_task_task_executions", ["end_time"])


def downgrade() -> None:
    op.drop_index("ix_zq_exec_end_time", table_name="zq_task_task_executions")
    op.drop_table("zq_task_execution_daily")
    op.drop_index(op.f("ix_zq_task_scheduled_tasks_retention_days"), table_name="zq_task_scheduled_tasks")
    op.execute("ALTER TABLE zq_task_scheduled_tasks DROP COLUMN retention_days")
    op.drop_table("zq_task_alert_attempts")
    op.drop_table("zq_task_alert_deliveries")
    op.drop_table("zq_task_alert_rules")
    op.drop_table("zq_task_alert_channels")
