"""statistics at 1,000,000 runs: ended runs are sealed into the daily aggregates

`sealed` marks a run whose counts and duration the daily aggregates (zq_task_execution_daily)
already hold (store.retention); statistics add the aggregates to the unsealed runs only, which a
partial index finds without reading the history. Existing runs start unsealed: the leader's
housekeeping seals them in small batches.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

EXECUTIONS = "zq_task_task_executions"
INDEX = "ix_zq_exec_unsealed"


def upgrade() -> None:
    # A constant default: PostgreSQL (11+) and SQLite add the column without rewriting the table.
    op.add_column(EXECUTIONS, sa.Column("sealed", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index(
        INDEX,
        EXECUTIONS,
        ["id"],
        postgresql_where=sa.text("sealed = false"),
        sqlite_where=sa.text("sealed = 0"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=EXECUTIONS)
    op.execute(f"ALTER TABLE {EXECUTIONS} DROP COLUMN sealed")
