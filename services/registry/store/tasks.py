"""Tasks: validation rules, CRUD and state changes. Takes a Session; knows nothing of gRPC."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.cron import CronError, parse_cron, validate_timezone
from services.common.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from services.registry.models import (
    ACTIVE_STATUSES,
    CONCURRENCY_POLICIES,
    MISFIRE_POLICIES,
    TASK_TYPES,
    ExecutionRow,
    TaskRow,
)
from services.registry.store.workflows import child_task_ids, validate_workflow

# Fields a client may set; everything else in an update (id, task_type, created_at, ...) is refused.
EDITABLE = frozenset(
    {
        "name",
        "cron_expression",
        "interval_seconds",
        "run_at",
        "timezone",
        "enabled",
        "description",
        "config",
        "max_retries",
        "retry_interval",
        "timeout_seconds",
        "concurrency_policy",
        "misfire_policy",
        "misfire_grace_seconds",
    }
)
SCHEDULE_FIELDS = frozenset({"cron_expression", "interval_seconds", "run_at", "timezone"})
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


def task_not_found(task_id: int) -> NotFound:
    return NotFound(f"任务 {task_id} 不存在")


# ---- field parsing ----------------------------------------------------------------------------


def _as_int(name: str, value: Any, low: int, high: int, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
        raise InvalidArgument(f"{label}必须是整数")
    number = int(value)
    if not low <= number <= high:
        raise InvalidArgument(f"{label}必须在{low}到{high}之间")
    return number


def _as_text(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{label}必须是字符串")
    return value


def _parse_time(value: Any, label: str) -> datetime:
    text = _as_text(value, label).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InvalidArgument(f"{label}格式无效: {text}（需要 RFC 3339，例如 2026-01-01T18:00:00Z）") from exc
    if moment.tzinfo is None:
        raise InvalidArgument(f"{label}必须带时区偏移，例如 2026-01-01T18:00:00+08:00")
    return moment


def _apply(row: TaskRow, name: str, value: Any) -> None:
    """Sets one field from JSON input; None (and "" for clearable fields) clears."""
    if name == "name":
        text = _as_text(value, "任务名称").strip() if value is not None else ""
        if not text:
            raise InvalidArgument("任务名称不能为空")
        if len(text) > 100:
            raise InvalidArgument("任务名称不能超过100个字符")
        row.name = text
    elif name == "cron_expression":
        text = _as_text(value, "Cron表达式").strip() if value is not None else ""
        if text:
            try:
                parse_cron(text)
            except CronError as exc:
                raise InvalidArgument(str(exc)) from exc
        row.cron_expression = text or None
    elif name == "interval_seconds":
        row.interval_seconds = (
            None if value in (None, "", 0) else _as_int(name, value, 1, 366 * 86400, "间隔秒数")
        )
    elif name == "run_at":
        row.run_at = None if value in (None, "") else _parse_time(value, "一次性运行时间")
    elif name == "timezone":
        text = _as_text(value, "时区").strip() if value is not None else ""
        if not text:
            raise InvalidArgument("时区不能为空")
        try:
            validate_timezone(text)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        row.timezone = text
    elif name == "enabled":
        if not isinstance(value, bool):
            raise InvalidArgument("enabled 必须是布尔值")
        row.enabled = value
    elif name == "description":
        text = _as_text(value, "任务描述") if value is not None else ""
        if len(text) > 2000:
            raise InvalidArgument("任务描述不能超过2000个字符")
        row.description = text or None
    elif name == "config":
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise InvalidArgument("任务配置必须是JSON对象")
        row.config = value
    elif name == "max_retries":
        row.max_retries = _as_int(name, value, 0, 100, "最大重试次数")
    elif name == "retry_interval":
        row.retry_interval = _as_int(name, value, 0, 86400, "重试间隔")
    elif name == "timeout_seconds":
        row.timeout_seconds = 0 if value in (None, "") else _as_int(name, value, 0, 7 * 86400, "超时时间")
    elif name == "concurrency_policy":
        if value not in CONCURRENCY_POLICIES:
            raise InvalidArgument(f"无效的并发策略: {value}，支持: forbid, allow, replace")
        row.concurrency_policy = value
    elif name == "misfire_policy":
        if value not in MISFIRE_POLICIES:
            raise InvalidArgument(f"无效的错过执行策略: {value}，支持: run_once, skip")
        row.misfire_policy = value
    elif name == "misfire_grace_seconds":
        row.misfire_grace_seconds = _as_int(name, value, 0, 86400, "错过执行宽限时间")


def _number(config: Mapping[str, Any], key: str) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _check_example_config(config: Mapping[str, Any]) -> None:
    steps = _number(config, "steps")
    if steps is not None and not (steps >= 1 and float(steps).is_integer()):
        raise InvalidArgument("配置项 steps 必须是大于 0 的整数")
    duration = _number(config, "duration_seconds")
    if duration is not None and not duration >= 0:
        raise InvalidArgument("配置项 duration_seconds 必须是大于等于 0 的数字")
    rate = _number(config, "success_rate")
    if rate is not None and not 0 <= rate <= 1:
        raise InvalidArgument("配置项 success_rate 必须在 0 到 1 之间")


def _check_rules(session: Session, row: TaskRow) -> None:
    """Cross-field rules; the guide's messages where it has them."""
    if row.task_type not in TASK_TYPES:
        raise InvalidArgument(f"无效的任务类型: {row.task_type}，支持: {', '.join(TASK_TYPES)}")
    if row.task_type == "manual_task":
        if row.cron_expression:
            raise InvalidArgument("手动任务不支持 Cron 表达式调度")
        if row.interval_seconds:
            raise InvalidArgument("手动任务不支持间隔调度")
        if row.run_at:
            raise InvalidArgument("手动任务不支持一次性定时调度")
    schedules = [bool(row.cron_expression), bool(row.interval_seconds), row.run_at is not None]
    if sum(schedules) > 1:
        raise InvalidArgument("Cron表达式、间隔秒数和一次性运行时间只能设置其中一个")
    config = row.config or {}
    if row.task_type == "example_task" or config.get("task_action") == "example_task":
        _check_example_config(config)
    if row.task_type in ("common_task", "manual_task") and not (
        config.get("command") or config.get("task_action")
    ):
        kind = "手动任务" if row.task_type == "manual_task" else "通用任务"
        raise InvalidArgument(f"{kind}配置中必须包含 'command' 或 'task_action' 字段")
    if row.task_type == "workflow":
        try:
            validate_workflow(session, config, row.id or 0)
        except InvalidArgument as exc:
            raise InvalidArgument(f"编排任务配置无效: {exc.message}") from exc


