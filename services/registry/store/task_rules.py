"""The rules of a task's fields: what a valid task is, whoever writes it.

Every field a client sets is parsed here from JSON input (`apply_field`: type, range, trimming, and
the guide's message and a `Reason` when it is refused); `check_rules` then checks the fields
together (one schedule at most, a manual task has none, a calendar needs a cron, a config the
executor accepts, a workflow plan over existing tasks). `new_task` is a valid new row with a new
task's defaults. Nothing here writes: creating, updating and deleting are `tasks.py`, a batch of
creates `task_batches.py`, the list and its filters `task_listing.py`. A rule that both services
need (schedules, vocabularies, the workflow plan) lives in `services/common/` and is called from
here, never restated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from services.common.calendars import MAX_SHIFT
from services.common.cron import CronError, parse_firing_cron, validate_timezone
from services.common.errors import InvalidArgument, Reason
from services.common.input_checks import check_json, check_text, parse_rfc3339, shown
from services.common.job_config import ConfigInvalid, check_task_config
from services.common.run_params import check_templates
from services.common.schedule import Timing
from services.common.vocabulary import (
    ConcurrencyPolicy,
    HolidayPolicy,
    MisfirePolicy,
    TaskType,
    Word,
    listed,
    word_of,
)
from services.registry.models import TaskRow
from services.registry.store.calendars import resolve, resolve_or_refuse
from services.registry.store.workflows import validate_workflow

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

# Column sizes (models.py) and the limits of text fields without one.
MAX_NAME = 100
MAX_CRON = 200
MAX_TIMEZONE = 64
MAX_CALENDAR = 64
MAX_DESCRIPTION = 2000
# Tags: few and short, in characters that need no quoting in a URL query, a CSV cell or a shell.
MAX_TAGS = 10
MAX_TAG = 32
TAG_PATTERN = re.compile(r"[\w.:-]+")  # \w: letters (Chinese too), digits, underscore


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


def as_word(words: type[Word], value: Any, label: str, reason: Reason = Reason.TASK_INVALID) -> Word:
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


def apply_field(row: TaskRow, name: str, value: Any) -> None:
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
        row.concurrency_policy = as_word(ConcurrencyPolicy, value, "并发策略")
    elif name == "misfire_policy":
        row.misfire_policy = as_word(MisfirePolicy, value, "错过执行策略")
    elif name == "misfire_grace_seconds":
        row.misfire_grace_seconds = _as_int(name, value, 0, 86400, "错过执行宽限时间")
    elif name == "calendar":
        # Whether it exists: `check_rules` (it reads custom calendars).
        row.calendar = _as_line(value, "交易日历", MAX_CALENDAR, Reason.CALENDAR_UNKNOWN) or None
    elif name == "calendar_shift":
        row.calendar_shift = 0 if value is None else _as_int(name, value, -MAX_SHIFT, MAX_SHIFT, "交易日偏移")
    elif name == "calendar_holidays":
        row.calendar_holidays = as_word(HolidayPolicy, value, "非交易日处理方式")
    elif name == "tags":
        row.tags = _as_tags(value)
    elif name == "retention_days":
        row.retention_days = None if value is None else _as_int(name, value, 0, 36500, "历史保留天数")


def check_rules(session: Session, row: TaskRow) -> None:
    """Cross-field rules; the guide's messages where it has them."""
    as_word(TaskType, row.task_type, "任务类型")
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


def check_run_at_ahead(row: TaskRow, now: datetime) -> None:
    if row.run_at is not None and row.run_at <= now:
        raise InvalidArgument("一次性运行时间必须晚于当前时间", reason=Reason.TASK_INVALID)


def new_task(
    session: Session, fields: Mapping[str, Any], actor: str, default_timezone: str, now: datetime
) -> TaskRow:
    """A valid new task row, not yet added: every rule of a create except the name's uniqueness."""
    unknown = sorted(set(fields) - EDITABLE - {"task_type"})
    if unknown:
        raise InvalidArgument(f"不支持的字段: {shown(', '.join(unknown))}", reason=Reason.TASK_INVALID)
    if "name" not in fields:
        raise InvalidArgument("任务名称不能为空", reason=Reason.TASK_INVALID)
    task_type = as_word(TaskType, fields.get("task_type") or "", "任务类型")
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
            apply_field(row, name, value)
    check_run_at_ahead(row, now)
    check_rules(session, row)
    return row


def editable_values(row: TaskRow) -> dict[str, Any]:
    """The fields a client sets, as JSON values (times as RFC 3339): what the audit log compares."""
    values = {name: getattr(row, name) for name in sorted(EDITABLE)}
    values["run_at"] = row.run_at.isoformat() if row.run_at is not None else None
    values["tags"] = list(row.tags or [])
    values["config"] = dict(row.config or {})
    return values


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
