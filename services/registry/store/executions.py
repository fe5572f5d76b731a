"""A run's life in the database up to its end: idempotent creation, claim, progress and requeue.

Hot paths (create, claim) are single Core statements. The one way to end runs, and the retry a
failure earns, is `run_ends`; what users start or stop by hand is in `manual_runs`; reading runs
back (history, statistics) in `run_history`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from services.common.vocabulary import (
    LIVE_STATUSES,
    Trigger,
    word_of,
)
from services.common.vocabulary import ExecutionStatus as Status
from services.registry.db import among, draw_ids, upsert_into
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store.tasks import task_not_found

LOST_EXECUTOR = "执行器失联"
TERMINATED_BY_USER = "用户终止了任务"


def execution_not_found(execution_id: int) -> NotFound:
    return NotFound(f"执行记录 {execution_id} 不存在", reason=Reason.EXECUTION_NOT_FOUND)


def get_execution(session: Session, execution_id: int, task_id: int = 0) -> ExecutionRow:
    row = session.get(ExecutionRow, execution_id)
    if row is None or (task_id and row.task_id != task_id):
        if task_id and session.get(TaskRow, task_id) is None:
            raise task_not_found(task_id)
        raise execution_not_found(execution_id)
    return row


@dataclass(frozen=True, slots=True)
class NewExecution:
    task_id: int
    trigger: str
    scheduled_time: datetime | None
    status: str = Status.PENDING
    error_message: str = ""
    parent_execution_id: int = 0
    retry_count: int = 0
    dedup_key: str = ""
    # YYYY-MM-DD; "" = none known (a caller that knows the task's zone always sets it).
    logical_date: str = ""
    params: Mapping[str, Any] | None = None
    backfill_id: int = 0
    rerun_of_id: int = 0
    # The user who started it by hand ("" for the scheduler's runs).
    triggered_by: str = ""
    # The W3C traceparent the run's spans continue: the trigger's, or a retry's failed run's ("" =
    # none: tracing off, or a scheduled fire).
    traceparent: str = ""
    # Execution.note ("" = none).
    note: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """Who runs a run, and until when its lease lasts without a report."""

    executor: str
    lease_until: datetime
    # When it was claimed; None: when the run was created (a fire's run is created claimed).
    started_at: datetime | None = None


def create_execution(
    session: Session, new: NewExecution, now: datetime, start: Claim | None = None
) -> tuple[ExecutionRow, bool]:
    """Inserts the run unless one with the same dedup key exists; returns (row, created).

    With `start`, a pending run is inserted already claimed (as `claim_execution` would)."""
    return insert_execution(session, execution_values(new, now, start))


def insert_execution(session: Session, values: dict[str, Any]) -> tuple[ExecutionRow, bool]:
    """`create_execution` of a row from `execution_values`."""
    statement = _insert_execution(session.get_bind().dialect.name, values["dedup_key"] is not None)
    # One statement on the hot path (Core, compiled once): the foreign key checks the task exists.
    try:
        inserted = session.execute(statement, values).first()
    except IntegrityError as exc:
        raise task_not_found(values["task_id"]) from exc
    if inserted is None:
        return existing_execution(session, values["dedup_key"]), False
    return detached(inserted), True


def create_executions(session: Session, rows: list[dict[str, Any]]) -> dict[str, ExecutionRow]:
    """Inserts many runs in one statement (values from `execution_values`, each with a dedup key);
    returns the inserted rows by dedup key: a key missing there already had its run. A task that
    does not exist fails the whole statement (IntegrityError)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return _create_executions_postgresql(session, rows)
    statement = _insert_execution(dialect, True)
    return {row.dedup_key: detached(row) for row in session.execute(statement, rows)}


def _create_executions_postgresql(session: Session, rows: list[dict[str, Any]]) -> dict[str, ExecutionRow]:
    """PostgreSQL: the ids drawn first, one pipelined executemany of a one-row INSERT ... ON
    CONFLICT DO NOTHING, and the rows that went in read back by id. A multi-row INSERT ... RETURNING
    has a text psycopg parses in Python on every execution (it caches short ones only): about 150 µs
    of CPU per run, three times this."""
    ids = draw_ids(session, EXECUTIONS, len(rows))
    session.execute(
        _insert_execution("postgresql", True, returning=False),
        [{**values, "id": execution_id} for values, execution_id in zip(rows, ids, strict=True)],
    )
    inserted = session.execute(select(EXECUTIONS).where(among(EXECUTIONS.c.id, ids, "postgresql")))
    return {row.dedup_key: detached(row) for row in inserted}


