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


def all_visible_pages(db: Database) -> int:
    """Pages of the tasks table its visibility map marks all-visible (as the last VACUUM set it)."""
    with db.session() as session:
        return int(
            session.execute(
                text("SELECT relallvisible FROM pg_class WHERE oid = to_regclass(:table)"),
                {"table": TaskRow.__tablename__},
            ).scalar_one()
        )


async def test_a_bulk_load_is_vacuumed_once_when_it_goes_quiet(db: Database) -> None:
    upkeep = BulkUpkeep(db, quiet_seconds=0.2, min_tasks=1000)
    for part in range(3):  # a seeding of three documents
        await asyncio.to_thread(add_tasks, db, 600, f"bulk{part}")
        upkeep.bulk_written(600)
    if db.is_sqlite:
        await asyncio.sleep(0.4)
        assert upkeep.passes == 0
        return
    assert upkeep.passes == 0  # not while the load goes on
    await asyncio.sleep(0.4)
    await upkeep.settled()
    assert upkeep.passes == 1
    assert all_visible_pages(db) > 0


async def test_a_few_tasks_are_left_to_autovacuum(db: Database) -> None:
    upkeep = BulkUpkeep(db, quiet_seconds=0.05, min_tasks=1000)
    await asyncio.to_thread(add_tasks, db, 10, "few")
    upkeep.bulk_written(10)
    await asyncio.sleep(0.2)
    await upkeep.settled()
    assert upkeep.passes == 0
