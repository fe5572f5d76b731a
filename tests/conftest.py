"""Fixtures shared by every tier: a migrated database on each backend we support."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, delete, text

from services.registry.db import Database, migrate, normalize_url
from services.registry.models import (
    AlertAttemptRow,
    AlertChannelRow,
    AlertDeliveryRow,
    AlertRuleRow,
    AuditRow,
    ExecutionDailyRow,
    ExecutionRow,
    LoginFailureRow,
    SchedulerLeaderRow,
    SessionRow,
    TaskRow,
    UserRow,
)

# CI and the developers' machines run PostgreSQL here; a missing server is a failure, not a skip.
PG_URL = os.environ.get("ZQ_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


@contextmanager
def postgres_schema_url(prefix: str) -> Iterator[str]:
    """A throwaway schema in the test database, dropped afterwards; yields a URL that uses it."""
    engine = create_engine(normalize_url(PG_URL))
    schema = f"{prefix}_{secrets.token_hex(4)}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def database_url(backend: str, tmp_dir: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir}/registry.db"
    else:
        with postgres_schema_url("zq_test") as url:
            yield url


@pytest.fixture(scope="module", params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    with database_url(request.param, str(tmp_path_factory.mktemp("db"))) as url:
        db = Database(url)
        migrate(db.engine)
        yield db
        db.dispose()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The module's database, emptied after each test."""
    yield database
    with database.session() as session:
        for model in (
            AlertAttemptRow,
            AlertDeliveryRow,
            AlertRuleRow,
            AlertChannelRow,
            ExecutionDailyRow,
            ExecutionRow,
            TaskRow,
            SessionRow,
            UserRow,
            SchedulerLeaderRow,
            LoginFailureRow,
            AuditRow,
        ):
            session.execute(delete(model))
