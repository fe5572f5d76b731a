"""Our cron dialect: parsing and validation, fire-time computation, and an APScheduler 3.x trigger.

Dialect (CONTRACT "Cron dialect"): `分 时 日 月 周` or `秒 分 时 日 月 周`; `*` `,` `-` `/`, names JAN-DEC and
SUN-SAT, day of week 0-7 with 0 and 7 = Sunday, `?` in 日/周, `L` (last day of month) in 日, and Vixie
cron's rule that a day matches either 日 or 周 when both are restricted.

Fire times are computed from wall-clock times in the task's zone and returned as UTC instants. A wall
time in a spring-forward gap fires at the first instant after the gap; a repeated wall time fires once,
at its first occurrence. APScheduler's own CronTrigger gets both wrong (notes/apscheduler-pitfalls.md).
"""

from __future__ import annotations

import calendar
import functools
import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger

__all__ = ["CronError", "CronSchedule", "DialectCronTrigger", "parse_cron", "validate_timezone"]

# Keeps int() far below Python's 4300-digit limit and bounds the work done on API input.
MAX_EXPRESSION_LENGTH = 1000
# A Feb 29 schedule can wait 8 years (2096 -> 2104); a schedule rarer than this counts as never firing.
SEARCH_HORIZON_DAYS = 9 * 366

_FIELD_COUNT_REASON = "需要5个字段（分 时 日 月 周）或6个字段（秒 分 时 日 月 周），实际为 {} 个"
_DIGITS = re.compile(r"[0-9]+")
# Quartz-style tokens people may try: 15W, LW, W (nearest weekday) and 5L, L (last ...).
_NEAREST_WEEKDAY = re.compile(r"[0-9]*L?W")
_LAST = re.compile(r"[0-9]*L[0-9]*")
_MIDNIGHT = time()
_ONE_SECOND = timedelta(seconds=1)


class CronError(ValueError):
    """Invalid expression.

    `field_index` is the 1-based position of the bad field as written (0 when the whole expression is
    wrong, e.g. the field count); `field_name` is 秒/分/时/日/月/周 ('' for the whole expression).
    """

    def __init__(
        self, expression: str, reason: str, field_index: int = 0, field_name: str = "", token: str = ""
    ) -> None:
        self.expression = expression
        self.reason = reason
        self.field_index = field_index
        self.field_name = field_name
        self.token = token
        if field_index:
            message = f"Cron表达式无效: 第{field_index}个字段({field_name}) '{token}': {reason}"
        else:
            message = f"Cron表达式无效: {reason}"
        super().__init__(message)

    def __reduce__(self) -> tuple[type[CronError], tuple[str, str, int, str, str]]:
        # The default reduce would call CronError(message) and fail on the missing arguments.
        return CronError, (self.expression, self.reason, self.field_index, self.field_name, self.token)


