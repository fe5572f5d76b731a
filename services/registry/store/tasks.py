"""Tasks: validation rules, CRUD and state changes. Takes a Session; knows nothing of gRPC."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.rpc import error_details_pb2
from sqlalchemy import ColumnElement, Select, Table, delete, func, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from services.common.calendars import MAX_SHIFT
from services.common.cron import CronError, parse_firing_cron, validate_timezone
from services.common.errors import AlreadyExists, Conflict, DomainError, InvalidArgument, NotFound, Reason
from services.common.input_checks import check_json, check_text, parse_rfc3339, shown
from services.common.job_config import ConfigInvalid, check_task_config
from services.common.run_params import check_templates
from services.common.schedule import Timing, fires_on_its_own
from services.common.vocabulary import (
    LIVE_STATUSES,
    ConcurrencyPolicy,
    ExecutionStatus,
    HolidayPolicy,
    MisfirePolicy,
    TaskType,
    Trigger,
    Word,
    listed,
    word_of,
)
from services.common.workflow_plan import referenced_task_ids
from services.registry.models import ExecutionRow, TaskRow
from services.registry.store.calendars import resolve, resolve_or_refuse
from services.registry.store.workflows import child_task_ids, validate_workflow

TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
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
        "calendar",
        "calendar_shift",
        "calendar_holidays",
        "tags",
        "retention_days",
    }
)
SCHEDULE_FIELDS = frozenset(
    {"cron_expression", "interval_seconds", "run_at", "timezone", "calendar", "calendar_shift"}
)
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


# Column sizes (models.py) and the limits of text fields without one.
MAX_NAME = 100
MAX_CRON = 200
MAX_TIMEZONE = 64
MAX_CALENDAR = 64
MAX_DESCRIPTION = 2000
# Filters of the list.
MAX_NAME_FILTER = 200
# Tags: few and short, in characters that need no quoting in a URL query, a CSV cell or a shell.
MAX_TAGS = 10
MAX_TAG = 32
TAG_PATTERN = re.compile(r"[\w.:-]+")  # \w: letters (Chinese too), digits, underscore


def task_not_found(task_id: int) -> NotFound:
    return NotFound(f"任务 {task_id} 不存在", reason=Reason.TASK_NOT_FOUND)


# ---- field parsing ----------------------------------------------------------------------------


def _as_int(name: str, value: Any, low: int, high: int, label: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not float(value).is_integer()
    ):
        raise InvalidArgument(f"{label}必须是整数", reason=Reason.TASK_INVALID)
    number = int(value)
    if not low <= number <= high:
        raise InvalidArgument(f"{label}必须在{low}到{high}之间", reason=Reason.TASK_INVALID)
    return number


def _as_text(value: Any, label: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{label}必须是字符串", reason=Reason.TASK_INVALID)
    return value


def _as_line(value: Any, label: str, max_chars: int, reason: Reason = Reason.TASK_INVALID) -> str:
    """A one-line text field, stripped; "" for None."""
    if value is None:
        return ""
    return check_text(_as_text(value, label).strip(), label, max_chars, reason=reason)


def _as_word(words: type[Word], value: Any, label: str, reason: Reason = Reason.TASK_INVALID) -> Word:
    """One of a vocabulary's wire strings, or the refusal naming the value and the choices."""
    word = word_of(words, value)
    if word is None:
        raise InvalidArgument(f"无效的{label}: {shown(value)}，支持: {listed(words)}", reason=reason)
    return word


def check_tag(value: Any) -> str:
    """One tag as given (no trimming: a tag is matched exactly), or the refusal saying why."""
    if not isinstance(value, str):
        raise InvalidArgument(f"标签必须是字符串，收到 {shown(value)}", reason=Reason.TAG_INVALID)
    if not 1 <= len(value) <= MAX_TAG:
        raise InvalidArgument(
            f"标签长度必须在1到{MAX_TAG}个字符之间: {shown(value)}", reason=Reason.TAG_INVALID
        )
    if not TAG_PATTERN.fullmatch(value):
        raise InvalidArgument(
            f"标签只能包含字母、数字、汉字和 _ - . : 字符: {shown(value)}", reason=Reason.TAG_INVALID
        )
    return value


