"""Database metrics: each statement is timed by its kind, and the pool's connections are exported."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import text

from services.registry.db import Database
from services.registry.db_metrics import operation_of


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_statement_is_labelled_by_its_leading_keyword() -> None:
    assert operation_of("  SELECT 1") == "select"
    assert operation_of("insert into t values (1)") == "insert"
    assert operation_of("UPDATE t SET a = 1") == "update"
    assert operation_of("delete from t") == "delete"
    assert operation_of("PRAGMA journal_mode=WAL") == "other"
    assert operation_of("WITH x AS (SELECT 1) SELECT * FROM x") == "other"


def test_every_statement_is_timed_and_the_pool_is_exported(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'metrics.db'}")
    try:
        selects = sample("zq_db_query_duration_seconds_count", operation="select")
        with database.session() as session:
            session.execute(text("SELECT 1"))
            session.execute(text("SELECT 2"))
            assert sample("zq_db_pool_connections", state="in_use") == 1
        assert sample("zq_db_query_duration_seconds_count", operation="select") == selects + 2
        assert sample("zq_db_pool_connections", state="in_use") == 0
        assert sample("zq_db_pool_connections", state="idle") == 1
    finally:
        database.dispose()