def _check_run_at_ahead(row: TaskRow, now: datetime) -> None:
    if row.run_at is not None and row.run_at <= now:
        raise InvalidArgument("一次性运行时间必须晚于当前时间")


def _check_unique_name(session: Session, row: TaskRow) -> None:
    clash = session.scalar(select(TaskRow.id).where(TaskRow.name == row.name, TaskRow.id != (row.id or 0)))
    if clash is not None:
        raise AlreadyExists(f"任务名称 '{row.name}' 已存在")


def _flush(session: Session, row: TaskRow) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent insert of the same name won the race
        raise AlreadyExists(f"任务名称 '{row.name}' 已存在") from exc


# ---- CRUD -------------------------------------------------------------------------------------


def create_task(
    session: Session, fields: Mapping[str, Any], actor: str, default_timezone: str, now: datetime
) -> TaskRow:
    unknown = sorted(set(fields) - EDITABLE - {"task_type"})
    if unknown:
        raise InvalidArgument(f"不支持的字段: {', '.join(unknown)}")
    if "name" not in fields:
        raise InvalidArgument("任务名称不能为空")
    row = TaskRow(
        task_type=fields.get("task_type") or "",
        timezone=default_timezone,
        enabled=True,
        paused=False,
        config={},
        max_retries=3,
        retry_interval=60,
        timeout_seconds=0,
        concurrency_policy="forbid",
        misfire_policy="run_once",
        misfire_grace_seconds=60,
        schedule_anchor=now,
        created_at=now,
        updated_at=now,
        created_by=actor,
        updated_by=actor,
    )
    for name, value in fields.items():
        if name != "task_type":
            _apply(row, name, value)
    _check_run_at_ahead(row, now)
    _check_rules(session, row)
    _check_unique_name(session, row)
    session.add(row)
    _flush(session, row)
    return row


