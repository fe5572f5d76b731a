"""services.registry.bulk_upkeep: one VACUUM (ANALYZE) of the tasks table once a bulk load goes quiet
(PostgreSQL), none for small writes or on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from services.registry.bulk_upkeep import BulkUpkeep
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store import task_batches


def add_tasks(db: Database, count: int, prefix: str) -> None:
    items = [
        {"name": f"{prefix}-{n}", "task_type": "example_task", "interval_seconds": 60} for n in range(count)
    ]
    with db.session() as session:
        task_batches.create_tasks(session, items, "admin", "UTC", datetime.now(UTC))


def counted_rows(db: Database) -> float:
    """The tasks table's row count as VACUUM and ANALYZE last recorded it (-1: never)."""
    with db.session() as session:
        return float(
            session.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)"),
                {"table": TaskRow.__tablename__},
            ).scalar_one()
        )


async def test_a_bulk_load_is_vacuumed_once_when_it_goes_quiet(db: Database) -> None:
    upkeep = BulkUpkeep(db, quiet_seconds=0.2, min_tasks=1000)
    for part in range(3):
        await asyncio.to_thread(add_tasks, db, 600, f"bulk{part}")
    for _ in range(3):  # a seeding of three documents, each reported within the quiet period
        upkeep.bulk_written(600)
    if db.is_sqlite:
        await asyncio.sleep(0.4)
        assert upkeep.passes == 0
        return
    assert upkeep.passes == 0  # not while the load goes on
    await asyncio.sleep(0.4)
    await upkeep.settled()
    assert upkeep.passes == 1
    # Not the visibility map: another test's open transaction anywhere in the cluster would keep
    # VACUUM from marking these new rows' pages all-visible.
    assert counted_rows(db) == 1800


async def test_a_few_tasks_are_left_to_autovacuum(db: Database) -> None:
    upkeep = BulkUpkeep(db, quiet_seconds=0.05, min_tasks=1000)
    await asyncio.to_thread(add_tasks, db, 10, "few")
    upkeep.bulk_written(10)
    await asyncio.sleep(0.2)
    await upkeep.settled()
    assert upkeep.passes == 0
