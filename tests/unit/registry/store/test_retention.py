"""History retention and sealing (both backends): old ended runs are purged in batches, per task as
configured; ended runs are sealed into the daily aggregates; and through both the statistics stay
what they were."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, text

from services.registry.db import Database, utcnow
from services.registry.models import ExecutionRow
from services.registry.store import retention, run_history
from services.registry.store import tasks as task_store


def task_with_history(db: Database, now: datetime, ages_in_days: list[float], **fields: object) -> int:
    """A task whose runs ended that many days ago: alternately success (2 s) and failed (4 s)."""
    with db.session() as session:
        task = task_store.create_task(
            session,
            {"name": f"kept_{uuid.uuid4().hex[:10]}", "task_type": "example_task", **fields},
            "admin",
            "UTC",
            now,
        )
        for index, age in enumerate(ages_in_days):
            ended = now - timedelta(days=age)
            success = index % 2 == 0
            session.add(
                ExecutionRow(
                    task_id=task.id,
                    status="success" if success else "failed",
                    trigger="schedule",
                    created_at=ended,
                    start_time=ended - timedelta(seconds=2 if success else 4),
                    end_time=ended,
                    duration_seconds=2.0 if success else 4.0,
                    result={},
                )
            )
        return task.id


def remaining(db: Database, task_id: int) -> int:
    with db.session() as session:
        return len(
            run_history.list_executions(session, run_history.ExecutionQuery(task_id=task_id, limit=1000))[0]
        )


def test_runs_older_than_the_retention_go_in_batches_and_the_statistics_stay(db: Database) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [40, 39, 38, 35, 31, 29, 1, 0.5])
    with db.session() as session:
        before = run_history.stats(session, task_id), run_history.stats(session, 0)
    assert retention.purge_pass(db, now, default_days=30, batch=2, batches=10) == 5
    assert remaining(db, task_id) == 3
    with db.session() as session:
        after = run_history.stats(session, task_id), run_history.stats(session, 0)
    assert after == before
    assert after[0].total == 8 and after[0].success == 4 and after[0].avg_duration == 3.0
    assert retention.purge_pass(db, now, default_days=30, batch=2, batches=10) == 0


def test_one_pass_purges_at_most_its_batches(db: Database) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [60] * 7)
    assert retention.purge_pass(db, now, default_days=30, batch=2, batches=2) == 4
    assert remaining(db, task_id) == 3


def test_a_task_keeps_its_history_as_long_as_it_says_and_zero_keeps_it_forever(db: Database) -> None:
    now = utcnow()
    forever = task_with_history(db, now, [400, 100], retention_days=0)
    short = task_with_history(db, now, [6, 4], retention_days=5)
    default = task_with_history(db, now, [31, 6])
    assert retention.purge_pass(db, now, default_days=30, batch=100, batches=1) == 2
    assert (remaining(db, forever), remaining(db, short), remaining(db, default)) == (2, 1, 1)


def test_a_global_retention_of_zero_purges_nothing(db: Database) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [1000, 500])
    assert retention.purge_pass(db, now, default_days=0, batch=100, batches=1) == 0
    assert remaining(db, task_id) == 2


def sealed_flags(db: Database, task_id: int) -> list[bool]:
    with db.session() as session:
        rows = session.query(ExecutionRow).filter_by(task_id=task_id).order_by(ExecutionRow.id)
        return [row.sealed for row in rows]


def test_sealing_moves_ended_runs_into_the_aggregates_in_batches_and_the_statistics_stay(
    db: Database,
) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [3, 2, 1, 0.5, 0.1])
    with db.session() as session:
        running = ExecutionRow(task_id=task_id, status="running", trigger="manual", start_time=now, result={})
        session.add(running)
    with db.session() as session:
        before = run_history.stats(session, task_id), run_history.stats(session, 0)
    # Other tests' runs share the database: seal everything, then look at this task's runs.
    while retention.seal_pass(db, batch=2, batches=1) == 2:
        pass
    assert sealed_flags(db, task_id) == [True] * 5 + [False]  # a running run stays unsealed
    with db.session() as session:
        after = run_history.stats(session, task_id), run_history.stats(session, 0)
    assert after == before
    assert (after[0].total, after[0].running, after[0].avg_duration) == (6, 1, 2.8)  # (3×2 s + 2×4 s) / 5


def test_statistics_count_each_run_once_when_a_seal_commits_while_they_are_read(db: Database) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [2, 1, 0.5])
    sealed_meanwhile: list[int] = []

    def seal_before_the_aggregates_are_read(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        # Just before statistics read the daily aggregates, a sealing pass commits elsewhere.
        if "zq_task_execution_daily" in statement and not sealed_meanwhile:
            sealed_meanwhile.append(0)
            while (done := retention.seal_pass(db)) > 0:
                sealed_meanwhile.append(done)

    event.listen(db.engine, "before_cursor_execute", seal_before_the_aggregates_are_read)
    try:
        with db.session() as session:
            counted = run_history.stats(session, task_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", seal_before_the_aggregates_are_read)

    assert sum(sealed_meanwhile) >= 3 and sealed_flags(db, task_id) == [True] * 3
    assert (counted.total, counted.success, counted.failed) == (3, 2, 1)
    assert counted.avg_duration == round((2 + 4 + 2) / 3, 3)


def test_a_run_added_later_with_an_old_end_counts_until_it_is_sealed_and_after(db: Database) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [2, 1])
    while retention.seal_pass(db):
        pass
    task_with_history(db, now, [])  # unrelated
    with db.session() as session:
        session.add(
            ExecutionRow(
                task_id=task_id,
                status="failed",
                trigger="schedule",
                created_at=now - timedelta(days=5),
                start_time=now - timedelta(days=5),
                end_time=now - timedelta(days=5),
                duration_seconds=6.0,
                result={},
            )
        )
    with db.session() as session:
        imported = run_history.stats(session, task_id)
    assert (imported.total, imported.failed, imported.avg_duration) == (3, 2, 4.0)
    assert retention.seal_pass(db) >= 1
    with db.session() as session:
        assert run_history.stats(session, task_id) == imported


def test_purging_sealed_and_unsealed_runs_counts_each_once(db: Database) -> None:
    now = utcnow()
    task_id = task_with_history(db, now, [40, 39, 38, 37])
    # The first two sealed (a batch takes the lowest ids, other tests' runs first), the others not.
    while retention.seal_pass(db, batch=1, batches=1) and not all(sealed_flags(db, task_id)[:2]):
        pass
    assert sealed_flags(db, task_id) == [True, True, False, False]
    with db.session() as session:
        before = run_history.stats(session, task_id)
    assert retention.purge_pass(db, now, default_days=30, batch=100, batches=10) >= 4
    assert remaining(db, task_id) == 0
    with db.session() as session:
        after = run_history.stats(session, task_id)
    # Every count and the average stay; the newest start is of the runs still there (none).
    assert replace(after, latest=None) == replace(before, latest=None) and after.total == 4


def test_after_a_catch_up_postgresql_learns_that_the_runs_are_sealed(db: Database) -> None:
    now = utcnow()
    task_with_history(db, now, [3, 2, 1])
    sealing = retention.Sealing(db)
    sealing.ANALYZE_AFTER_CATCH_UP = 3
    assert sealing.run() == 3
    if db.engine.dialect.name != "postgresql":
        return  # SQLite's planner needs no statistics for the partial index
    with db.session() as session:
        # What ANALYZE recorded: every run sealed, so the planner takes the partial index.
        values, freqs = session.execute(
            text(
                "SELECT most_common_vals::text, most_common_freqs FROM pg_stats "
                "WHERE schemaname = current_schema() AND tablename = :table AND attname = 'sealed'"
            ),
            {"table": ExecutionRow.__tablename__},
        ).one()
    assert (values, freqs) == ("{t}", [1.0])
