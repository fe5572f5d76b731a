"""Trading calendars: on which days a task with a calendar fires. Pure rules over loaded session data.

A task may name a calendar (`"calendar": "XSHG"`, or any exchange of the `exchange-calendars`
library). Its cron expression then proposes candidate times, and the calendar decides on the
candidate's date in the task's time zone:

- ``calendar_shift`` 0 (default): the candidate fires only when its date is a session; on any other
  day it does not fire (silently by default; recorded as ``skipped`` with the reason 非交易日 when
  the task asks for it: ``calendar_holidays`` = ``record``, see ``vocabulary.HolidayPolicy``).
- ``calendar_shift`` +N: the candidate fires on the N-th session on or after its date, at the
  candidate's time of day (``0 18 1 * *`` with +1 = the first trading day of the month, +2 the
  second); -N: the N-th session on or before it (``0 18 L * *`` with -1 = the last trading day of
  the month, ``0 18 * * 0`` with -1 = the last trading day of the week). Two candidates that land on
  the same time fire once.

Session data runs out (the State Council announces each year's holidays late in the year before;
`exchange-calendars` 4.13 knows XSHG through 2026). Every calendar knows the last day its data
covers (`TradingCalendar.covered_until`). Beyond it the documented policy applies: every weekday
(Monday to Friday) counts as a session; the preview and the calendar list show where the data ends
and mark such times 日历数据未覆盖, the scheduler logs each such fire, never a silent guess. A custom
calendar (`CalendarDefinition`) adds and removes dates on a library calendar and may extend its data.

The functions here take the session data and a candidate; loading the data (the library, once per
calendar and process) is `builtin_calendar`. Nothing here is called per fire with I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Sessions are loaded from this day on; older dates are outside the data (weekday policy).
DATA_START = date(2005, 1, 1)
# How far a shift may go, in sessions (a month has at most 23).
MAX_SHIFT = 31
# Marker shown for fires beyond a calendar's data.
UNCOVERED = "日历数据未覆盖"
NON_TRADING_DAY = "非交易日"
# Fire-time searches give up after this many candidate days (a calendar with no sessions left).
MAX_SCAN_DAYS = 3700


class CalendarUnknown(ValueError):
    """A calendar name that neither the library nor the system defines."""


@dataclass(frozen=True, slots=True)
class TradingCalendar:
    """The sessions of one calendar between `covered_from` and `covered_until` (inclusive)."""

    name: str
    sessions: frozenset[date]
    covered_from: date
    covered_until: date

    def covers(self, day: date) -> bool:
        return self.covered_from <= day <= self.covered_until

    def is_session(self, day: date) -> bool:
        """A session by the data, or a weekday where the data does not reach (the documented policy)."""
        if self.covers(day):
            return day in self.sessions
        return day.weekday() < 5

    def shifted(self, day: date, shift: int) -> date | None:
        """The |shift|-th session on or after (shift > 0) / on or before (shift < 0) `day`; `day`
        itself for 0 when it is a session, else None."""
        if shift == 0:
            return day if self.is_session(day) else None
        step = timedelta(days=1 if shift > 0 else -1)
        remaining = abs(shift)
        for _ in range(MAX_SCAN_DAYS):
            if self.is_session(day):
                remaining -= 1
                if remaining == 0:
                    return day
            day += step
        return None


def previous_session(calendar: TradingCalendar | None, day: date) -> date:
    """The trading day before `day` (``{{ prev_trading_day }}``): the calendar's last session before
    it (beyond its data, the weekday policy), or without a calendar the previous weekday (Monday to
    Friday: a Monday's is the Friday before), the same rule as beyond a calendar's data."""
    before = day - timedelta(days=1)
    if calendar is not None:
        found = calendar.shifted(before, -1)
        if found is not None:
            return found
    while before.weekday() >= 5:
        before -= timedelta(days=1)
    return before


def calendar_fire_time(
    calendar: TradingCalendar, candidate: datetime, zone: ZoneInfo, shift: int
) -> datetime | None:
    """When a cron candidate fires under the calendar: itself on a session (shift 0), the shifted
    session at the same wall-clock time (shift != 0), or None (a non-session day, shift 0)."""
    local = candidate.astimezone(zone)
    day = calendar.shifted(local.date(), shift)
    if day is None:
        return None
    if day == local.date():
        return candidate
    return datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=zone)


def _start_of_next_day(moment: datetime, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    return datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=zone)


def next_calendar_fire(
    cron_next: Callable[[datetime], datetime | None],
    after: datetime,
    zone: ZoneInfo,
    calendar: TradingCalendar,
    shift: int,
) -> datetime | None:
    """The first fire strictly after `after` of a cron (`cron_next(t)`: its first candidate after t)
    under the calendar. Fire times grow with their candidates, so the first one past `after` is it;
    a day whose candidates all land before `after` (or on no session) is skipped whole."""
    # A forward shift moves candidates later: one from before `after` may land after it.
    start = after - timedelta(days=14 * shift) if shift > 0 else after
    after_day = after.astimezone(zone).date()
    candidate = cron_next(start)
    for _ in range(MAX_SCAN_DAYS * 2):
        if candidate is None:
            return None
        fire = calendar_fire_time(calendar, candidate, zone, shift)
        if fire is not None and fire > after:
            return fire
        if fire is None or fire.astimezone(zone).date() < after_day:
            candidate = cron_next(_start_of_next_day(candidate, zone) - timedelta(microseconds=1))
        else:
            candidate = cron_next(candidate)
    return None


# ---- data -------------------------------------------------------------------------------------


def builtin_names() -> list[str]:
    """The calendars `exchange-calendars` provides (canonical names, no aliases), sorted."""
    import exchange_calendars

    return sorted(exchange_calendars.get_calendar_names(include_aliases=False))


_loaded: dict[str, TradingCalendar] = {}
_loading = threading.Lock()


def loaded_calendar(name: str) -> TradingCalendar | None:
    """A library calendar if this process loaded it already (never loads)."""
    return _loaded.get(name)


def builtin_calendar(name: str) -> TradingCalendar:
    """One library calendar's sessions, loaded once per process (a few seconds the first time, the
    library's import included: call it from a worker thread). Its data ends where the library's does
    (XSHG: the last published year). Raises CalendarUnknown for a name the library does not know."""
    if (calendar := _loaded.get(name)) is not None:
        return calendar
    with _loading:
        if (calendar := _loaded.get(name)) is not None:
            return calendar
        import exchange_calendars

        if name not in exchange_calendars.get_calendar_names(include_aliases=False):
            raise CalendarUnknown(f"未知的交易日历: {name}")
        library = exchange_calendars.get_calendar(name)
        first = max(DATA_START, library.first_session.date())
        last = library.last_session.date()
        loaded = exchange_calendars.get_calendar(name, start=first.isoformat(), end=last.isoformat())
        sessions = frozenset(stamp.date() for stamp in loaded.sessions)
        calendar = TradingCalendar(name=name, sessions=sessions, covered_from=first, covered_until=last)
        _loaded[name] = calendar
        return calendar


@dataclass(frozen=True, slots=True)
class CalendarDefinition:
    """A custom calendar: a library calendar's sessions with dates added and removed (a company
    holiday, an exchange's ad-hoc closure), optionally covering more days than the library
    (`data_end`: an admin extends a calendar whose data runs out; between the library's end and it,
    weekdays are sessions unless removed)."""

    name: str
    base: str
    added: frozenset[date]
    removed: frozenset[date]
    data_end: date | None = None

    @classmethod
    def parse(
        cls, name: str, base: str, added: Iterable[str], removed: Iterable[str], data_end: str | None
    ) -> CalendarDefinition:
        """From stored or wire values: ISO dates (already validated), "" or None for no data end."""
        return cls(
            name=name,
            base=base,
            added=frozenset(date.fromisoformat(day) for day in added),
            removed=frozenset(date.fromisoformat(day) for day in removed),
            data_end=date.fromisoformat(data_end) if data_end else None,
        )


def derive_calendar(base: TradingCalendar, definition: CalendarDefinition) -> TradingCalendar:
    """The custom calendar's sessions: the base's, extended to `data_end`, plus added, minus removed."""
    covered_until = max(base.covered_until, definition.data_end or base.covered_until)
    extension = frozenset(
        base.covered_until + timedelta(days=n)
        for n in range(1, (covered_until - base.covered_until).days + 1)
        if (base.covered_until + timedelta(days=n)).weekday() < 5
    )
    sessions = (base.sessions | extension | definition.added) - definition.removed
    return TradingCalendar(
        name=definition.name, sessions=sessions, covered_from=base.covered_from, covered_until=covered_until
    )


def uncovered_note(calendar: TradingCalendar, times: list[datetime], zone: ZoneInfo) -> str:
    """The visible mark for fires beyond the calendar's data ("" when all are covered)."""
    if all(calendar.covers(moment.astimezone(zone).date()) for moment in times):
        return ""
    return (
        f"{UNCOVERED}: {calendar.name} 的数据截至 {calendar.covered_until.isoformat()}，"
        "之后按工作日（周一至周五）执行"
    )
