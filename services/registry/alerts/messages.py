"""Alert messages in Chinese and English: the event's fields, the default templates, own templates.

An event's fields (``payload``) are fixed when it is written to the outbox: task, run, status,
error, the time in the task's own time zone and a link to the run in the admin page. A channel
may bring its own template: Python ``str.format`` fields from ``TEMPLATE_FIELDS`` only, checked
when the channel is saved (ALERT_TEMPLATE_INVALID), so rendering at delivery cannot fail.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument, Reason

TEMPLATE_FIELDS = (
    "event",
    "event_title",
    "task_id",
    "task_name",
    "execution_id",
    "status",
    "error_message",
    "time",
    "timezone",
    "duration_seconds",
    "retry_count",
    "url",
    "calendar",
    "data_end",
    "days_left",
)
MAX_TEMPLATE_LENGTH = 4000

EVENT_TITLES: dict[str, dict[str, str]] = {
    "zh": {
        "run_failed": "任务执行失败",
        "attempt_failed": "任务本次尝试失败",
        "timeout": "任务执行超时",
        "executor_lost": "执行器失联",
        "skipped": "任务被跳过",
        "slow": "任务执行缓慢",
        "recovered": "任务已恢复",
        "calendar_data_ending": "交易日历数据即将用尽",
        "test": "测试消息",
        "digest": "告警汇总",
    },
    "en": {
        "run_failed": "Run failed",
        "attempt_failed": "Attempt failed",
        "timeout": "Run timed out",
        "executor_lost": "Executor lost",
        "skipped": "Run skipped",
        "slow": "Run was slow",
        "recovered": "Task recovered",
        "calendar_data_ending": "Trading calendar data ending",
        "test": "Test message",
        "digest": "Alert digest",
    },
}

DEFAULT_TEMPLATES = {
    "zh": (
        "任务：{task_name}（#{task_id}）\n执行：#{execution_id}，状态：{status}\n"
        "时间：{time}（{timezone}）\n耗时：{duration_seconds} 秒，重试次数：{retry_count}\n"
        "错误：{error_message}\n查看：{url}"
    ),
    "en": (
        "Task: {task_name} (#{task_id})\nRun: #{execution_id}, status: {status}\n"
        "Time: {time} ({timezone})\nDuration: {duration_seconds} s, retries: {retry_count}\n"
        "Error: {error_message}\nDetails: {url}"
    ),
}
CALENDAR_TEXT = {
    "zh": (
        "交易日历 {calendar} 的数据截至 {data_end}（还剩 {days_left} 天）。\n"
        "之后按工作日（周一至周五）执行并标记 日历数据未覆盖。请运行 data_sync_trading_calendar "
        "从发布官方日历的数据源同步，或在自定义日历中设置 data_end。\n查看：{url}"
    ),
    "en": (
        "The data of trading calendar {calendar} ends on {data_end} ({days_left} days left).\n"
        "After it every weekday (Monday to Friday) fires, marked 日历数据未覆盖. Run "
        "data_sync_trading_calendar from a provider that publishes the official calendar, or set "
        "data_end on a custom calendar.\nDetails: {url}"
    ),
}
DIGEST_TEXT = {
    "zh": "频率限制期间合并了 {count} 条告警：\n{lines}",
    "en": "{count} alerts were held back by the rate limit:\n{lines}",
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A rendered message: a title, a text, and the event's fields (the webhook's JSON body)."""

    title: str
    text: str
    fields: dict[str, Any]


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason=Reason.ALERT_TEMPLATE_INVALID)


def check_template(template: Any) -> str:
    """The template, or ALERT_TEMPLATE_INVALID naming the first problem."""
    if not isinstance(template, str) or not template.strip():
        raise _invalid("template 必须是非空字符串")
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise _invalid(f"template 最长 {MAX_TEMPLATE_LENGTH} 个字符")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise _invalid(f"template 格式错误: {exc}（字面的花括号请写成 {{{{ 和 }}}}）") from exc
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            raise _invalid(f"template 中未知的字段 {{{field}}}，可用: {', '.join(TEMPLATE_FIELDS)}")
        if spec or conversion:
            raise _invalid(f"template 字段 {{{field}}} 不支持格式说明或转换")
    return template


def _fields(payload: dict[str, Any], language: str) -> dict[str, Any]:
    fields = {name: payload.get(name, "") for name in TEMPLATE_FIELDS}
    fields["event_title"] = EVENT_TITLES[language].get(
        str(payload.get("event", "")), payload.get("event", "")
    )
    if not fields["error_message"]:
        fields["error_message"] = "-" if language == "zh" else "-"
    return fields


def render(payload: dict[str, Any], language: str = "zh", template: str = "") -> Outgoing:
    language = language if language in EVENT_TITLES else "zh"
    fields = _fields(payload, language)
    if payload.get("event") == "digest":
        text = DIGEST_TEXT[language].format(count=payload.get("count", 0), lines=payload.get("lines", ""))
    elif payload.get("event") == "calendar_data_ending" and not template:
        text = CALENDAR_TEXT[language].format(**fields)
    else:
        text = (template or DEFAULT_TEMPLATES[language]).format(**fields)
    prefix = "ZQuant 告警" if language == "zh" else "ZQuant alert"
    subject = f"[{prefix}] {fields['event_title']}"
    if payload.get("task_name"):
        subject += f": {payload['task_name']}"
    elif payload.get("calendar"):
        subject += f": {payload['calendar']}"
    return Outgoing(title=subject, text=f"{subject}\n{text}", fields=dict(payload))
