"""When a task fires: APScheduler triggers for live timing, and the planned times of a past window.

Both come from the same definitions (our cron dialect, anchor-based intervals, one-time run_at), so a
time missed while the scheduler was down is exactly a time it would have fired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from services.common.cron import DialectCronTrigger, parse_cron
from zquant.scheduler.v1 import task_pb2


@dataclass(frozen=True, slots=True)
class Schedule:
    """The parts of a task that decide its fire times; equal schedules need no new job."""

    cron_expression: str
    interval_seconds: int
    run_at: datetime | None
    timezone: str
    anchor: datetime

    @classmethod
    def of(cls, task: task_pb2.Task, anchor: datetime) -> Schedule | None:
        """None when the task does not fire on its own (disabled, paused, manual, unscheduled)."""
        if not task.enabled or task.paused or task.task_type == "manual_task":
            return None
        run_at = task.run_at.ToDatetime(tzinfo=UTC) if task.HasField("run_at") else None
        if not (task.cron_expression or task.interval_seconds or run_at):
            return None
        return cls(task.cron_expression, task.interval_seconds, run_at, task.timezone, anchor)

    def trigger(self) -> BaseTrigger:
        if self.cron_expression:
            return DialectCronTrigger(parse_cron(self.cron_expression), ZoneInfo(self.timezone))
        if self.interval_seconds:
            # First fire one interval after the anchor (enable / schedule change), then every interval.
            start = self.anchor + timedelta(seconds=self.interval_seconds)
            return IntervalTrigger(seconds=self.interval_seconds, start_date=start, timezone=UTC)
        assert self.run_at is not None
        return DateTrigger(run_date=self.run_at, timezone=UTC)

    def planned_between(self, after: datetime, until: datetime, limit: int) -> tuple[list[datetime], int]:
        """Fire times in (after, until], oldest first, at most `limit` of the newest; plus how many
        older ones were left out."""
        times: list[datetime] = []
        if self.cron_expression:
            schedule = parse_cron(self.cron_expression)
            zone = ZoneInfo(self.timezone)
            count = 0
            moment = schedule.next_after(after, zone)
            while moment is not None and moment <= until:
                times.append(moment)
                count += 1
                if len(times) > limit:
                    times.pop(0)
                moment = schedule.next_after(moment, zone)
            return times, count - len(times)
        if self.interval_seconds:
            step = self.interval_seconds
            first = max(1, math.floor((after - self.anchor).total_seconds() / step) + 1)
            last = math.floor((until - self.anchor).total_seconds() / step)
            if last < first:
                return [], 0
            newest_first = max(first, last - limit + 1)
            times = [self.anchor + timedelta(seconds=k * step) for k in range(newest_first, last + 1)]
            # Float division may be off by one at exact boundaries; keep the window strict.
            times = [t for t in times if after < t <= until]
            return times, newest_first - first
        if self.run_at is not None and after < self.run_at <= until:
            return [self.run_at], 0
        return [], 0


def dedup_key(task_id: int, planned: datetime) -> str:
    """The database-unique key of a scheduled run: the same in every scheduler and after restarts."""
    return f"s:{task_id}:{planned.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"