def update_task(
    session: Session, task_id: int, changes: Mapping[str, Any], actor: str, now: datetime
) -> TaskRow:
    row = get_task(session, task_id)
    refused = sorted(set(changes) - EDITABLE)
    if refused:
        raise InvalidArgument(f"以下字段不能修改: {', '.join(refused)}")
    before = {name: getattr(row, name) for name in SCHEDULE_FIELDS}
    was_enabled = row.enabled
    for name, value in changes.items():
        _apply(row, name, value)
    if changes.get("run_at") not in (None, ""):
        _check_run_at_ahead(row, now)
    # The checks query; an autoflush of the changed row would hit the unique index first (-> 500).
    with session.no_autoflush:
        _check_rules(session, row)
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
    workflows = session.scalars(select(TaskRow).where(TaskRow.task_type == "workflow"))
    return [
        wf
        for wf in workflows
        if any(
            isinstance(item, dict) and item.get("task_id") == task_id
            for item in (wf.config or {}).get("tasks") or []
        )
    ]


def active_executions(session: Session, task_id: int) -> list[ExecutionRow]:
    query = select(ExecutionRow).where(
        ExecutionRow.task_id == task_id, ExecutionRow.status.in_(ACTIVE_STATUSES)
    )
    return list(session.scalars(query))


def delete_task(session: Session, task_id: int, force: bool) -> list[ExecutionRow]:
    """Deletes the task and its history; returns the runs that were still active (to be stopped)."""
    row = get_task(session, task_id)
    referencing = workflows_referencing(session, task_id)
    active = active_executions(session, task_id)
    if not force:
        if referencing:
            names = "、".join(wf.name for wf in referencing)
            raise Conflict(f"任务 {task_id} 被编排任务 {names} 引用，无法删除（可使用 force=true 强制删除）")
        if active:
            raise Conflict(
                f"任务 {task_id} 有正在等待或运行的执行记录，无法删除（可使用 force=true 强制删除）"
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
            ExecutionRow.status == "pending",
            ExecutionRow.trigger == "retry",
        )
        .values(status="skipped", error_message=reason, end_time=now)
    )


# ---- listing ----------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class LatestRun:
    time: datetime | None
    status: str


def _filtered(session: Session, query: TaskQuery) -> Select[Any]:
    statement = select(TaskRow)
    if query.task_type:
        if query.task_type not in TASK_TYPES:
            raise InvalidArgument(f"无效的任务类型: {query.task_type}，支持: {', '.join(TASK_TYPES)}")
        statement = statement.where(TaskRow.task_type == query.task_type)
    if query.enabled is not None:
        statement = statement.where(TaskRow.enabled == query.enabled)
    if query.name:
        escaped = query.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        statement = statement.where(func.lower(TaskRow.name).like(f"%{escaped.lower()}%", escape="\\"))
    if not query.include_children:
        hidden = child_task_ids(session)
        if hidden:
            statement = statement.where(TaskRow.id.not_in(hidden))
    return statement


def list_tasks(session: Session, query: TaskQuery) -> tuple[list[TaskRow], int]:
    if query.skip < 0:
        raise InvalidArgument("skip 不能为负数")
    if not 1 <= query.limit <= 1000:
        raise InvalidArgument("limit 必须在1到1000之间")
    if query.order_by and query.order_by not in ORDERABLE:
        raise InvalidArgument(f"不支持的排序字段: {query.order_by}，支持: {', '.join(ORDERABLE)}")
    if query.order.lower() not in ("", "asc", "desc"):
        raise InvalidArgument("order 只能是 asc 或 desc")
    statement = _filtered(session, query)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    column = ORDERABLE[query.order_by or "id"]
    ordering = column.asc() if query.order.lower() == "asc" else column.desc()
    rows = session.scalars(
        statement.order_by(ordering, TaskRow.id.desc()).offset(query.skip).limit(query.limit)
    )
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
    """When the task will fire on its own next; None when disabled, paused or unscheduled."""
    if not row.enabled or row.paused or row.task_type == "manual_task":
        return None
    if row.cron_expression:
        return parse_cron(row.cron_expression).next_after(now, ZoneInfo(row.timezone))
    if row.interval_seconds:
        elapsed = (now - row.schedule_anchor).total_seconds()
        periods = max(0, math.floor(elapsed / row.interval_seconds)) + 1
        return row.schedule_anchor + timedelta(seconds=periods * row.interval_seconds)
    if row.run_at is not None and row.run_at > now:
        return row.run_at
    return None


def schedule_status(row: TaskRow, latest: LatestRun | None, next_run: datetime | None) -> str:
    if not row.enabled:
        return "disabled"
    if row.paused:
        return "paused"
    if latest is not None and latest.status in ACTIVE_STATUSES:
        return "running"
    if next_run is not None:
        return "pending"
    if row.run_at is not None:
        return "finished"
    return "manual"
