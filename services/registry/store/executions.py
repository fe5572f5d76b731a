"""Executions: idempotent creation, claim, finish with retries, history and statistics.

Hot paths (create, claim, finish) are single Core statements; statistics are computed in SQL.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.errors import FailedPrecondition, InvalidArgument, NotFound
from services.registry.models import (
    ACTIVE_STATUSES,
    EXECUTION_STATUSES,
    TRIGGERS,
    ExecutionRow,
    TaskRow,
)
from services.registry.store.tasks import get_task, task_not_found

LOST_EXECUTOR = "执行器失联"


def execution_not_found(execution_id: int) -> NotFound:
    return NotFound(f"执行记录 {execution_id} 不存在")


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
    status: str = "pending"
    error_message: str = ""
    parent_execution_id: int = 0
    retry_count: int = 0
    dedup_key: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """Who runs a run, and until when its lease lasts without a report."""

    executor: str
    lease_until: datetime


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
    return _detached(inserted), True


def create_executions(session: Session, rows: list[dict[str, Any]]) -> dict[str, ExecutionRow]:
    """Inserts many runs in one statement (values from `execution_values`, each with a dedup key);
    returns the inserted rows by dedup key: a key missing there already had its run. A task that
    does not exist fails the whole statement (IntegrityError)."""
    statement = _insert_execution(session.get_bind().dialect.name, True)
    return {row.dedup_key: _detached(row) for row in session.execute(statement, rows)}


def existing_execution(session: Session, dedup_key: str) -> ExecutionRow:
    existing = session.scalar(select(ExecutionRow).where(ExecutionRow.dedup_key == dedup_key))
    assert existing is not None
    return existing


def execution_values(new: NewExecution, now: datetime, start: Claim | None = None) -> dict[str, Any]:
    """The row of a new run; raises InvalidArgument for a request no run can be made of."""
    if new.trigger not in TRIGGERS:
        raise InvalidArgument(f"无效的触发方式: {new.trigger}")
    if new.status not in ("pending", "skipped"):
        raise InvalidArgument(f"新执行记录的状态只能是 pending 或 skipped，而不是 {new.status}")
    if start is not None and new.status != "pending":
        raise InvalidArgument("只有待执行（pending）的执行记录可以在创建时开始")
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
    }
    if new.status == "skipped":
        values["end_time"] = now
    if start is not None:
        values.update(
            status="running",
            start_time=now,
            executor=start.executor,
            attempt=1,
            lease_expires_at=start.lease_until,
        )
    return values


EXECUTIONS = cast(Table, ExecutionRow.__table__)
# Every column an insert does not always set, so every insert has the same columns (one statement).
_UNSET_ON_CREATE: dict[str, Any] = {
    "start_time": None,
    "end_time": None,
    "duration_seconds": None,
    "executor": None,
    "lease_expires_at": None,
}


@functools.cache
def _insert_execution(dialect: str, deduplicated: bool) -> Any:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(EXECUTIONS)
    if deduplicated:
        insert = insert.on_conflict_do_nothing(index_elements=["dedup_key"])
    return insert.returning(*EXECUTIONS.c)


def _detached(row: Any) -> ExecutionRow:
    """An ExecutionRow of a Core result row (not in the session: the hot path skips the ORM)."""
    return ExecutionRow(**row._mapping)


def claim_execution(
    session: Session, execution_id: int, claim: Claim, now: datetime, adopt: bool = False
) -> ExecutionRow:
    """pending -> running, atomically: of two claimers exactly one wins. With `adopt`, a running
    run is taken over instead (its start time and progress are kept)."""
    if adopt:
        statement = (
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id, ExecutionRow.status == "running")
            .values(
                executor=claim.executor, attempt=ExecutionRow.attempt + 1, lease_expires_at=claim.lease_until
            )
        )
    else:
        statement = (
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id, ExecutionRow.status == "pending")
            .values(
                status="running",
                start_time=now,
                executor=claim.executor,
                attempt=ExecutionRow.attempt + 1,
                lease_expires_at=claim.lease_until,
                result={},
            )
        )
    claimed = session.scalars(
        statement.returning(ExecutionRow).execution_options(populate_existing=True)
    ).first()
    if claimed is None:
        row = get_execution(session, execution_id)
        raise FailedPrecondition(f"执行记录 {execution_id} 当前状态为 {row.status}，不能开始执行")
    return claimed


def requeue_execution(session: Session, execution_id: int, attempt: int) -> ExecutionRow:
    """running -> pending (the executor had no room); returns the row."""
    moved = session.execute(
        update(ExecutionRow)
        .where(
            ExecutionRow.id == execution_id, ExecutionRow.status == "running", ExecutionRow.attempt == attempt
        )
        .values(status="pending", start_time=None, executor=None, lease_expires_at=None)
        .returning(ExecutionRow.id)
    ).scalar()
    if moved is None:
        raise FailedPrecondition(f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效")
    return get_execution(session, execution_id)


def write_progress(session: Session, results: Mapping[int, tuple[int, dict[str, Any]]]) -> None:
    """Batched progress flush: {execution_id: (attempt, result)}; stale attempts are ignored."""
    for execution_id, (attempt, result) in results.items():
        session.execute(
            update(ExecutionRow)
            .where(
                ExecutionRow.id == execution_id,
                ExecutionRow.status == "running",
                ExecutionRow.attempt == attempt,
            )
            .values(result=result)
        )


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How an attempt of a run ended."""

    execution_id: int
    attempt: int
    status: str
    result: dict[str, Any]
    error_message: str = ""