class _TokenError(Exception):
    """A bad token inside one field; parse_cron adds the expression and the field's position."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1
    )
}
_WEEKDAY_NAMES = {
    name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])
}
_SECOND = _Field("秒", 0, 59, {})
_MINUTE = _Field("分", 0, 59, {})
_HOUR = _Field("时", 0, 23, {})
_DAY = _Field("日", 1, 31, {})
_MONTH = _Field("月", 1, 12, _MONTH_NAMES)
_WEEKDAY = _Field("周", 0, 7, _WEEKDAY_NAMES)
_FIELDS = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed expression. `days_of_week` uses 0 = Sunday .. 6 = Saturday (7 is folded to 0)."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    last_day_of_month: bool
    dom_restricted: bool
    dow_restricted: bool
    # Sorted copies for bisecting, built once: hours, minutes, seconds, months.
    _sorted: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sets = (self.hours, self.minutes, self.seconds, self.months)
        object.__setattr__(self, "_sorted", tuple(tuple(sorted(values)) for values in sets))

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first fire time strictly after `after` (aware, any zone), as an aware UTC datetime.

        None when the schedule does not fire within SEARCH_HORIZON_DAYS (e.g. `0 0 30 2 *`).
        """
        instant = _as_utc(after)
        local = instant.astimezone(tz)
        if local.fold:
            # `after` is in the second pass of a repeated hour, whose wall times all fired on the
            # first pass: continue from the first wall time after the repetition.
            start = _wall_after_repetition(instant, local, tz)
        else:
            start = local.replace(tzinfo=None, microsecond=0) + _ONE_SECOND
        wall = self._next_wall_time(start)
        return None if wall is None else _wall_to_instant(wall, tz)

    def next_times(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        """Up to `count` consecutive fire times after `after` (fewer if the schedule runs out)."""
        if count < 0:
            raise ValueError("count 不能为负数")
        times: list[datetime] = []
        current: datetime | None = after
        while len(times) < count and current is not None:
            current = self.next_after(current, tz)
            if current is not None:
                times.append(current)
        return times

    def _next_wall_time(self, start: datetime) -> datetime | None:
        """The first matching naive wall time at or after `start`, looking day by day."""
        months = self._sorted[3]
        first_time = start.time()
        ordinal = start.toordinal()
        limit = ordinal + SEARCH_HORIZON_DAYS
        while ordinal <= limit:
            day = date.fromordinal(ordinal)
            if day.month not in self.months:
                later = bisect_right(months, day.month)
                if later < len(months):
                    ordinal = date(day.year, months[later], 1).toordinal()
                else:
                    ordinal = date(day.year + 1, months[0], 1).toordinal()
                first_time = _MIDNIGHT
                continue
            if self._day_matches(day):
                found = self._first_time_at_or_after(first_time)
                if found is not None:
                    return datetime.combine(day, found)
            ordinal += 1
            first_time = _MIDNIGHT
        return None

    def _day_matches(self, day: date) -> bool:
        dom_ok = day.day in self.days_of_month or (
            self.last_day_of_month and day.day == calendar.monthrange(day.year, day.month)[1]
        )
        dow_ok = day.isoweekday() % 7 in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return dom_ok or dow_ok
        # Vixie cron: otherwise a day must satisfy both (`*` and `?` accept every day).
        return dom_ok and dow_ok

    def _first_time_at_or_after(self, start: time) -> time | None:
        hours, minutes, seconds = self._sorted[:3]
        for hour in hours[bisect_left(hours, start.hour) :]:
            later_hour = hour > start.hour
            for minute in minutes[0 if later_hour else bisect_left(minutes, start.minute) :]:
                first_second = 0 if later_hour or minute > start.minute else start.second
                index = bisect_left(seconds, first_second)
                if index < len(seconds):
                    return time(hour, minute, seconds[index])
        return None


# Schedules are immutable and few distinct expressions exist: parse each once (list pages, fires).
@functools.lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronSchedule:
    """Parse and validate an expression of our dialect; raises CronError with a Chinese reason."""
    text = expression.strip()
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CronError(text, f"表达式过长（最多 {MAX_EXPRESSION_LENGTH} 个字符）")
    parts = text.split()
    if len(parts) not in (5, 6):
        raise CronError(text, _FIELD_COUNT_REASON.format(len(parts)))
    values: list[frozenset[int]] = [] if len(parts) == 6 else [frozenset({0})]
    for position, (spec, part) in enumerate(zip(_FIELDS[6 - len(parts) :], parts, strict=True), 1):
        try:
            values.append(_parse_field(part, spec))
        except _TokenError as exc:
            raise CronError(text, exc.reason, position, spec.name, exc.token) from None
    seconds, minutes, hours, days_of_month, months, days_of_week = values
    dom, dow = parts[-3], parts[-1]
    return CronSchedule(
        expression=" ".join(parts),
        seconds=seconds,
        minutes=minutes,
        hours=hours,
        days_of_month=days_of_month,
        months=months,
        days_of_week=frozenset(day % 7 for day in days_of_week),
        last_day_of_month=dom == "L",
        # Vixie cron: a field starting with `*` (also `*/n`) does not count as a restriction.
        dom_restricted=not (dom == "?" or dom.startswith("*")),
        dow_restricted=not (dow == "?" or dow.startswith("*")),
    )


def parse_firing_cron(expression: str, now: datetime) -> CronSchedule:
    """`parse_cron`, also refusing an expression that never fires (`0 0 30 2 *`): a task or preview
    with it would wait forever without a word."""
    schedule = parse_cron(expression)
    if schedule.next_after(now, ZoneInfo("UTC")) is None:
        raise CronError(schedule.expression, "表达式永远不会触发（没有任何日期同时满足日、月和周字段）")
    return schedule


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    if text == "?":
        if spec is not _DAY and spec is not _WEEKDAY:
            raise _TokenError(text, "? 只能用于日或周字段")
        return frozenset(range(spec.low, spec.high + 1))
    if text == "L":
        if spec is not _DAY:
            raise _TokenError(text, "L 只能用于日字段")
        return frozenset()
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _TokenError(text, "列表中有空项")
        values.update(_parse_item(item, spec))
    return frozenset(values)


def _parse_item(item: str, spec: _Field) -> range:
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        span = spec.high - spec.low + 1
        if not _DIGITS.fullmatch(step_text) or not 1 <= int(step_text) <= span:
            raise _TokenError(item, f"步长必须是 1-{span} 之间的整数")
        step = int(step_text)
    if base == "*":
        first, last = spec.low, spec.high
    elif "-" in base:
        start_text, _, end_text = base.partition("-")
        first, last = _parse_value(start_text, item, spec), _parse_value(end_text, item, spec)
        if first > last:
            raise _TokenError(item, f"范围起点 {first} 大于终点 {last}")
    else:
        first = _parse_value(base, item, spec)
        # `a/n` means from a to the end of the field's range, every n.
        last = spec.high if slash else first
    return range(first, last + 1, step)


def _parse_value(text: str, item: str, spec: _Field) -> int:
    if _DIGITS.fullmatch(text):
        value = int(text)
    elif text.upper() in spec.names:
        value = spec.names[text.upper()]
    else:
        raise _TokenError(item, _unknown_value_reason(text, spec))
    if not spec.low <= value <= spec.high:
        raise _TokenError(item, f"超出范围 {spec.low}-{spec.high}")
    return value


def _unknown_value_reason(text: str, spec: _Field) -> str:
    upper = text.upper()
    if not text:
        return "缺少数值"
    if "#" in text:
        return "不支持 #（第几个星期几）"
    if _NEAREST_WEEKDAY.fullmatch(upper):
        return "不支持 W（最近的工作日）"
    if _LAST.fullmatch(upper):
        return "L 只能单独用于日字段"
    if "?" in text:
        return "? 只能单独用于日或周字段"
    if spec.names:
        return f"无法识别的值 '{text}'（可用数字或 {next(iter(spec.names))} 等英文缩写）"
    return f"无法识别的值 '{text}'"


def validate_timezone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; ValueError("无效的时区: ...") when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"无效的时区: {name}") from exc


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("需要带时区的 datetime")
    return moment.astimezone(UTC)


