"""execution logs: append-only chunks keyed by execution and byte offset

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.registry.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zq_task_execution_logs",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["zq_task_task_executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id", "offset"),
    )


def downgrade() -> None:
    op.drop_table("zq_task_execution_logs")
