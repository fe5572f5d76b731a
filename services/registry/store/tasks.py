"""Tasks: creating, reading, updating and deleting one task, and its state changes (enable,
pause). Takes a Session; knows nothing of gRPC.

What a valid task is lives in `task_rules.py`: a create or an update applies those rules, then
this module adds what needs the table: a name is unique (the unique index answers; an update asks
first, so that a rename to a taken name is refused before anything is written), a row deleted
meanwhile is "not found", and the side effects of a change (a new schedule anchor, pending retries
skipped when a task is disabled). A batch of creates is `task_batches.py`; the list is
`task_listing.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from services.common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Reason
from services.common.input_checks import shown
from services.common.vocabulary import LIVE_STATUSES, ExecutionStatus, TaskType, Trigger
from services.common.workflow_plan import referenced_task_ids
from services.registry.db import locked
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store.task_rules import (
    EDITABLE,
    SCHEDULE_FIELDS,
    apply_field,
    check_rules,
    check_run_at_ahead,
    new_task,
)

TASKS = cast(Table, TaskRow.__table__)
# What scheduling needs of a task (the scheduler's snapshot and a started run's answer): not the
# fields only people read (description, who created and changed it, tags).
SCHEDULING_COLUMNS = (
    "id",
    "name",
    "task_type",
    "cron_expression",
    "interval_seconds",
    "run_at",
    "timezone",
    "enabled",
    "paused",
    "config",
    "max_retries",
    "retry_interval",
    "timeout_seconds",
    "concurrency_policy",
    "misfire_policy",
    "misfire_grace_seconds",
    "updated_at",
    "calendar",
    "calendar_shift",
    "calendar_holidays",
    "schedule_anchor",
)


def task_not_found(task_id: int) -> NotFound:
    return NotFound(f"任务 {task_id} 不存在", reason=Reason.TASK_NOT_FOUND)


def name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"任务名称 '{name}' 已存在", reason=Reason.TASK_NAME_TAKEN)


def _check_unique_name(session: Session, row: TaskRow) -> None:
    clash = session.scalar(select(TaskRow.id).where(TaskRow.name == row.name, TaskRow.id != (row.id or 0)))
    if clash is not None:
        raise name_taken(row.name)


def _flush(session: Session, row: TaskRow) -> None:
    # Read before the flush: a failed flush rolls the session back, and the row's attributes with it.
    task_id, name = row.id, row.name
    try:
        session.flush()
    except IntegrityError as exc:  # the name is taken (the unique index is the only one on tasks)
        raise name_taken(name) from exc
    except StaleDataError as exc:  # deleted since it was read (SQLite takes no row lock)
        raise task_not_found(task_id) from exc


def create_task(
    session: Session, fields: Mapping[str, Any], actor: str, default_timezone: str, now: datetime
) -> TaskRow:
    row = new_task(session, fields, actor, default_timezone, now)
    session.add(row)
    _flush(session, row)  # the unique index answers whether the name is taken
    return row


def update_task(
    session: Session, task_id: int, changes: Mapping[str, Any], actor: str, now: datetime
) -> TaskRow:
    # Locked (PostgreSQL): a delete racing this update waits for it, or wins and this answers 404.
    row = locked(session, TaskRow, task_id)
    if row is None:
        raise task_not_found(task_id)
    refused = sorted(set(changes) - EDITABLE)
    if refused:
        raise InvalidArgument(f"以下字段不能修改: {shown(', '.join(refused))}", reason=Reason.TASK_INVALID)
    before = {name: getattr(row, name) for name in SCHEDULE_FIELDS}
    was_enabled = row.enabled
    for name, value in changes.items():
        apply_field(row, name, value)
    if changes.get("run_at") not in (None, ""):
        check_run_at_ahead(row, now)
    # The checks query; an autoflush of the changed row would hit the unique index first (-> 500).
    with session.no_autoflush:
        check_rules(session, row)
        _check_unique_name(session, row)
    if any(getattr(row, name) != before[name] for name in SCHEDULE_FIELDS) or (
        row.enabled and not was_enabled
    ):
        row.schedule_anchor = now
    if was_enabled and not row.enabled:
        cancel_pending_retries(session, task_id, "任务已禁用，重试已取消", now)
    row.updated_at = now
    row.updated_by = actor
    _flush(session, row)
    return row


def get_task(session: Session, task_id: int) -> TaskRow:
    row = session.get(TaskRow, task_id)
    if row is None:
        raise task_not_found(task_id)
    return row


def workflows_referencing(session: Session, task_id: int) -> list[TaskRow]:
    workflows = session.scalars(select(TaskRow).where(TaskRow.task_type == TaskType.WORKFLOW))
    return [wf for wf in workflows if task_id in referenced_task_ids(wf.config)]


def active_executions(session: Session, task_id: int) -> list[ExecutionRow]:
    query = select(ExecutionRow).where(
        ExecutionRow.task_id == task_id, ExecutionRow.status.in_(LIVE_STATUSES)
    )
    return list(session.scalars(query))


def delete_task(session: Session, task_id: int, force: bool) -> list[ExecutionRow]:
    """Deletes the task and its history; returns the runs that were still active (to be stopped)."""
    # Locked first (PostgreSQL): a workflow being saved with this task holds it (validate_workflow);
    # once that commits, the check below sees the workflow.
    row = locked(session, TaskRow, task_id)
    if row is None:
        raise task_not_found(task_id)
    referencing = workflows_referencing(session, task_id)
    active = active_executions(session, task_id)
    if not force:
        if referencing:
            names = "、".join(wf.name for wf in referencing)
            raise Conflict(
                f"任务 {task_id} 被编排任务 {names} 引用，无法删除（可使用 force=true 强制删除）",
                reason=Reason.TASK_REFERENCED,
            )
        if active:
            raise Conflict(
                f"任务 {task_id} 有正在等待或运行的执行记录，无法删除（可使用 force=true 强制删除）",
                reason=Reason.TASK_REFERENCED,
            )
    session.execute(delete(ExecutionRow).where(ExecutionRow.task_id == task_id))
    session.delete(row)
    session.flush()
    return active


def set_enabled(session: Session, task_id: int, enabled: bool, actor: str, now: datetime) -> TaskRow:
    row = get_task(session, task_id)
    if row.enabled != enabled:
        row.enabled = enabled
        if enabled:
            row.schedule_anchor = now
        else:
            cancel_pending_retries(session, task_id, "任务已禁用，重试已取消", now)
        row.updated_at = now
        row.updated_by = actor
    return row


def set_paused(session: Session, task_id: int, paused: bool, actor: str, now: datetime) -> TaskRow:
    row = get_task(session, task_id)
    if row.paused != paused:
        row.paused = paused
        row.updated_at = now
        row.updated_by = actor
    return row


def cancel_pending_retries(session: Session, task_id: int, reason: str, now: datetime) -> None:
    session.execute(
        update(ExecutionRow)
        .where(
            ExecutionRow.task_id == task_id,
            ExecutionRow.status == ExecutionStatus.PENDING,
            ExecutionRow.trigger == Trigger.RETRY,
        )
        .values(status=ExecutionStatus.SKIPPED, error_message=reason, end_time=now)
    )