def _first_true(low: int, high: int, predicate: Callable[[int], bool]) -> int:
    """The smallest t in (low, high] with predicate(t), for a predicate false at low, true at high."""
    while high - low > 1:
        middle = (low + high) // 2
        if predicate(middle):
            high = middle
        else:
            low = middle
    return high


def _wall_after_repetition(instant: datetime, local: datetime, tz: ZoneInfo) -> datetime:
    """The first wall time after the repeated hour that `instant` (in its second pass) lies in."""
    low = math.floor(instant.timestamp())
    # The first pass of this wall time is exactly one repetition earlier.
    repeated = round(instant.timestamp() - local.replace(fold=0).timestamp())
    end = _first_true(low, low + repeated, lambda t: datetime.fromtimestamp(t, tz).fold == 0)
    return datetime.fromtimestamp(end, tz).replace(tzinfo=None)


def _wall_to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall time: the first occurrence if repeated, the gap's end if skipped."""
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant
    # The two folds of a skipped wall time use the offsets either side of the gap, bracketing its end.
    low, high = sorted(int(wall.replace(tzinfo=tz, fold=fold).timestamp()) for fold in (0, 1))
    end = _first_true(low, high, lambda t: datetime.fromtimestamp(t, tz).replace(tzinfo=None) > wall)
    return datetime.fromtimestamp(end, UTC)


class DialectCronTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """APScheduler 3.x trigger firing on our dialect; fire times are aware UTC datetimes.

    UTC rather than the task's zone because aware datetimes sharing a tzinfo compare by wall time,
    ignoring fold, which is how APScheduler's CronTrigger goes backwards in a repeated hour.
    """

    __slots__ = ("schedule", "timezone")

    def __init__(self, schedule: CronSchedule, tz: ZoneInfo) -> None:
        self.schedule = schedule
        self.timezone = tz

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is not None:
            return self.schedule.next_after(previous_fire_time, self.timezone)
        # A fire time equal to `now` counts, as with APScheduler's CronTrigger.
        return self.schedule.next_after(_as_utc(now) - timedelta(microseconds=1), self.timezone)

    def __getstate__(self) -> dict[str, Any]:
        # Job stores pickle triggers: store the expression, re-parse on load.
        return {"expression": self.schedule.expression, "timezone": self.timezone.key}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.schedule = parse_cron(state["expression"])
        self.timezone = ZoneInfo(state["timezone"])

    def __str__(self) -> str:
        return f"cron[{self.schedule.expression!r}, timezone={self.timezone.key!r}]"

    def __repr__(self) -> str:
        return (
            f"<DialectCronTrigger (expression={self.schedule.expression!r}, timezone={self.timezone.key!r})>"
        )