def _as_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument("标签必须是字符串数组", reason=Reason.TAG_INVALID)
    if len(value) > MAX_TAGS:
        raise InvalidArgument(f"一个任务最多{MAX_TAGS}个标签，收到{len(value)}个", reason=Reason.TAG_INVALID)
    tags = [check_tag(item) for item in value]
    duplicates = sorted({tag for tag in tags if tags.count(tag) > 1})
    if duplicates:
        raise InvalidArgument(f"标签重复: {shown(', '.join(duplicates))}", reason=Reason.TAG_INVALID)
    return tags


def _parse_time(value: Any, label: str) -> datetime:
    return parse_rfc3339(_as_text(value, label), label, reason=Reason.TASK_INVALID)


def _apply(row: TaskRow, name: str, value: Any) -> None:
    """Sets one field from JSON input; None (and "" for clearable fields) clears."""
    if name == "name":
        text = _as_line(value, "任务名称", MAX_NAME)
        if not text:
            raise InvalidArgument("任务名称不能为空", reason=Reason.TASK_INVALID)
        row.name = text
    elif name == "cron_expression":
        text = _as_line(value, "Cron表达式", MAX_CRON, Reason.CRON_INVALID)
        if text:
            try:
                # Whether it ever fires does not depend on the moment (the search spans leap years).
                parse_firing_cron(text, datetime.now(UTC))
            except CronError as exc:
                raise InvalidArgument(str(exc), reason=Reason.CRON_INVALID) from exc
        row.cron_expression = text or None
    elif name == "interval_seconds":
        # 0 is refused, not read as "no interval": that would silently make an unscheduled task.
        row.interval_seconds = (
            None if value in (None, "") else _as_int(name, value, 1, 366 * 86400, "间隔秒数")
        )
    elif name == "run_at":
        row.run_at = None if value in (None, "") else _parse_time(value, "一次性运行时间")
    elif name == "timezone":
        text = _as_line(value, "时区", MAX_TIMEZONE, Reason.TIMEZONE_INVALID)
        if not text:
            raise InvalidArgument("时区不能为空", reason=Reason.TIMEZONE_INVALID)
        try:
            validate_timezone(text)
        except ValueError as exc:
            raise InvalidArgument(str(exc), reason=Reason.TIMEZONE_INVALID) from exc
        row.timezone = text
    elif name == "enabled":
        if not isinstance(value, bool):
            raise InvalidArgument("enabled 必须是布尔值", reason=Reason.TASK_INVALID)
        row.enabled = value
    elif name == "description":
        text = _as_text(value, "任务描述") if value is not None else ""
        check_text(text, "任务描述", MAX_DESCRIPTION, one_line=False, reason=Reason.TASK_INVALID)
        row.description = text or None
    elif name == "config":
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise InvalidArgument("任务配置必须是JSON对象", reason=Reason.TASK_INVALID)
        check_json(value, "任务配置", reason=Reason.TASK_INVALID)
        row.config = value
    elif name == "max_retries":
        row.max_retries = _as_int(name, value, 0, 100, "最大重试次数")
    elif name == "retry_interval":
        row.retry_interval = _as_int(name, value, 0, 86400, "重试间隔")
    elif name == "timeout_seconds":
        row.timeout_seconds = 0 if value in (None, "") else _as_int(name, value, 0, 7 * 86400, "超时时间")
    elif name == "concurrency_policy":
        row.concurrency_policy = _as_word(ConcurrencyPolicy, value, "并发策略")
    elif name == "misfire_policy":
        row.misfire_policy = _as_word(MisfirePolicy, value, "错过执行策略")
    elif name == "misfire_grace_seconds":
        row.misfire_grace_seconds = _as_int(name, value, 0, 86400, "错过执行宽限时间")
    elif name == "calendar":
        # Whether it exists: `_check_rules` (it reads custom calendars).
        row.calendar = _as_line(value, "交易日历", MAX_CALENDAR, Reason.CALENDAR_UNKNOWN) or None
    elif name == "calendar_shift":
        row.calendar_shift = 0 if value is None else _as_int(name, value, -MAX_SHIFT, MAX_SHIFT, "交易日偏移")
    elif name == "calendar_holidays":
        row.calendar_holidays = _as_word(HolidayPolicy, value, "非交易日处理方式")
    elif name == "tags":
        row.tags = _as_tags(value)
    elif name == "retention_days":
        row.retention_days = None if value is None else _as_int(name, value, 0, 36500, "历史保留天数")


