"""Reading runs back: the history with its filters, a workflow run's children, the live runs,
statistics (computed in SQL) and the newest planned time of each task (for the scheduler's catch-up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, false, func, literal, select, union_all
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.common.input_checks import check_text, parse_rfc3339, shown
from services.common.vocabulary import (
    LIVE_STATUSES,
    RAN_STATUSES,
    ExecutionStatus,
    listed,
    word_of,
)
from services.common.vocabulary import ExecutionStatus as Status
from services.registry.models import ExecutionDailyRow, ExecutionRow, TaskRow
from services.registry.store.tasks import get_task


def children_of(session: Session, parent_id: int) -> list[ExecutionRow]:
    return list(session.scalars(select(ExecutionRow).where(ExecutionRow.parent_execution_id == parent_id)))


def active_executions(session: Session, limit: int, after_id: int = 0) -> list[ExecutionRow]:
    """Up to `limit` live runs with an id above `after_id`, oldest first (the (status, id) index)."""
    query = (
        select(ExecutionRow)
        .where(ExecutionRow.status.in_(LIVE_STATUSES), ExecutionRow.id > after_id)
        .order_by(ExecutionRow.id)
    )
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
    return parse_rfc3339(text, label.strip(), reason=Reason.FILTER_INVALID, example="2026-01-01T00:00:00Z")


def list_executions(session: Session, query: ExecutionQuery) -> tuple[list[ExecutionRow], int]:
    if query.skip < 0:
        raise InvalidArgument("skip 不能为负数", reason=Reason.PAGE_INVALID)
    if not 1 <= query.limit <= 1000:
        raise InvalidArgument("limit 必须在1到1000之间", reason=Reason.PAGE_INVALID)
    conditions = []
    if query.task_id:
        get_task(session, query.task_id)
        conditions.append(ExecutionRow.task_id == query.task_id)
    if query.parent_execution_id:
        conditions.append(ExecutionRow.parent_execution_id == query.parent_execution_id)
    if query.status:
        check_text(query.status, "status", 200, reason=Reason.FILTER_INVALID)
        statuses = [s.strip() for s in query.status.split(",") if s.strip()]
        bad = [s for s in statuses if word_of(ExecutionStatus, s) is None]
        if bad:
            raise InvalidArgument(
                f"无效的状态: {shown(', '.join(bad))}，支持: {listed(ExecutionStatus)}",
                reason=Reason.FILTER_INVALID,
            )
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
    """Counts and the average duration of a task's runs (every task's without `task_id`): the daily
    aggregates of the sealed runs, purged or not (store.retention), plus the unsealed runs, which
    are few (the recent ones), read through their partial index. Both in one statement: a seal that
    commits between two reads would count its runs twice (as unsealed, then in the aggregates),
    and each statement sees its own snapshot (READ COMMITTED on PostgreSQL; SQLite's driver runs a
    read outside a transaction). The newest start is read from its own index."""
    if task_id:
        get_task(session, task_id)
    timed = and_(ExecutionRow.status.in_(RAN_STATUSES), ExecutionRow.duration_seconds.is_not(None))
    unsealed = select(
        ExecutionRow.status.label("status"),
        literal(1).label("runs"),
        case((timed, 1), else_=0).label("timed_runs"),
        case((timed, ExecutionRow.duration_seconds), else_=0.0).label("seconds"),
    ).where(ExecutionRow.sealed == false())
    sealed = select(
        ExecutionDailyRow.status,
        ExecutionDailyRow.runs,
        ExecutionDailyRow.timed_runs,
        ExecutionDailyRow.duration_total,
    )
    newest = select(func.max(ExecutionRow.start_time))
    if task_id:
        unsealed = unsealed.where(ExecutionRow.task_id == task_id)
        sealed = sealed.where(ExecutionDailyRow.task_id == task_id)
        newest = newest.where(ExecutionRow.task_id == task_id)
    both = union_all(unsealed, sealed).subquery()
    by_status: dict[str, int] = {}
    timed_runs, seconds = 0, 0.0
    for status, runs, timed_part, seconds_part in session.execute(
        select(
            both.c.status, func.sum(both.c.runs), func.sum(both.c.timed_runs), func.sum(both.c.seconds)
        ).group_by(both.c.status)
    ):
        by_status[status] = int(runs or 0)
        timed_runs += int(timed_part or 0)
        seconds += float(seconds_part or 0.0)
    latest = session.scalar(newest)
    return StatsRow(
        total=sum(by_status.values()),
        success=by_status.get(Status.SUCCESS, 0),
        failed=by_status.get(Status.FAILED, 0),
        running=by_status.get(Status.RUNNING, 0),
        pending=by_status.get(Status.PENDING, 0),
        terminated=by_status.get(Status.TERMINATED, 0),
        skipped=by_status.get(Status.SKIPPED, 0),
        avg_duration=round(seconds / timed_runs, 3) if timed_runs else 0.0,
        latest=latest,
    )


def last_scheduled_times(session: Session, task_ids: Sequence[int]) -> dict[int, datetime]:
    """Of these tasks (a page of the scheduler's snapshot), the newest planned time that got an
    execution (run or skipped)."""
    if not task_ids:
        return {}
    rows = session.execute(
        select(ExecutionRow.task_id, func.max(ExecutionRow.scheduled_time))
        .where(ExecutionRow.trigger == "schedule", ExecutionRow.task_id.in_(task_ids))
        .group_by(ExecutionRow.task_id)
    )
    return {task_id: moment for task_id, moment in rows if moment is not None}
