"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 23:29:34.419941
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import services.registry.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zq_task_scheduled_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("task_type", sa.String(length=32), nullable=False),
        sa.Column("cron_expression", sa.String(length=200), nullable=True),
        sa.Column("interval_seconds", sa.Integer(), nullable=True),
        sa.Column("run_at", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("retry_interval", sa.Integer(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("concurrency_policy", sa.String(length=16), nullable=False),
        sa.Column("misfire_policy", sa.String(length=16), nullable=False),
        sa.Column("misfire_grace_seconds", sa.Integer(), nullable=False),
        sa.Column("schedule_anchor", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("zq_task_scheduled_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_zq_task_scheduled_tasks_enabled"), ["enabled"], unique=False)
        batch_op.create_index(batch_op.f("ix_zq_task_scheduled_tasks_task_type"), ["task_type"], unique=False)

    op.create_table(
        "zq_task_users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "zq_task_task_executions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("parent_execution_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("scheduled_time", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("dedup_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("start_time", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("end_time", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column(
            "result",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False),
        sa.Column("executor", sa.String(length=200), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("lease_expires_at", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("terminate_requested", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["zq_task_scheduled_tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("zq_task_task_executions", schema=None) as batch_op:
        batch_op.create_index("ix_zq_exec_status_id", ["status", "id"], unique=False)
        batch_op.create_index("ix_zq_exec_task_id_id", ["task_id", "id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_zq_task_task_executions_parent_execution_id"),
            ["parent_execution_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_zq_task_task_executions_start_time"), ["start_time"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("zq_task_task_executions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_zq_task_task_executions_start_time"))
        batch_op.drop_index(batch_op.f("ix_zq_task_task_executions_parent_execution_id"))
        batch_op.drop_index("ix_zq_exec_task_id_id")
        batch_op.drop_index("ix_zq_exec_status_id")

    op.drop_table("zq_task_task_executions")
    op.drop_table("zq_task_users")
    with op.batch_alter_table("zq_task_scheduled_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_zq_task_scheduled_tasks_task_type"))
        batch_op.drop_index(batch_op.f("ix_zq_task_scheduled_tasks_enabled"))

    op.drop_table("zq_task_scheduled_tasks")