def _check_rules(session: Session, row: TaskRow) -> None:
    """Cross-field rules; the guide's messages where it has them."""
    _as_word(TaskType, row.task_type, "任务类型")
    if row.task_type == TaskType.MANUAL:
        if row.cron_expression:
            raise InvalidArgument("手动任务不支持 Cron 表达式调度", reason=Reason.TASK_INVALID)
        if row.interval_seconds:
            raise InvalidArgument("手动任务不支持间隔调度", reason=Reason.TASK_INVALID)
        if row.run_at:
            raise InvalidArgument("手动任务不支持一次性定时调度", reason=Reason.TASK_INVALID)
    schedules = [bool(row.cron_expression), bool(row.interval_seconds), row.run_at is not None]
    if sum(schedules) > 1:
        raise InvalidArgument(
            "Cron表达式、间隔秒数和一次性运行时间只能设置其中一个", reason=Reason.TASK_INVALID
        )
    if row.calendar:
        resolve_or_refuse(session, row.calendar)
        if not row.cron_expression:
            raise InvalidArgument("交易日历只能用于 Cron 表达式调度", reason=Reason.TASK_INVALID)
    config = row.config or {}
    if row.task_type in (TaskType.COMMON, TaskType.MANUAL) and not (
        config.get("command") or config.get("task_action")
    ):
        kind = "手动任务" if row.task_type == TaskType.MANUAL else "通用任务"
        raise InvalidArgument(
            f"{kind}配置中必须包含 'command' 或 'task_action' 字段", reason=Reason.TASK_INVALID
        )
    check_templates(config, "配置")  # {{ name }} must name a variable a run has
    try:
        check_task_config(row.task_type, config)  # what the executor checks before every run
    except ConfigInvalid as exc:
        raise InvalidArgument(exc.message, reason=Reason.TASK_INVALID) from None
    if row.task_type == TaskType.WORKFLOW:
        try:
            validate_workflow(session, config, row.id or 0)
        except InvalidArgument as exc:
            raise InvalidArgument(f"编排任务配置无效: {exc.message}", reason=exc.reason) from exc


def _check_run_at_ahead(row: TaskRow, now: datetime) -> None:
    if row.run_at is not None and row.run_at <= now:
        raise InvalidArgument("一次性运行时间必须晚于当前时间", reason=Reason.TASK_INVALID)


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


# ---- CRUD -------------------------------------------------------------------------------------


MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class InvalidItem:
    index: int
    error: DomainError


class InvalidBatch(DomainError):
    """Items of a batch create that break a rule; nothing of the batch was created.

    ALREADY_EXISTS when every invalid item is a taken name, else INVALID_ARGUMENT. The message names
    the first items by index ("tasks[2]: reason") and counts the rest; `items` keeps them all. An error
    travels in gRPC trailers (16 KiB at most, Chinese text percent-encoded three times over), so
    what it names is bounded by count and length: 1,000 invalid items must not turn a clear 400 into
    RESOURCE_EXHAUSTED.
    """

    def __init__(self, items: list[InvalidItem]) -> None:
        named = items[:INVALID_ITEMS_NAMED]
        described = [(f"tasks[{item.index}]", _clipped(item.error.message)) for item in named]
        shown = "；".join(f"{field}: {text}" for field, text in described)
        more = f"；另有 {len(items) - len(named)} 项" if len(items) > len(named) else ""
        names_only = all(isinstance(i.error, AlreadyExists) for i in items)
        super().__init__(
            f"批量创建未执行，{len(items)} 项无效: {shown}{more}",
            reason=Reason.TASK_NAME_TAKEN if names_only else Reason.TASK_INVALID,
        )
        self.items = items
        self.code = AlreadyExists.code if names_only else InvalidArgument.code
        # gRPC clients get the same items as field violations too.
        self.details = (
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
                    for field, text in described
                ]
            ),
        )


INVALID_ITEMS_NAMED = 10
INVALID_ITEM_CHARS = 80


def _clipped(text: str) -> str:
    return text if len(text) <= INVALID_ITEM_CHARS else text[: INVALID_ITEM_CHARS - 1] + "…"


def check_batch_size(count: int) -> None:
    if count > MAX_BATCH:
        raise InvalidArgument(f"一次最多创建{MAX_BATCH}个任务，收到{count}个", reason=Reason.TASK_INVALID)


