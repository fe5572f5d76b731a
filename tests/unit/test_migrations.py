"""Alembic migrations build exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.registry.db import Database, migrate
from services.registry.models import Base


def test_migrations_match_the_models(database: Database) -> None:
    migrate(database.engine)  # a second run is a no-op
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
