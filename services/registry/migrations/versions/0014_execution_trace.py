"""the trace a manual run belongs to (W3C traceparent of its trigger), shown as its trace id

Revision ID: 0014
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None

EXECUTIONS = "zq_task_task_executions"


def upgrade() -> None:
    op.add_column(EXECUTIONS, sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute(f"ALTER TABLE {EXECUTIONS} DROP COLUMN traceparent")