def name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"任务名称 '{name}' 已存在", reason=Reason.TASK_NAME_TAKEN)


def new_task(
    session: Session, fields: Mapping[str, Any], actor: str, default_timezone: str, now: datetime
) -> TaskRow:
    """A valid new task row, not yet added: every rule of a create except the name's uniqueness."""
    unknown = sorted(set(fields) - EDITABLE - {"task_type"})
    if unknown:
        raise InvalidArgument(f"不支持的字段: {shown(', '.join(unknown))}", reason=Reason.TASK_INVALID)
    if "name" not in fields:
        raise InvalidArgument("任务名称不能为空", reason=Reason.TASK_INVALID)
    task_type = _as_word(TaskType, fields.get("task_type") or "", "任务类型")
    row = TaskRow(
        task_type=task_type,
        timezone=default_timezone,
        enabled=True,
        paused=False,
        config={},
        max_retries=3,
        retry_interval=60,
        timeout_seconds=0,
        concurrency_policy=ConcurrencyPolicy.FORBID,
        misfire_policy=MisfirePolicy.RUN_ONCE,
        misfire_grace_seconds=60,
        calendar=None,
        calendar_shift=0,
        calendar_holidays=HolidayPolicy.SILENT,
        schedule_anchor=now,
        created_at=now,
        updated_at=now,
        created_by=actor,
        updated_by=actor,
        tags=[],
    )
    for name, value in fields.items():
        if name != "task_type":
            _apply(row, name, value)
    _check_run_at_ahead(row, now)
    _check_rules(session, row)
    return row


def create_task(
    session: Session, fields: Mapping[str, Any], actor: str, default_timezone: str, now: datetime
) -> TaskRow:
    row = new_task(session, fields, actor, default_timezone, now)
    session.add(row)
    _flush(session, row)  # the unique index answers whether the name is taken
    return row


def create_tasks(
    session: Session,
    items: Sequence[Mapping[str, Any]],
    actor: str,
    default_timezone: str,
    now: datetime,
) -> list[TaskRow]:
    """Creates every item or none (InvalidBatch lists each invalid item with its reason).

    Each item passes the rules of create_task. Names are checked against each other in memory and
    against existing tasks by the unique index (one INSERT ... ON CONFLICT DO NOTHING for the batch).
    The rows returned are detached: they are not in the session.
    """
    check_batch_size(len(items))
    rows: list[tuple[int, TaskRow]] = []
    invalid: list[InvalidItem] = []
    first_index: dict[str, int] = {}
    for index, fields in enumerate(items):
        try:
            row = new_task(session, fields, actor, default_timezone, now)
        except DomainError as exc:
            invalid.append(InvalidItem(index, exc))
            continue
        if row.name in first_index:
            duplicate = AlreadyExists(f"任务名称 '{row.name}' 与 tasks[{first_index[row.name]}] 重复")
            invalid.append(InvalidItem(index, duplicate))
            continue
        first_index[row.name] = index
        rows.append((index, row))
    # One statement; a taken name is skipped by the unique index, not looked up first (a lookup of a
    # thousand names may scan the whole table). Run even when some items are invalid, so that the
    # error names the taken ones too; an error rolls the inserted rows back with the transaction.
    ids = insert_new(session, [row for _, row in rows])
    invalid += [InvalidItem(index, name_taken(row.name)) for index, row in rows if row.name not in ids]
    if invalid:
        raise InvalidBatch(sorted(invalid, key=lambda item: item.index))
    for _, row in rows:
        row.id = ids[row.name]
    return [row for _, row in rows]


# Rows per INSERT statement: 1,000 rows of ~25 columns stay under SQLite's 32,766 parameters.
INSERT_CHUNK = 1000


def insert_new(session: Session, rows: Sequence[TaskRow]) -> dict[str, int]:
    """Inserts valid new task rows (from `new_task`) with Core, a thousand per statement, and
    returns the id of each name inserted. A name already taken is skipped by the unique index
    (INSERT ... ON CONFLICT DO NOTHING), not looked up first: it is missing from the result. The
    rows stay outside the session (no ORM unit of work per row)."""
    ids: dict[str, int] = {}
    if not rows:
        return ids
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(rows), INSERT_CHUNK):
            ids.update(_insert_new_postgresql(session, rows[start : start + INSERT_CHUNK]))
        return ids
    statement = (
        sqlite.insert(TASKS)
        .on_conflict_do_nothing(index_elements=[TASKS.c.name])
        .returning(TASKS.c.id, TASKS.c.name)
    )
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        inserted = session.execute(statement, [_column_values(row) for row in chunk])
        ids.update((name, task_id) for task_id, name in inserted)
    return ids