def insert_execution_unless_live(session: Session, values: dict[str, Any]) -> ExecutionRow | None:
    """`insert_execution` of a run (no dedup key) unless a run of its task is pending or running,
    decided in the same statement (INSERT ... SELECT ... WHERE NOT EXISTS): None then. The caller
    holds the task's row lock (PostgreSQL) or SQLite's write lock, so no other insert races it."""
    statement = _insert_unless_live(session.get_bind().dialect.name, tuple(values))
    try:
        inserted = session.execute(statement, values).first()
    except IntegrityError as exc:
        raise task_not_found(values["task_id"]) from exc
    return None if inserted is None else detached(inserted)


@functools.cache
def _insert_unless_live(dialect: str, keys: tuple[str, ...]) -> Any:
    live = exists().where(
        EXECUTIONS.c.task_id == bindparam("task_id"), EXECUTIONS.c.status.in_(LIVE_STATUSES)
    )
    row = select(*(bindparam(key, type_=EXECUTIONS.c[key].type) for key in keys)).where(~live)
    return upsert_into(EXECUTIONS, dialect).from_select(list(keys), row).returning(*EXECUTIONS.c)


def existing_execution(session: Session, dedup_key: str) -> ExecutionRow:
    existing = session.scalar(select(ExecutionRow).where(ExecutionRow.dedup_key == dedup_key))
    assert existing is not None
    return existing


def execution_values(new: NewExecution, now: datetime, start: Claim | None = None) -> dict[str, Any]:
    """The row of a new run; raises InvalidArgument for a request no run can be made of."""
    if word_of(Trigger, new.trigger) is None:
        raise InvalidArgument(f"无效的触发方式: {new.trigger}", reason=Reason.RUN_UPDATE_INVALID)
    if new.status not in (Status.PENDING, Status.SKIPPED):
        raise InvalidArgument(
            f"新执行记录的状态只能是 pending 或 skipped，而不是 {new.status}",
            reason=Reason.RUN_UPDATE_INVALID,
        )
    if start is not None and new.status != Status.PENDING:
        raise InvalidArgument(
            "只有待执行（pending）的执行记录可以在创建时开始", reason=Reason.RUN_UPDATE_INVALID
        )
    values: dict[str, Any] = {
        **_UNSET_ON_CREATE,
        "task_id": new.task_id,
        "parent_execution_id": new.parent_execution_id or None,
        "status": new.status,
        "trigger": new.trigger,
        "scheduled_time": new.scheduled_time or now,
        "dedup_key": new.dedup_key or None,
        "created_at": now,
        "result": {},
        "error_message": new.error_message or None,
        "retry_count": new.retry_count,
        "attempt": 0,
        "terminate_requested": False,
        "logical_date": new.logical_date or None,
        "params": dict(new.params) if new.params else None,
        "backfill_id": new.backfill_id or None,
        "rerun_of_id": new.rerun_of_id or None,
        "triggered_by": new.triggered_by,
        "traceparent": new.traceparent or None,
        "note": new.note[:NOTE_MAX] or None,
    }
    if new.status == Status.SKIPPED:
        values["end_time"] = now
    if start is not None:
        values.update(
            status=Status.RUNNING,
            start_time=start.started_at or now,
            executor=start.executor,
            attempt=1,
            lease_expires_at=start.lease_until,
        )
    return values


EXECUTIONS = cast(Table, ExecutionRow.__table__)
# The note column's size.
NOTE_MAX = 200
# Every column an insert does not always set, so every insert has the same columns (one statement).
_UNSET_ON_CREATE: dict[str, Any] = {
    "start_time": None,
    "end_time": None,
    "duration_seconds": None,
    "executor": None,
    "lease_expires_at": None,
}


@functools.cache
def _insert_execution(dialect: str, deduplicated: bool, returning: bool = True) -> Any:
    insert = upsert_into(EXECUTIONS, dialect)
    if deduplicated:
        insert = insert.on_conflict_do_nothing(index_elements=["dedup_key"])
    return insert.returning(*EXECUTIONS.c) if returning else insert


