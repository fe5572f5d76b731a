"""Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from services.registry.db import Database, migrate
from services.registry.models import NAME_SEARCH_INDEX, Base, in_schema_comparison


def test_migrations_match_the_models(database: Database) -> None:
    migrate(database.engine)  # a second run is a no-op
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": in_schema_comparison})
        assert compare_metadata(context, Base.metadata) == []


def test_postgresql_answers_the_name_search_from_a_trigram_index(database: Database) -> None:
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps its scan")
    with database.engine.connect() as connection:
        definition = connection.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :name AND schemaname = current_schema()"),
            {"name": NAME_SEARCH_INDEX},
        )
        # Scans off: the planner takes any index that can answer the pattern (on an empty table it
        # would rightly scan), so the plan shows whether this one can.
        connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            connection.scalars(
                text("EXPLAIN SELECT id FROM zq_task_scheduled_tasks WHERE name ILIKE :pattern"),
                {"pattern": "%report-0042%"},
            )
        )
    assert definition is not None and "gin_trgm_ops" in definition
    assert NAME_SEARCH_INDEX in plan
