"""services.registry.store.backfills on SQLite and PostgreSQL: a backfill's runs are created in
order, never more than max_parallel live, each planned time once however often it is advanced, and
it finishes with its runs; cancelling ends its live runs and starts nothing more."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidArgument, Reason
from services.common.vocabulary import ExecutionStatus as Status
from services.registry.db import Database
from services.registry.models import ExecutionRow
from services.registry.store import backfills, run_ends, tasks

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def weekday_task(db: Database, name: str) -> int:
    fields = {
        "name": name,
        "task_type": "common_task",
        "cron_expression": "0 18 * * 1-5",
        "timezone": "Asia/Shanghai",
        "enabled": False,
        "max_retries": 0,
        "config": {"command": "true"},
    }
    with db.session() as session:
        return tasks.create_task(session, fields, "admin", "UTC", NOW).id


def start(db: Database, task_id: int, first: str, last: str, max_parallel: int) -> int:
    wanted = backfills.BackfillRequest(task_id, first, last, max_parallel, False, {})
    with db.session() as session:
        return backfills.create_backfill(session, wanted, "op", NOW, privileged=False).id


def advance(db: Database) -> list[ExecutionRow]:
    with db.session(serialized=True) as session:
        return backfills.advance_backfills(session, NOW)


def end(db: Database, run: ExecutionRow, status: str) -> None:
    with db.session() as session:
        run_ends.end_runs(session, [run_ends.RunEnd(run.id, run.attempt, status, {}, "")], NOW)


def test_runs_are_created_in_order_at_most_max_parallel_live_and_each_planned_time_once(db: Database) -> None:
    task_id = weekday_task(db, "bf-order")
    backfill_id = start(db, task_id, "2024-01-01", "2024-01-07", 2)  # 5 weekdays
    first = advance(db)
    assert [run.logical_date for run in first] == ["2024-01-01", "2024-01-02"]
    assert advance(db) == []  # two live: no room, and nothing twice
    end(db, first[0], Status.SUCCESS)
    assert [run.logical_date for run in advance(db)] == ["2024-01-03"]
    with db.session() as session:
        progress = backfills.progress_of(session, [backfill_id])[backfill_id]
    assert (progress.created, progress.running, progress.succeeded) == (3, 2, 1)


def test_a_backfill_finishes_with_its_runs_failed_when_one_failed(db: Database) -> None:
    task_id = weekday_task(db, "bf-finish")
    backfill_id = start(db, task_id, "2024-01-01", "2024-01-02", 5)
    one, two = advance(db)
    end(db, one, Status.SUCCESS)
    end(db, two, Status.FAILED)
    assert advance(db) == []
    with db.session() as session:
        assert backfills.get_backfill(session, backfill_id).status == "failed"


def test_a_cancelled_backfill_ends_its_live_runs_and_creates_no_more(db: Database) -> None:
    task_id = weekday_task(db, "bf-cancel")
    backfill_id = start(db, task_id, "2024-01-01", "2024-01-05", 1)
    (run,) = advance(db)
    with db.session() as session:
        row, stopped = backfills.cancel_backfill(session, backfill_id, NOW)
        assert row.status == "cancelled" and [(r.id, r.status) for r, _ in stopped] == [
            (run.id, "terminated")
        ]
    assert advance(db) == []


def test_a_range_with_more_than_ten_thousand_runs_is_refused(db: Database) -> None:
    with db.session() as session:
        task_id = tasks.create_task(
            session,
            {
                "name": "bf-many",
                "task_type": "common_task",
                "interval_seconds": 60,
                "config": {"command": "true"},
            },
            "admin",
            "UTC",
            NOW,
        ).id
    with pytest.raises(InvalidArgument) as refused:
        start(db, task_id, "2024-01-01", "2024-01-31", 1)
    assert refused.value.reason == Reason.BACKFILL_INVALID