def finish_execution(
    session: Session, end: RunEnd, now: datetime
) -> tuple[ExecutionRow, ExecutionRow | None]:
    """Final state of a run, and its retry when it failed with retries left (same transaction)."""
    if end.status not in FINAL_STATUSES:
        raise InvalidArgument(f"无效的结束状态: {end.status}")
    row = get_execution(session, end.execution_id)
    if row.status not in ACTIVE_STATUSES:
        raise FailedPrecondition(f"执行记录 {end.execution_id} 已结束（{row.status}）")
    if row.attempt != end.attempt:
        raise FailedPrecondition(
            f"执行记录 {end.execution_id} 的第 {end.attempt} 次尝试已失效（当前第 {row.attempt} 次）"
        )
    row.status = end.status
    row.end_time = now
    if row.start_time is not None:
        row.duration_seconds = duration(row.start_time, now)
    row.result = {**(row.result or {}), **end.result}
    row.error_message = end.error_message or None
    row.lease_expires_at = None
    retry = schedule_retry(session, row, now) if end.status == "failed" else None
    session.flush()
    return row, retry


def finish_running(
    session: Session, end: RunEnd, started: datetime, now: datetime
) -> tuple[ExecutionRow, ExecutionRow | None] | None:
    """`finish_execution` in one statement, for a caller that holds the run's start time and whole
    result (its live progress). None when the row is not this attempt running: the caller then
    takes `finish_execution`, which says why."""
    updated = session.execute(
        _FINISH_RUNNING.returning(*EXECUTIONS.c), finish_params(end, started, now)
    ).first()
    if updated is None:
        return None
    row = _detached(updated)
    return row, schedule_retry(session, row, now) if end.status == "failed" else None


def finish_params(end: RunEnd, started: datetime, now: datetime) -> dict[str, Any]:
    """One run's end for `finish_running` / `finish_many`."""
    if end.status not in FINAL_STATUSES:
        raise InvalidArgument(f"无效的结束状态: {end.status}")
    return {
        "b_id": end.execution_id,
        "b_attempt": end.attempt,
        "b_status": end.status,
        "b_end": now,
        "b_duration": duration(started, now),
        "b_result": end.result,
        "b_error": end.error_message or None,
    }


def finish_many(session: Session, params: list[dict[str, Any]]) -> bool:
    """Ends many running runs (`finish_params` each) in one statement, without retries: for
    successes. False when some run was not that attempt running (the caller rolls back)."""
    updated = cast(CursorResult[Any], session.execute(_FINISH_RUNNING, params))
    return updated.rowcount == len(params)


def duration(started: datetime, ended: datetime) -> float:
    return round((ended - started).total_seconds(), 3)


FINAL_STATUSES = ("success", "failed", "terminated", "skipped")
_FINISH_RUNNING = (
    update(EXECUTIONS)
    .where(
        EXECUTIONS.c.id == bindparam("b_id"),
        EXECUTIONS.c.attempt == bindparam("b_attempt"),
        EXECUTIONS.c.status == "running",
    )
    .values(
        status=bindparam("b_status"),
        end_time=bindparam("b_end"),
        duration_seconds=bindparam("b_duration"),
        result=bindparam("b_result"),
        error_message=bindparam("b_error"),
        lease_expires_at=None,
    )
)


def schedule_retry(session: Session, failed: ExecutionRow, now: datetime) -> ExecutionRow | None:
    task = session.get(TaskRow, failed.task_id)
    if task is None or failed.retry_count >= task.max_retries or failed.terminate_requested:
        return None
    if not task.enabled and failed.trigger in ("schedule", "retry") and failed.parent_execution_id is None:
        return None
    retry, _ = create_execution(
        session,
        NewExecution(
            task_id=failed.task_id,
            trigger="retry",
            scheduled_time=now + timedelta(seconds=task.retry_interval),
            parent_execution_id=failed.parent_execution_id or 0,
            retry_count=failed.retry_count + 1,
            dedup_key=f"r:{failed.id}",
        ),
        now,
    )
    return retry


def request_termination(session: Session, execution_id: int, now: datetime) -> tuple[ExecutionRow, bool]:
    """Pending runs end at once; running ones are flagged for the scheduler to stop.

    Returns (row, needs_stop): needs_stop when an executor must be told to cancel.
    """
    row = get_execution(session, execution_id)
    if row.status == "pending":
        row.status = "terminated"
        row.end_time = now
        row.error_message = "用户终止了任务"
        row.terminate_requested = True
        return row, False
    if row.status == "running":
        row.terminate_requested = True
        return row, True
    raise FailedPrecondition(f"执行记录 {execution_id} 已结束（{row.status}），无法终止")


