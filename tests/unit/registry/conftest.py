"""Fixtures of the registry's unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.registry.db import Database, migrate
from tests.conftest import postgres_schema_url


@pytest.fixture(scope="module")
def pg() -> Iterator[Database]:
    """A migrated PostgreSQL schema of the module's own (the races of races.py are PostgreSQL's)."""
    with postgres_schema_url("zq_race") as url:
        db = Database(url)
        migrate(db.engine)
        yield db
        db.dispose()
