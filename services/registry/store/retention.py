"""History retention, and the daily aggregates that keep statistics fast and correct.

Sealing: the leader's housekeeping adds each ended run's count and duration to
`zq_task_execution_daily` (per task, UTC day of the run's start, status) and marks the run
`sealed`, in small batches (one short transaction each, the oldest runs first). Statistics then
read the aggregates plus the few unsealed runs (a partial index finds them), never the whole
history: at 1,000,000 runs a global /stats went from seconds to milliseconds. A run is sealed once:
its batch locks it (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite writes one at a time), so two
leaders' passes overlapping at a change of leader never count a run twice. A run inserted later
with an old end (an import) is simply unsealed until the next pass: nothing relies on time.

Retention: ended runs older than their task's retention are purged in small batches. A task's
`retention_days` overrides the global default (ZQ_RETENTION_DAYS, 30); 0 keeps its runs forever.
Only ended runs go (their end time is set: success, failed, terminated, skipped). One batch is one
short transaction: a purged run not sealed yet is added to the aggregates as it goes, so a
statistic never counts a run twice or not at all. Alert deliveries older than the global retention
go too.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, false, func, select, text, update
from sqlalchemy.orm import Session

from services.common.vocabulary import RAN_STATUSES
from services.registry.db import Database, upsert_into
from services.registry.models import AlertDeliveryRow, ExecutionDailyRow, ExecutionRow, TaskRow

DAILY = cast(Table, ExecutionDailyRow.__table__)
# A housekeeping pass (every 5 s) seals up to SEAL_BATCHES batches of SEAL_BATCH runs: 4,000 runs
# a second, above the sustained rate runs end at (~600/s), and a history of 1,000,000 unsealed runs
# (after the migration that added sealing) in about four minutes. One batch holds SQLite's write
# lock for a few tens of milliseconds.
SEAL_BATCH = 2000
SEAL_BATCHES = 10


# (id, task_id, start, status, duration, sealed) of a run, as sealing and purging read it.
COLUMNS = (
    ExecutionRow.id,
    ExecutionRow.task_id,
    func.coalesce(ExecutionRow.start_time, ExecutionRow.created_at),
    ExecutionRow.status,
    ExecutionRow.duration_seconds,
    ExecutionRow.sealed,
)


def _old_runs(session: Session, now: datetime, default_days: int, limit: int) -> list[Any]:
    """COLUMNS of up to `limit` runs past their retention, locked (a sealing pass skips them)."""
    columns = COLUMNS
    found: list[Any] = []
    if default_days > 0:
        found += session.execute(
            select(*columns)
            .join(TaskRow, TaskRow.id == ExecutionRow.task_id)
            .where(
                TaskRow.retention_days.is_(None), ExecutionRow.end_time < now - timedelta(days=default_days)
            )
            .limit(limit)
            .with_for_update(of=ExecutionRow, skip_locked=True)
        ).all()
    # Tasks with a retention of their own: few, each one query.
    overrides = session.execute(
        select(TaskRow.id, TaskRow.retention_days).where(TaskRow.retention_days > 0)
    ).all()
    for task_id, days in overrides:
        if len(found) >= limit:
            break
        found += session.execute(
            select(*columns)
            .where(ExecutionRow.task_id == task_id, ExecutionRow.end_time < now - timedelta(days=days or 0))
            .limit(limit - len(found))
            .with_for_update(skip_locked=True)
        ).all()
    return found


def purge_batch(session: Session, now: datetime, default_days: int, limit: int) -> int:
    """Purges at most `limit` runs past their retention; returns how many went."""
    rows = _old_runs(session, now, default_days, limit)
    if not rows:
        return 0
    _add_to_daily(session, [row for row in rows if not row[5]])  # the sealed ones are in already
    session.execute(delete(ExecutionRow).where(ExecutionRow.id.in_([row[0] for row in rows])))
    return len(rows)


def seal_batch(session: Session, limit: int) -> int:
    """Seals up to `limit` ended, unsealed runs, the oldest first; returns how many."""
    rows = session.execute(
        select(*COLUMNS)
        .where(ExecutionRow.sealed == false(), ExecutionRow.end_time.is_not(None))
        .order_by(ExecutionRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return 0
    _add_to_daily(session, rows)
    session.execute(
        update(ExecutionRow).where(ExecutionRow.id.in_([row[0] for row in rows])).values(sealed=True)
    )
    return len(rows)


def seal_pass(db: Database, batch: int = SEAL_BATCH, batches: int = SEAL_BATCHES) -> int:
    """Up to `batches` batches of `batch` runs, each its own short transaction; stops at the first
    short batch. Returns how many runs were sealed."""
    sealed = 0
    for _ in range(batches):
        with db.session() as session:
            done = seal_batch(session, batch)
        sealed += done
        if done < batch:
            break
    return sealed


class Sealing:
    """The leader's sealing passes, and what PostgreSQL's planner must learn from them.

    Statistics find the unsealed runs through a partial index only while the planner knows they are
    few; its estimate comes from the table's statistics, which autovacuum refreshes (when it is on:
    it is off on some installations) long after a catch-up sealed a million runs. Until then it
    scans the table. So after ANALYZE_AFTER runs sealed, or at the end of a catch-up of at least
    ANALYZE_AFTER_CATCH_UP, this process analyzes the table itself (a sample of rows; it blocks no
    reader or writer)."""

    ANALYZE_AFTER = 200_000
    ANALYZE_AFTER_CATCH_UP = 20_000

    def __init__(self, db: Database) -> None:
        self._db = db
        self._since_analyze = 0

    def run(self) -> int:
        sealed = seal_pass(self._db)
        self._since_analyze += sealed
        caught_up = sealed < SEAL_BATCH * SEAL_BATCHES
        if self._since_analyze >= self.ANALYZE_AFTER or (
            caught_up and self._since_analyze >= self.ANALYZE_AFTER_CATCH_UP
        ):
            self._since_analyze = 0
            if self._db.engine.dialect.name == "postgresql":
                with self._db.session() as session:
                    session.execute(text(f"ANALYZE {ExecutionRow.__tablename__}"))
        return sealed


def _add_to_daily(session: Session, rows: Sequence[Any]) -> None:
    """Adds runs (COLUMNS) to the daily aggregates."""
    if not rows:
        return
    totals: dict[tuple[int, str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for _, task_id, started, status, duration, _ in rows:
        # The start comes through coalesce(), untyped: SQLite gives it without a zone (it is UTC).
        moment = started if isinstance(started, datetime) else datetime.fromisoformat(str(started))
        day = (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y-%m-%d")
        entry = totals[(int(task_id), day, str(status))]
        entry[0] += 1
        if status in RAN_STATUSES and duration is not None:
            entry[1] += 1
            entry[2] += duration
    statement = _upsert_daily(session.get_bind().dialect.name)
    session.execute(
        statement,
        [
            {
                "task_id": task,
                "day": day,
                "status": status,
                "runs": int(runs),
                "timed_runs": int(timed),
                "duration_total": total,
            }
            for (task, day, status), (runs, timed, total) in totals.items()
        ],
    )


@functools.cache
def _upsert_daily(dialect: str) -> Any:
    insert = upsert_into(DAILY, dialect)
    return insert.on_conflict_do_update(
        index_elements=["task_id", "day", "status"],
        set_={
            "runs": DAILY.c.runs + insert.excluded.runs,
            "timed_runs": DAILY.c.timed_runs + insert.excluded.timed_runs,
            "duration_total": DAILY.c.duration_total + insert.excluded.duration_total,
        },
    )


def purge_deliveries(session: Session, now: datetime, default_days: int, limit: int) -> int:
    if default_days <= 0:
        return 0
    ids = list(
        session.scalars(
            select(AlertDeliveryRow.id)
            .where(AlertDeliveryRow.created_at < now - timedelta(days=default_days))
            .limit(limit)
        )
    )
    if ids:
        session.execute(delete(AlertDeliveryRow).where(AlertDeliveryRow.id.in_(ids)))
    return len(ids)


def purge_pass(db: Database, now: datetime, default_days: int, batch: int, batches: int) -> int:
    """Up to `batches` batches of `batch` runs, each its own short transaction (no long lock, no
    long wait for anyone); stops at the first short batch. Returns how many runs went."""
    purged = 0
    for _ in range(batches):
        with db.session() as session:
            done = purge_batch(session, now, default_days, batch)
        purged += done
        if done < batch:
            break
    with db.session() as session:
        purge_deliveries(session, now, default_days, batch)
    return purged
