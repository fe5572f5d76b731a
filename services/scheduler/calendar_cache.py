"""The trading calendars the engine's schedules evaluate, each loaded once.

A task names a library calendar (XSHG) or a custom one, whose definition (base calendar, added and
removed dates) travels with the task in the change feed. Sessions are loaded in a worker thread the
first time a task names a calendar (or a custom calendar's definition changes: a new definition is
a new key), and every fire then evaluates them from memory: no call per fire, no wait for data.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, time, timedelta

from services.common.calendars import (
    CalendarDefinition,
    CalendarUnknown,
    TradingCalendar,
    builtin_calendar,
    derive_calendar,
)
from services.common.metrics import CALENDAR_DATA_END
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)


def _load(key: str | CalendarDefinition) -> TradingCalendar:
    """A library calendar by name, or a custom definition's sessions (blocking: the library)."""
    if isinstance(key, str):
        return builtin_calendar(key)
    return derive_calendar(builtin_calendar(key.base), key)


class CalendarCache:
    def __init__(self) -> None:
        # Library calendars by name, custom ones by definition.
        self._calendars: dict[str | CalendarDefinition, TradingCalendar] = {}

    async def of(self, event: internal_pb2.WatchSchedulerEventsResponse) -> TradingCalendar | None:
        """The sessions of the event's task's calendar; None when it names none (or one this
        scheduler's library lacks: it then fires on every day, and says so)."""
        name = event.task.calendar
        if not name:
            return None
        if event.HasField("custom_calendar"):
            custom = event.custom_calendar
            key: str | CalendarDefinition = CalendarDefinition.parse(
                custom.name, custom.base, custom.added_dates, custom.removed_dates, custom.data_end
            )
        else:
            key = name
        if key not in self._calendars:
            try:
                calendar = await asyncio.to_thread(_load, key)
            except CalendarUnknown:
                # The registry validates names: only a calendar this scheduler's library lacks.
                log.error("task names an unknown calendar; it fires on every day", extra={"calendar": name})
                return None
            self._calendars[key] = calendar
            end = datetime.combine(calendar.covered_until + timedelta(days=1), time(), tzinfo=UTC)
            CALENDAR_DATA_END.labels(name).set(end.timestamp())
        return self._calendars[key]
