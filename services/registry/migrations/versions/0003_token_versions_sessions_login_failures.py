"""token versions, sessions (refresh-token families) and login failures per username + address

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import services.registry.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server default fills existing rows (and stays: dropping it would copy the table on SQLite).
    op.add_column(
        "zq_task_users", sa.Column("token_version", sa.Integer(), nullable=False, server_default="0")
    )
    # The per-username lockout (zq_task_users.failed_attempts, locked_until) is replaced by the per
    # username + address one below. Its columns stay while the previous release may still run on
    # this schema (docs/migrations.md): a later revision contracts them.
    op.create_table(
        "zq_task_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("refresh_jti", sa.String(length=32), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["zq_task_users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_zq_task_sessions_user_id"), "zq_task_sessions", ["user_id"], unique=False)
    op.create_table(
        "zq_task_login_failures",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", services.registry.db.UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", services.registry.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("username", "address"),
    )
    op.create_index(
        op.f("ix_zq_task_login_failures_last_failure_at"),
        "zq_task_login_failures",
        ["last_failure_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_zq_task_login_failures_last_failure_at"), table_name="zq_task_login_failures")
    op.drop_table("zq_task_login_failures")
    op.drop_index(op.f("ix_zq_task_sessions_user_id"), table_name="zq_task_sessions")
    op.drop_table("zq_task_sessions")
    op.execute("ALTER TABLE zq_task_users DROP COLUMN token_version")
