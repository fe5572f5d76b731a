"""The task list: filters, sort orders, skip and keyset pages with the total of all matches, and
what the list shows beside each task (its newest run, when it fires next, its schedule status).

Filters run in SQL: the name is a case-insensitive substring (ILIKE on PostgreSQL, answered by a
trigram index), a tag an exact member of the task's JSON list, and the tasks of workflows are hidden
unless asked for. A keyset page (`after_id`, only in id order) goes straight to its cursor by the
primary key; a `skip` page skips ids only, then reads its own rows. A filter's value obeys the same rules as the field it filters (`task_rules.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from services.common.errors import InvalidArgument, Reason
from services.common.input_checks import check_text, shown
from services.common.schedule import fires_on_its_own
from services.common.vocabulary import LIVE_STATUSES, TaskType
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store.task_rules import as_word, check_tag, timing_of
from services.registry.store.workflows import child_task_ids

ORDERABLE = {
    "id": TaskRow.id,
    "name": TaskRow.name,
    "task_type": TaskRow.task_type,
    "enabled": TaskRow.enabled,
    "paused": TaskRow.paused,
    "max_retries": TaskRow.max_retries,
    "created_at": TaskRow.created_at,
    "updated_at": TaskRow.updated_at,
}
# The longest name filter.
MAX_NAME_FILTER = 200


@dataclass(frozen=True, slots=True)
class TaskQuery:
    skip: int = 0
    limit: int = 20
    task_type: str = ""
    enabled: bool | None = None
    name: str = ""
    order_by: str = ""
    order: str = ""
    include_children: bool = False
    tag: str = ""
    # Keyset paging by id (0: from the start); only in id order.
    after_id: int = 0

    @property
    def matches(self) -> tuple[str, bool | None, str, bool, str]:
        """What decides which tasks match (so their total), whatever the page."""
        return (self.task_type, self.enabled, self.name, self.include_children, self.tag)


@dataclass(frozen=True, slots=True)
class LatestRun:
    time: datetime | None
    status: str


def _filtered(session: Session, query: TaskQuery) -> Select[Any]:
    statement = select(TaskRow)
    if query.task_type:
        as_word(TaskType, query.task_type, "任务类型", Reason.FILTER_INVALID)
        statement = statement.where(TaskRow.task_type == query.task_type)
    if query.enabled is not None:
        statement = statement.where(TaskRow.enabled == query.enabled)
    if query.name:
        statement = statement.where(_name_contains(session, query.name))
    if query.tag:
        statement = statement.where(_has_tag(session, check_tag(query.tag)))
    if not query.include_children:
        hidden = child_task_ids(session)
        if hidden:
            statement = statement.where(TaskRow.id.not_in(hidden))
    return statement


def _name_contains(session: Session, text: str) -> ColumnElement[bool]:
    """A case-insensitive substring of the name: ILIKE on PostgreSQL, which the trigram index
    answers (migration 0010; without pg_trgm it scans), lower() LIKE on SQLite (a scan)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if session.get_bind().dialect.name == "postgresql":
        return TaskRow.name.ilike(f"%{escaped}%", escape="\\")
    return func.lower(TaskRow.name).like(f"%{escaped.lower()}%", escape="\\")


def _has_tag(session: Session, tag: str) -> ColumnElement[bool]:
    """Whether a task's JSON list of tags holds `tag`: JSONB containment on PostgreSQL, a scan of
    json_each on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(TaskRow.tags, postgresql.JSONB).contains([tag])
    each = func.json_each(TaskRow.tags).table_valued("value")
    return select(each.c.value).where(each.c.value == tag).exists()


def list_tasks(session: Session, query: TaskQuery, total: int | None = None) -> tuple[list[TaskRow], int]:
    """A page of the tasks that match, and the total of them (counted unless given: the caller may
    know it from a page read before, see live/list_cache.py)."""
    if query.skip < 0:
        raise InvalidArgument("skip 不能为负数", reason=Reason.PAGE_INVALID)
    if not 1 <= query.limit <= 1000:
        raise InvalidArgument("limit 必须在1到1000之间", reason=Reason.PAGE_INVALID)
    check_text(query.name, "name", MAX_NAME_FILTER, reason=Reason.FILTER_INVALID)
    if query.order_by and query.order_by not in ORDERABLE:
        raise InvalidArgument(
            f"不支持的排序字段: {shown(query.order_by)}，支持: {', '.join(ORDERABLE)}",
            reason=Reason.PAGE_INVALID,
        )
    if query.order.lower() not in ("", "asc", "desc"):
        raise InvalidArgument("order 只能是 asc 或 desc", reason=Reason.PAGE_INVALID)
    if query.after_id < 0:
        raise InvalidArgument("after_id 不能为负数", reason=Reason.PAGE_INVALID)
    if query.after_id and query.order_by not in ("", "id"):
        raise InvalidArgument("after_id 只能用于按 id 排序", reason=Reason.PAGE_INVALID)
    statement = _filtered(session, query)
    if total is None:
        total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    column = ORDERABLE[query.order_by or "id"]
    ascending = query.order.lower() == "asc"
    ordering = column.asc() if ascending else column.desc()
    if query.after_id:  # a keyset page: the primary key's index goes straight to the cursor
        statement = statement.where(TaskRow.id > query.after_id if ascending else TaskRow.id < query.after_id)
    order = (ordering, TaskRow.id.desc())
    if not query.skip:
        return list(session.scalars(statement.order_by(*order).limit(query.limit))), total
    # A deep `skip` page walks the skipped rows in an index: only their ids (an index-only scan of
    # the primary key in id order), then reads the page's whole rows by id.
    page = statement.with_only_columns(TaskRow.id).order_by(*order).offset(query.skip).limit(query.limit)
    ids = page.subquery()
    rows = session.scalars(select(TaskRow).join(ids, TaskRow.id == ids.c.id).order_by(*order))
    return list(rows), total


def latest_runs(session: Session, task_ids: list[int]) -> dict[int, LatestRun]:
    """The newest execution of each task, in one query over the (task_id, id) index."""
    if not task_ids:
        return {}
    newest = (
        select(func.max(ExecutionRow.id))
        .where(ExecutionRow.task_id.in_(task_ids))
        .group_by(ExecutionRow.task_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            ExecutionRow.task_id,
            ExecutionRow.status,
            func.coalesce(ExecutionRow.start_time, ExecutionRow.created_at),
        ).where(ExecutionRow.id.in_(newest))
    )
    return {task_id: LatestRun(time=moment, status=status) for task_id, status, moment in rows}


def next_run_time(row: TaskRow, now: datetime) -> datetime | None:
    """When the task will fire on its own next; None when it does not (disabled, paused, manual,
    unscheduled, or its one-time run is past)."""
    timing = timing_of(row)
    if not fires_on_its_own(timing, task_type=row.task_type, enabled=row.enabled, paused=row.paused):
        return None
    return timing.next_after(now)


def schedule_status(row: TaskRow, latest: LatestRun | None, next_run: datetime | None) -> str:
    if not row.enabled:
        return "disabled"
    if row.paused:
        return "paused"
    if latest is not None and latest.status in LIVE_STATUSES:
        return "running"
    if next_run is not None:
        return "pending"
    if row.run_at is not None:
        return "finished"
    return "manual"