def _insert_new_postgresql(session: Session, rows: Sequence[TaskRow]) -> dict[str, int]:
    """PostgreSQL: ids drawn from the table's sequence first, then one pipelined executemany of a
    short INSERT (psycopg would parse a multi-row VALUES of 25,000 parameters in Python, which
    costs more than the database's work). Only when a name is taken (the unique index refuses the
    chunk, in a savepoint) are the free ones inserted and read back by id."""
    sequence = session.scalar(select(func.pg_get_serial_sequence(TASKS.name, "id")))
    new_ids = list(
        session.scalars(select(func.nextval(sequence)).select_from(func.generate_series(1, len(rows))))
    )
    values = [{**_column_values(row), "id": task_id} for row, task_id in zip(rows, new_ids, strict=True)]
    try:
        with session.begin_nested():
            session.execute(postgresql.insert(TASKS), values)
        return {row.name: task_id for row, task_id in zip(rows, new_ids, strict=True)}
    except IntegrityError:
        pass
    session.execute(postgresql.insert(TASKS).on_conflict_do_nothing(index_elements=[TASKS.c.name]), values)
    inserted = session.execute(select(TASKS.c.name, TASKS.c.id).where(TASKS.c.id.in_(new_ids)))
    return dict(inserted.all())


_INSERTED_COLUMNS = tuple(column.key for column in TASKS.columns if column.key != "id")


def _column_values(row: TaskRow) -> dict[str, Any]:
    # The instance's own dict (what its attributes hold; None for one never set), not an
    # instrumented read per column: this runs for every row of a bulk insert.
    values = vars(row)
    return {key: values.get(key) for key in _INSERTED_COLUMNS}


def update_task(
    session: Session, task_id: int, changes: Mapping[str, Any], actor: str, now: datetime
) -> TaskRow:
    # Locked (PostgreSQL): a delete racing this update waits for it, or wins and this answers 404.
    row = session.get(TaskRow, task_id, with_for_update=True)
    if row is None:
        raise task_not_found(task_id)
    refused = sorted(set(changes) - EDITABLE)
    if refused:
        raise InvalidArgument(f"以下字段不能修改: {shown(', '.join(refused))}", reason=Reason.TASK_INVALID)
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


def editable_values(row: TaskRow) -> dict[str, Any]:
    """The fields a client sets, as JSON values (times as RFC 3339): what the audit log compares."""
    values = {name: getattr(row, name) for name in sorted(EDITABLE)}
    values["run_at"] = row.run_at.isoformat() if row.run_at is not None else None
    values["tags"] = list(row.tags or [])
    values["config"] = dict(row.config or {})
    return values


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
    row = get_task(session, task_id)
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
    tag: str = ""
    # Keyset paging by id (0: from the start); only in id order.
    after_id: int = 0


@dataclass(frozen=True, slots=True)
class LatestRun:
    time: datetime | None
    status: str


def _filtered(session: Session, query: TaskQuery) -> Select[Any]:
    statement = select(TaskRow)
    if query.task_type:
        _as_word(TaskType, query.task_type, "任务类型", Reason.FILTER_INVALID)
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


def list_tasks(session: Session, query: TaskQuery) -> tuple[list[TaskRow], int]:
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
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    column = ORDERABLE[query.order_by or "id"]
    ascending = query.order.lower() == "asc"
    ordering = column.asc() if ascending else column.desc()
    if query.after_id:  # a keyset page: the primary key's index goes straight to the cursor
        statement = statement.where(TaskRow.id > query.after_id if ascending else TaskRow.id < query.after_id)
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


def timing_of(row: TaskRow) -> Timing:
    """The task's schedule, with its trading calendar applied."""
    return Timing(
        row.cron_expression or "",
        row.interval_seconds or 0,
        row.run_at,
        row.timezone,
        row.schedule_anchor,
        # A custom calendar another replica just created and this one has not read yet: none.
        resolve(row.calendar) if row.calendar else None,
        row.calendar_shift or 0,
    )


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
