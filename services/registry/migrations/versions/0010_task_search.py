"""name search at 100,000 tasks: a trigram index on the task name (PostgreSQL, where pg_trgm may be
created)

The task list's name filter is a case-insensitive substring (``name ILIKE '%x%'``), which no B-tree
answers: without this index PostgreSQL reads every task row. A GIN index with pg_trgm's
``gin_trgm_ops`` answers it from the trigrams of the pattern. The extension is created when the
migrating user may (``CREATE EXTENSION IF NOT EXISTS pg_trgm``, in a savepoint); where it may not,
the index is left out with a warning and the search scans, as before (an administrator can create
the extension and run the migration step again: it creates the index once the extension exists).
SQLite keeps its scan (at 100,000 tasks a few tens of milliseconds, docs/scaling.md).

The index is not in the models (it is optional and PostgreSQL-only); ``models.OPTIONAL_INDEXES``
names it so that the schema comparison leaves it alone.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import logging

from alembic import op
from sqlalchemy import text

from services.registry.models import NAME_SEARCH_INDEX

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    create_name_search_index()


def create_name_search_index() -> None:
    """Idempotent: the extension if it can be had, then the index if the extension is there."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    find = "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
    schema = bind.execute(text(find)).scalar()
    # In `public` when there is one: an extension lives in one schema of the database, and one
    # created in this installation's schema would be dropped with it, indexes of others included.
    for create in (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    ):
        if schema is not None:
            break
        try:
            with bind.begin_nested():
                bind.execute(text(create))
        except Exception as exc:  # no right to create extensions, pg_trgm not installed, no public
            log.warning("cannot create pg_trgm (%s): %s", create, exc)
        schema = bind.execute(text(find)).scalar()
    if schema is None:
        log.warning("pg_trgm not available: the task name search scans the table")
        return
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {NAME_SEARCH_INDEX} ON zq_task_scheduled_tasks "
        f'USING gin (name "{schema}".gin_trgm_ops)'
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP INDEX IF EXISTS {NAME_SEARCH_INDEX}")
