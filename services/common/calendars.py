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

`data_sync_trading_calendar` refreshes a library calendar from a provider that publishes the
official calendar (`SyncedSessions`: the ranges it covered, its holidays on weekdays and its
weekend sessions). The registry stores what each successful run fetched and turns it into a
definition over the library calendar (`synced_definition`): within the synced ranges the provider's
sessions replace the library's, and a range that starts by the day after the data's end moves the
end. Every calendar built on that library calendar gets it too (`combined`), and the scheduler
receives it with the tasks, exactly like an admin's change to a custom calendar.

The functions here take the session data and a candidate; loading the data (the library, once per
calendar and process) is `builtin_calendar`. Nothing here is called per fire with I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
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


def combined(custom: CalendarDefinition, synced: CalendarDefinition) -> CalendarDefinition:
    """A custom calendar on a library calendar with synced data (`synced`, a definition over that
    library calendar), as one definition over the library: the custom's own added and removed
    dates win over the synced ones, the later data end counts."""
    ends = [end for end in (custom.data_end, synced.data_end) if end is not None]
    return CalendarDefinition(
        name=custom.name,
        base=custom.base,
        added=(synced.added - custom.removed) | custom.added,
        removed=(synced.removed - custom.added) | custom.removed,
        data_end=max(ends) if ends else None,
    )


# At most this many days a synced range may span, and dates listed in a run's result.
MAX_SYNCED_DAYS = 366 * 30
MAX_SYNCED_DATES = 20_000


@dataclass(frozen=True, slots=True)
class SyncedSessions:
    """A calendar's sessions as a provider published them (`data_sync_trading_calendar`): over each
    of `ranges` (inclusive, sorted, disjoint and not adjacent) every weekday is a session except
    those in `closed` (holidays), and the weekend days in `opened` are sessions too. Compact: a
    year is one range and a dozen or two dates, whatever the calendar."""

    name: str
    ranges: tuple[tuple[date, date], ...]
    closed: frozenset[date]
    opened: frozenset[date]

    @classmethod
    def of_sessions(cls, name: str, start: date, end: date, sessions: Iterable[date]) -> SyncedSessions:
        """The sessions a provider gave for `start`..`end`."""
        within = {day for day in sessions if start <= day <= end}
        days = (start + timedelta(days=n) for n in range((end - start).days + 1))
        closed = frozenset(day for day in days if day.weekday() < 5 and day not in within)
        opened = frozenset(day for day in within if day.weekday() >= 5)
        return cls(name=name, ranges=((start, end),), closed=closed, opened=opened)

    def session(self, day: date) -> bool | None:
        """Whether `day` is a session by this data; None outside its ranges."""
        if not any(first <= day <= last for first, last in self.ranges):
            return None
        return day in self.opened or (day.weekday() < 5 and day not in self.closed)

    def merged(self, newer: SyncedSessions) -> SyncedSessions:
        """This data with `newer` laid over it: within newer's ranges newer's sessions count."""

        def outside(days: frozenset[date]) -> frozenset[date]:
            return frozenset(day for day in days if newer.session(day) is None)

        spans = sorted(self.ranges + newer.ranges)
        ranges: list[tuple[date, date]] = []
        for first, last in spans:
            if ranges and first <= ranges[-1][1] + timedelta(days=1):
                ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
            else:
                ranges.append((first, last))
        return SyncedSessions(
            name=self.name,
            ranges=tuple(ranges),
            closed=outside(self.closed) | newer.closed,
            opened=outside(self.opened) | newer.opened,
        )

    def result_fields(self) -> dict[str, object]:
        """How a run's result carries it (`calendar`, `start_date`, `end_date`, `holidays`,
        `weekend_sessions`); one range only, as one run fetches."""
        (first, last), *_ = self.ranges
        return {
            "calendar": self.name,
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
            "holidays": sorted(day.isoformat() for day in self.closed),
            "weekend_sessions": sorted(day.isoformat() for day in self.opened),
        }

    @classmethod
    def from_result(cls, result: Mapping[str, object]) -> SyncedSessions:
        """What `result_fields` wrote; ValueError when anything is missing or out of place."""
        name, start, end = result.get("calendar"), result.get("start_date"), result.get("end_date")
        holidays, weekend = result.get("holidays"), result.get("weekend_sessions")
        if not (isinstance(name, str) and isinstance(start, str) and isinstance(end, str)):
            raise ValueError("calendar, start_date and end_date must be strings")
        if not (isinstance(holidays, list) and isinstance(weekend, list)):
            raise ValueError("holidays and weekend_sessions must be lists")
        if len(holidays) + len(weekend) > MAX_SYNCED_DATES:
            raise ValueError("too many dates")
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        if not timedelta(0) <= last - first <= timedelta(days=MAX_SYNCED_DAYS):
            raise ValueError(f"bad range {first}..{last}")
        closed = frozenset(date.fromisoformat(str(day)) for day in holidays)
        opened = frozenset(date.fromisoformat(str(day)) for day in weekend)
        if any(not first <= day <= last or day.weekday() >= 5 for day in closed):
            raise ValueError("a holiday outside the range or not on a weekday")
        if any(not first <= day <= last or day.weekday() < 5 for day in opened):
            raise ValueError("a weekend session outside the range or not on a weekend")
        return cls(name=name, ranges=((first, last),), closed=closed, opened=opened)


def synced_definition(library: TradingCalendar, synced: SyncedSessions) -> CalendarDefinition:
    """The synced data as a definition over the library calendar (name and base both its name):
    the data's end moves over every range that starts by the day after it, and within the ranges
    up to that end the provider's sessions replace the library's (or the weekday extension's)."""
    until = library.covered_until
    for first, last in synced.ranges:  # sorted
        if first <= until + timedelta(days=1):
            until = max(until, last)
    added: set[date] = set()
    removed: set[date] = set()
    for first, last in synced.ranges:
        day = max(first, library.covered_from)
        while day <= min(last, until):
            known = day in library.sessions if day <= library.covered_until else day.weekday() < 5
            if synced.session(day) and not known:
                added.add(day)
            elif known and not synced.session(day):
                removed.add(day)
            day += timedelta(days=1)
    return CalendarDefinition(
        name=library.name,
        base=library.name,
        added=frozenset(added),
        removed=frozenset(removed),
        data_end=until if until > library.covered_until else None,
    )


def uncovered_note(calendar: TradingCalendar, times: list[datetime], zone: ZoneInfo) -> str:
    """The visible mark for fires beyond the calendar's data ("" when all are covered)."""
    if all(calendar.covers(moment.astimezone(zone).date()) for moment in times):
        return ""
    return (
        f"{UNCOVERED}: {calendar.name} 的数据截至 {calendar.covered_until.isoformat()}，"
        "之后按工作日（周一至周五）执行"
    )
