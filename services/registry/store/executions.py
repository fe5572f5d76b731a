"""Executions: idempotent creation, claim, finish with retries, history and statistics.

Hot paths (create, claim, finish) are single Core statements; statistics are computed in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
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


def create_execution(session: Session, new: NewExecution, now: datetime) -> tuple[ExecutionRow, bool]:
    """Inserts the run unless one with the same dedup key exists; returns (row, created)."""
    if new.trigger not in TRIGGERS:
        raise InvalidArgument(f"无效的触发方式: {new.trigger}")
    if new.status not in ("pending", "skipped"):
        raise InvalidArgument(f"新执行记录的状态只能是 pending 或 skipped，而不是 {new.status}")
    values: dict[str, Any] = {
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
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(ExecutionRow).values(**values)
    if new.dedup_key:
        insert = insert.on_conflict_do_nothing(index_elements=["dedup_key"])
    # One statement on the hot path: the task's existence is checked by the foreign key.
    try:
        row = session.scalars(insert.returning(ExecutionRow)).first()
    except IntegrityError as exc:
        raise task_not_found(new.task_id) from exc
    if row is None:
        existing = session.scalar(select(ExecutionRow).where(ExecutionRow.dedup_key == new.dedup_key))
        assert existing is not None
        return existing, False
    return row, True


def claim_execution(
    session: Session,
    execution_id: int,
    executor: str,
    lease_until: datetime,
    now: datetime,
    adopt: bool = False,
) -> ExecutionRow:
    """pending -> running, atomically: of two claimers exactly one wins. With `adopt`, a running
    run is taken over instead (its start time and progress are kept)."""
    if adopt:
        statement = (
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id, ExecutionRow.status == "running")
            .values(executor=executor, attempt=ExecutionRow.attempt + 1, lease_expires_at=lease_until)
        )
    else:
        statement = (
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id, ExecutionRow.status == "pending")
            .values(
                status="running",
                start_time=now,
                executor=executor,
                attempt=ExecutionRow.attempt + 1,
                lease_expires_at=lease_until,
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


def finish_execution(
    session: Session,
    execution_id: int,
    attempt: int,
    status: str,
    result: dict[str, Any],
    error_message: str,
    now: datetime,
) -> tuple[ExecutionRow, ExecutionRow | None]:
    """Final state of a run, and its retry when it failed with retries left (same transaction)."""
    if status not in ("success", "failed", "terminated", "skipped"):
        raise InvalidArgument(f"无效的结束状态: {status}")
    row = get_execution(session, execution_id)
    if row.status not in ACTIVE_STATUSES:
        raise FailedPrecondition(f"执行记录 {execution_id} 已结束（{row.status}）")
    if row.attempt != attempt:
        raise FailedPrecondition(
            f"执行记录 {execution_id} 的第 {attempt} 次尝试已失效（当前第 {row.attempt} 次）"
        )
    row.status = status
    row.end_time = now
    if row.start_time is not None:
        row.duration_seconds = round((now - row.start_time).total_seconds(), 3)
    row.result = {**(row.result or {}), **result}
    row.error_message = error_message or None
    row.lease_expires_at = None
    retry = schedule_retry(session, row, now) if status == "failed" else None
    session.flush()
    return row, retry


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