def children_of(session: Session, parent_id: int) -> list[ExecutionRow]:
    return list(session.scalars(select(ExecutionRow).where(ExecutionRow.parent_execution_id == parent_id)))


def active_executions(session: Session, limit: int) -> list[ExecutionRow]:
    query = select(ExecutionRow).where(ExecutionRow.status.in_(ACTIVE_STATUSES)).order_by(ExecutionRow.id)
    return list(session.scalars(query.limit(limit)))


# ---- history ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    task_id: int = 0
    skip: int = 0
    limit: int = 100
    status: str = ""
    start_time_from: str = ""
    start_time_to: str = ""
    parent_execution_id: int = 0


def _time_filter(text: str, label: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument(f"{label}格式无效: {text}（需要 RFC 3339，例如 2026-01-01T00:00:00Z）") from exc
    if moment.tzinfo is None:
        raise InvalidArgument(f"{label}必须带时区，例如 2026-01-01T00:00:00Z")
    return moment


def list_executions(session: Session, query: ExecutionQuery) -> tuple[list[ExecutionRow], int]:
    if query.skip < 0:
        raise InvalidArgument("skip 不能为负数")
    if not 1 <= query.limit <= 1000:
        raise InvalidArgument("limit 必须在1到1000之间")
    conditions = []
    if query.task_id:
        get_task(session, query.task_id)
        conditions.append(ExecutionRow.task_id == query.task_id)
    if query.parent_execution_id:
        conditions.append(ExecutionRow.parent_execution_id == query.parent_execution_id)
    if query.status:
        statuses = [s.strip() for s in query.status.split(",") if s.strip()]
        bad = [s for s in statuses if s not in EXECUTION_STATUSES]
        if bad:
            raise InvalidArgument(f"无效的状态: {', '.join(bad)}，支持: {', '.join(EXECUTION_STATUSES)}")
        conditions.append(ExecutionRow.status.in_(statuses))
    started = func.coalesce(ExecutionRow.start_time, ExecutionRow.created_at)
    if query.start_time_from:
        conditions.append(started >= _time_filter(query.start_time_from, "start_time_from "))
    if query.start_time_to:
        conditions.append(started < _time_filter(query.start_time_to, "start_time_to "))
    where = and_(*conditions) if conditions else None
    count = select(func.count()).select_from(ExecutionRow)
    rows = select(ExecutionRow).order_by(ExecutionRow.id.desc()).offset(query.skip).limit(query.limit)
    if where is not None:
        count, rows = count.where(where), rows.where(where)
    return list(session.scalars(rows)), session.scalar(count) or 0


def task_names(session: Session, task_ids: set[int]) -> dict[int, str]:
    if not task_ids:
        return {}
    rows = session.execute(select(TaskRow.id, TaskRow.name).where(TaskRow.id.in_(task_ids)))
    # Not dict(rows): a Result has keys(), so dict() would treat it as a mapping.
    return {task_id: name for task_id, name in rows}  # noqa: C416


@dataclass(frozen=True, slots=True)
class StatsRow:
    total: int
    success: int
    failed: int
    running: int
    pending: int
    terminated: int
    skipped: int
    avg_duration: float
    latest: datetime | None

    @property
    def success_rate(self) -> float:
        finished = self.success + self.failed
        return round(self.success / finished, 4) if finished else 0.0


def stats(session: Session, task_id: int) -> StatsRow:
    if task_id:
        get_task(session, task_id)

    def count(status: str) -> Any:
        return func.coalesce(func.sum(case((ExecutionRow.status == status, 1), else_=0)), 0)

    finished = ExecutionRow.status.in_(("success", "failed", "terminated"))
    query = select(
        func.count(),
        count("success"),
        count("failed"),
        count("running"),
        count("pending"),
        count("terminated"),
        count("skipped"),
        func.avg(case((finished, ExecutionRow.duration_seconds), else_=None)),
        func.max(ExecutionRow.start_time),
    )
    if task_id:
        query = query.where(ExecutionRow.task_id == task_id)
    total, success, failed, running, pending, terminated, skipped, avg, latest = session.execute(query).one()
    return StatsRow(
        total=int(total),
        success=int(success),
        failed=int(failed),
        running=int(running),
        pending=int(pending),
        terminated=int(terminated),
        skipped=int(skipped),
        avg_duration=round(float(avg or 0.0), 3),
        latest=latest,
    )


def last_scheduled_times(session: Session) -> dict[int, datetime]:
    """Per task, the newest planned time that got an execution (run or skipped)."""
    rows = session.execute(
        select(ExecutionRow.task_id, func.max(ExecutionRow.scheduled_time))
        .where(ExecutionRow.trigger == "schedule")
        .group_by(ExecutionRow.task_id)
    )
    return {task_id: moment for task_id, moment in rows if moment is not None}