_new_execution_row = ExecutionRow.__mapper__.class_manager.new_instance


def detached(row: Any) -> ExecutionRow:
    """An ExecutionRow of a Core result row (not in the session: the hot path skips the ORM). Filled
    the way the ORM's loader fills an instance (straight into its __dict__): constructing it through
    `__init__` fires an attribute event per column, a tenth of the registry's time per run."""
    detached: ExecutionRow = _new_execution_row()
    detached.__dict__.update(row._mapping)
    return detached


def claim_executions(
    session: Session, execution_ids: Sequence[int], claim: Claim, now: datetime, adopt: bool = False
) -> list[ExecutionRow | FailedPrecondition | NotFound]:
    """pending -> running on `claim`'s executor, for many runs in one statement and atomically: of
    two claimers of a run exactly one wins (a run named twice is claimed once). With `adopt`, running
    runs are taken over instead (their start time and progress are kept). One answer per id, in
    order: the claimed row, or why the run could not be claimed."""
    ids = list(dict.fromkeys(execution_ids))
    if adopt:
        expected = Status.RUNNING
        values: dict[str, Any] = {}
    else:
        expected = Status.PENDING
        values = {"status": Status.RUNNING, "start_time": now, "result": {}}
    dialect = session.get_bind().dialect.name
    statement = (
        update(EXECUTIONS)
        .where(among(EXECUTIONS.c.id, ids, dialect), EXECUTIONS.c.status == expected)
        .values(
            **values,
            executor=claim.executor,
            attempt=EXECUTIONS.c.attempt + 1,
            lease_expires_at=claim.lease_until,
        )
        .returning(*EXECUTIONS.c)
    )
    claimed: dict[int, ExecutionRow | None] = {row.id: detached(row) for row in session.execute(statement)}
    missing = [execution_id for execution_id in ids if execution_id not in claimed]
    status_of: dict[int, str] = {}
    if missing:
        found = select(EXECUTIONS.c.id, EXECUTIONS.c.status).where(among(EXECUTIONS.c.id, missing, dialect))
        status_of = {row.id: row.status for row in session.execute(found)}
    answers: list[ExecutionRow | FailedPrecondition | NotFound] = []
    for execution_id in execution_ids:
        row = claimed.get(execution_id)
        if row is not None:
            answers.append(row)
            claimed[execution_id] = None  # named again later in the batch: claimed already
            continue
        status = status_of.get(execution_id, Status.RUNNING if execution_id in claimed else None)
        if status is None:
            answers.append(execution_not_found(execution_id))
        else:
            answers.append(
                FailedPrecondition(
                    f"执行记录 {execution_id} 当前状态为 {status}，不能开始执行",
                    reason=Reason.RUN_NOT_PENDING,
                )
            )
    return answers


def claim_execution(
    session: Session, execution_id: int, claim: Claim, now: datetime, adopt: bool = False
) -> ExecutionRow:
    """One run of `claim_executions`; raises why it could not be claimed."""
    (answer,) = claim_executions(session, [execution_id], claim, now, adopt)
    if isinstance(answer, FailedPrecondition | NotFound):
        raise answer
    return answer


def requeue_execution(session: Session, execution_id: int, attempt: int) -> ExecutionRow:
    """running -> pending (the executor had no room); returns the row."""
    moved = session.execute(
        update(ExecutionRow)
        .where(
            ExecutionRow.id == execution_id,
            ExecutionRow.status == Status.RUNNING,
            ExecutionRow.attempt == attempt,
        )
        .values(status=Status.PENDING, start_time=None, executor=None, lease_expires_at=None)
        .returning(ExecutionRow.id)
    ).scalar()
    if moved is None:
        raise FailedPrecondition(
            f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效", reason=Reason.ATTEMPT_STALE
        )
    return get_execution(session, execution_id)


def write_progress(session: Session, results: Mapping[int, tuple[int, dict[str, Any]]]) -> None:
    """Batched progress flush: {execution_id: (attempt, result)}; stale attempts are ignored."""
    for execution_id, (attempt, result) in results.items():
        session.execute(
            update(ExecutionRow)
            .where(
                ExecutionRow.id == execution_id,
                ExecutionRow.status == Status.RUNNING,
                ExecutionRow.attempt == attempt,
            )
            .values(result=result)
        )
