"""When a task fires on its own: the rules the registry (next run time) and the scheduler (live
triggers, missed times) share. Pure, no I/O.

A task fires on its own when it is enabled, not paused, not a manual task, and has one of three
schedules: a cron expression (our dialect, in the task's time zone; with a trading calendar, only
on its sessions or shifted onto them, see ``services.common.calendars``), an interval, or a one-time
``run_at``. Interval schedules fire at ``anchor + k * interval`` for k >= 1, in elapsed time (no
wall clock, so daylight saving changes nothing); the anchor moves only when the schedule is
redefined or the task is enabled, so restarts and manual triggers keep the phase.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from services.common.calendars import TradingCalendar, next_calendar_fire
from services.common.cron import parse_cron
from services.common.vocabulary import TaskType


def next_interval_time(anchor: datetime, interval_seconds: int, after: datetime) -> datetime:
    """The first fire time of an interval schedule strictly after `after` (never the anchor)."""
    step = timedelta(seconds=interval_seconds)
    periods = max(0, (after - anchor) // step) + 1
    return anchor + periods * step


def interval_times_between(
    anchor: datetime, interval_seconds: int, after: datetime, until: datetime, limit: int
) -> tuple[list[datetime], int]:
    """Fire times of an interval schedule in (after, until], oldest first, at most `limit` of the
    newest; plus how many older ones were left out. Exact: timedelta arithmetic, no floats."""
    step = timedelta(seconds=interval_seconds)
    first = max(1, (after - anchor) // step + 1)
    last = (until - anchor) // step
    if last < first:
        return [], 0
    newest_first = max(first, last - limit + 1)
    return [anchor + k * step for k in range(newest_first, last + 1)], newest_first - first


@dataclass(frozen=True, slots=True)
class Timing:
    """The parts of a task that decide its fire times; exactly one of the three schedules is set."""

    cron_expression: str
    interval_seconds: int
    run_at: datetime | None
    timezone: str
    anchor: datetime
    # Applies to cron schedules only (validation refuses it with the others).
    calendar: TradingCalendar | None = None
    calendar_shift: int = 0

    def next_after(self, moment: datetime) -> datetime | None:
        """The first fire time strictly after `moment`; None when there is none (a past run_at)."""
        if self.cron_expression:
            schedule = parse_cron(self.cron_expression)
            zone = ZoneInfo(self.timezone)
            if self.calendar is not None:
                return next_calendar_fire(
                    lambda after: schedule.next_after(after, zone),
                    moment,
                    zone,
                    self.calendar,
                    self.calendar_shift,
                )
            return schedule.next_after(moment, zone)
        if self.interval_seconds:
            return next_interval_time(self.anchor, self.interval_seconds, moment)
        if self.run_at is not None and self.run_at > moment:
            return self.run_at
        return None

    def planned_between(self, after: datetime, until: datetime, limit: int) -> tuple[list[datetime], int]:
        """Fire times in (after, until], oldest first, at most `limit` of the newest; plus how many
        older ones were left out."""
        if self.cron_expression:
            times: list[datetime] = []
            count = 0
            moment = self.next_after(after)
            while moment is not None and moment <= until:
                times.append(moment)
                count += 1
                if len(times) > limit:
                    times.pop(0)
                moment = self.next_after(moment)
            return times, count - len(times)
        if self.interval_seconds:
            return interval_times_between(self.anchor, self.interval_seconds, after, until, limit)
        if self.run_at is not None and after < self.run_at <= until:
            return [self.run_at], 0
        return [], 0


def planned_times_on_dates(
    timing: Timing,
    first: date,
    last: date,
    limit: int,
    keep: Callable[[datetime], bool] | None = None,
) -> list[datetime] | None:
    """The fire times whose date in the task's zone lies in [first, last] (a backfill's range),
    oldest first, that `keep` keeps (e.g. a trading calendar's filter); None when there are more
    than `limit` of them (the caller refuses the range rather than cut it short)."""
    zone = ZoneInfo(timing.timezone)
    start = datetime.combine(first, time(), zone).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), zone).astimezone(UTC)
    if timing.interval_seconds and timing.anchor >= start:
        # The interval's grid extends into the past too (a range before the task was created).
        step = timedelta(seconds=timing.interval_seconds)
        timing = replace(timing, anchor=timing.anchor - ((timing.anchor - start) // step + 1) * step)
    times: list[datetime] = []
    moment = timing.next_after(start - timedelta(microseconds=1))
    while moment is not None and moment < end:
        if keep is None or keep(moment):
            if len(times) == limit:
                return None
            times.append(moment)
        moment = timing.next_after(moment)
    return times


def fires_on_its_own(timing: Timing, *, task_type: str, enabled: bool, paused: bool) -> bool:
    """False for a task that runs only when triggered: disabled, paused, a manual task, or no
    schedule at all."""
    if not enabled or paused or task_type == TaskType.MANUAL:
        return False
    return bool(timing.cron_expression or timing.interval_seconds or timing.run_at is not None)
