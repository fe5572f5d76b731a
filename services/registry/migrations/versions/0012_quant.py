"""a note on each run, shown in the history (a fire beyond its calendar's data: 日历数据未覆盖)

Revision ID: 0012
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

EXECUTIONS = "zq_task_task_executions"


def upgrade() -> None:
    op.add_column(EXECUTIONS, sa.Column("note", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.execute(f"ALTER TABLE {EXECUTIONS} DROP COLUMN note")
