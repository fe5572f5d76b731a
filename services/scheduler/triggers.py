"""When a task fires: APScheduler triggers for live timing, and the planned times of a past window.

Both come from the same definitions (``services.common.schedule``: our cron dialect, anchor-based
intervals, one-time run_at, trading calendars), so a time missed while the scheduler was down is
exactly a time it would have fired. A calendar's sessions are loaded before the task is scheduled
(``Engine``), so a fire never waits for data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from services.common.calendars import TradingCalendar
from services.common.cron import DialectCronTrigger, parse_cron
from services.common.schedule import Timing, fires_on_its_own
from services.common.vocabulary import HolidayPolicy
from zquant.scheduler.v1 import task_pb2


@dataclass(frozen=True, slots=True)
class Schedule(Timing):
    """A task's timing as the scheduler runs it; equal schedules need no new job."""

    # With a calendar and no shift: fire on non-session days too, so the engine records them as
    # skipped (非交易日) instead of passing over them silently.
    record_holidays: bool = False

    @classmethod
    def of(
        cls, task: task_pb2.Task, anchor: datetime, calendar: TradingCalendar | None = None
    ) -> Schedule | None:
        """None when the task does not fire on its own (disabled, paused, manual, unscheduled).
        `calendar`: the loaded data of the task's calendar (None when it names none)."""
        run_at = task.run_at.ToDatetime(tzinfo=UTC) if task.HasField("run_at") else None
        shift = task.calendar_shift if calendar is not None else 0
        record = calendar is not None and shift == 0 and task.calendar_holidays == HolidayPolicy.RECORD
        schedule = cls(
            task.cron_expression,
            task.interval_seconds,
            run_at,
            task.timezone,
            anchor,
            calendar,
            shift,
            record,
        )
        fires = fires_on_its_own(schedule, task_type=task.task_type, enabled=task.enabled, paused=task.paused)
        return schedule if fires else None

    def is_holiday(self, planned: datetime) -> bool:
        """A fire on a day that is not a session of the task's calendar (only under record_holidays)."""
        if self.calendar is None:
            return False
        return not self.calendar.is_session(planned.astimezone(ZoneInfo(self.timezone)).date())

    def trigger(self) -> BaseTrigger:
        if self.cron_expression and self.calendar is not None and not self.record_holidays:
            return CalendarTrigger(self)
        if self.cron_expression:
            return DialectCronTrigger(parse_cron(self.cron_expression), ZoneInfo(self.timezone))
        if self.interval_seconds:
            # First fire one interval after the anchor (enable / schedule change), then every interval.
            start = self.anchor + timedelta(seconds=self.interval_seconds)
            return IntervalTrigger(seconds=self.interval_seconds, start_date=start, timezone=UTC)
        assert self.run_at is not None
        return DateTrigger(run_date=self.run_at, timezone=UTC)


class CalendarTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """A cron schedule under a trading calendar: its fire times are `Timing.next_after`'s."""

    __slots__ = ("timing",)

    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is not None:
            return self.timing.next_after(previous_fire_time)
        # A fire time equal to `now` counts, as with the cron trigger.
        return self.timing.next_after(now.astimezone(UTC) - timedelta(microseconds=1))


def dedup_key(task_id: int, planned: datetime) -> str:
    """The database-unique key of a scheduled run: the same in every scheduler and after restarts."""
    return f"s:{task_id}:{planned.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
