"""Trading calendars against the real XSHG sessions of 2024-2026 (from exchange-calendars): a cron
with a calendar fires exactly on the sessions, shifts land on the N-th session before / after, and
beyond the data every weekday fires, marked 日历数据未覆盖."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.calendars import (
    CalendarDefinition,
    CalendarUnknown,
    SyncedSessions,
    TradingCalendar,
    builtin_calendar,
    calendar_fire_time,
    combined,
    derive_calendar,
    previous_session,
    synced_definition,
    uncovered_note,
)
from services.common.schedule import Timing

SHANGHAI = ZoneInfo("Asia/Shanghai")
ANCHOR = datetime(2023, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def xshg() -> TradingCalendar:
    return builtin_calendar("XSHG")


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def fire_days(timing: Timing, first: date, last: date) -> list[date]:
    """The local dates of every fire between the two days (inclusive)."""
    after = datetime.combine(first, datetime.min.time(), tzinfo=SHANGHAI) - timedelta(microseconds=1)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=SHANGHAI)
    times, left_out = timing.planned_between(after, until, 10_000)
    assert left_out == 0
    return [moment.astimezone(SHANGHAI).date() for moment in times]


def on_calendar(expression: str, calendar: TradingCalendar, shift: int = 0) -> Timing:
    return Timing(expression, 0, None, "Asia/Shanghai", ANCHOR, calendar, shift)


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_a_daily_1800_cron_on_xshg_fires_on_every_session_of_the_year_and_on_no_other_day(
    xshg: TradingCalendar, year: int
) -> None:
    timing = on_calendar("0 18 * * *", xshg)
    first, last = date(year, 1, 1), date(year, 12, 31)
    fired = fire_days(timing, first, last)
    assert fired == [day for day in days(first, last) if day in xshg.sessions]
    # Every fire at 18:00 Shanghai time.
    after = datetime(year, 1, 1, tzinfo=SHANGHAI)
    times, _ = timing.planned_between(after, after + timedelta(days=40), 100)
    assert {(t.astimezone(SHANGHAI).hour, t.astimezone(SHANGHAI).minute) for t in times} == {(18, 0)}


def test_the_sessions_are_the_real_ones_spring_festival_national_day_and_make_up_saturdays_closed(
    xshg: TradingCalendar,
) -> None:
    fired = set(fire_days(on_calendar("0 18 * * *", xshg), date(2024, 1, 1), date(2026, 12, 31)))
    closed = [
        *days(date(2024, 2, 9), date(2024, 2, 18)),  # Spring Festival 2024
        date(2024, 2, 4),  # make-up working Sunday before it: the exchange stays closed
        *days(date(2024, 10, 1), date(2024, 10, 7)),  # National Day 2024
        date(2024, 9, 29),  # make-up working Sunday
        date(2024, 10, 12),  # make-up working Saturday
        *days(date(2025, 1, 28), date(2025, 2, 4)),  # Spring Festival 2025
        date(2025, 1, 26),  # make-up working Sunday
        date(2025, 2, 8),  # make-up working Saturday
        *days(date(2025, 10, 1), date(2025, 10, 8)),  # National Day 2025
        date(2025, 10, 11),  # make-up working Saturday
        date(2026, 1, 1),  # New Year 2026
    ]
    assert not fired & set(closed)
    opened = [date(2024, 2, 8), date(2024, 2, 19), date(2024, 10, 8), date(2025, 2, 5), date(2025, 10, 9)]
    assert set(opened) <= fired
    assert len([day for day in fired if day.year == 2024]) == 242


def test_a_fire_asked_for_during_a_holiday_is_the_first_session_after_it(xshg: TradingCalendar) -> None:
    timing = on_calendar("0 18 * * *", xshg)
    during_spring_festival = datetime(2025, 1, 29, 12, 0, tzinfo=SHANGHAI)
    assert timing.next_after(during_spring_festival) == datetime(2025, 2, 5, 18, 0, tzinfo=SHANGHAI)


def test_a_shift_of_plus_one_on_the_first_of_the_month_is_the_first_trading_day_of_each_month(
    xshg: TradingCalendar,
) -> None:
    fired = fire_days(on_calendar("0 18 1 * *", xshg, shift=1), date(2024, 1, 1), date(2024, 12, 31))
    firsts = [min(d for d in xshg.sessions if d.year == 2024 and d.month == m) for m in range(1, 13)]
    assert fired == firsts
    assert fired[0] == date(2024, 1, 2)  # 1 January is a holiday
    assert fired[4] == date(2024, 5, 6)  # Labour Day holiday 1-5 May
    assert fired[9] == date(2024, 10, 8)  # National Day 1-7 October


def test_a_shift_of_minus_one_on_sunday_is_the_last_trading_day_of_each_week(xshg: TradingCalendar) -> None:
    fired = fire_days(on_calendar("0 15 * * 0", xshg, shift=-1), date(2024, 9, 1), date(2024, 10, 31))
    assert date(2024, 9, 30) in fired  # the week of 30 Sep: Monday, then the National Day holiday
    assert date(2024, 10, 6) not in fired
    for day in fired:
        week = [day + timedelta(days=n) for n in range(1, 7 - day.weekday())]
        assert day in xshg.sessions and not any(later in xshg.sessions for later in week)


def test_a_shift_of_minus_one_on_the_last_day_is_the_last_trading_day_of_each_month(
    xshg: TradingCalendar,
) -> None:
    fired = fire_days(on_calendar("0 18 L * *", xshg, shift=-1), date(2025, 1, 1), date(2025, 12, 31))
    assert fired == [max(d for d in xshg.sessions if d.year == 2025 and d.month == m) for m in range(1, 13)]
    assert fired[8] == date(2025, 9, 30)


def test_two_cron_times_landing_on_the_same_session_fire_once() -> None:
    weekdays = frozenset(d for d in days(date(2025, 1, 1), date(2025, 12, 31)) if d.weekday() < 5)
    calendar = TradingCalendar("WEEKDAYS", weekdays, date(2025, 1, 1), date(2025, 12, 31))
    fired = fire_days(on_calendar("0 18 * * 5,6,0", calendar, shift=-1), date(2025, 6, 1), date(2025, 6, 30))
    assert fired == [d for d in days(date(2025, 6, 1), date(2025, 6, 30)) if d.weekday() == 4]


def test_beyond_the_data_every_weekday_fires_and_the_preview_is_marked_uncovered(
    xshg: TradingCalendar,
) -> None:
    assert xshg.covered_until == date(2026, 12, 31)
    timing = on_calendar("0 18 * * *", xshg)
    fired = fire_days(timing, date(2027, 1, 1), date(2027, 1, 31))
    assert fired == [d for d in days(date(2027, 1, 1), date(2027, 1, 31)) if d.weekday() < 5]
    times, _ = timing.planned_between(
        datetime(2027, 1, 1, tzinfo=SHANGHAI), datetime(2027, 1, 9, tzinfo=UTC), 9
    )
    assert uncovered_note(xshg, times, SHANGHAI).startswith("日历数据未覆盖")
    covered, _ = timing.planned_between(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 9, tzinfo=UTC), 9)
    assert uncovered_note(xshg, covered, SHANGHAI) == ""


def test_a_candidate_on_a_holiday_has_no_fire_time_without_a_shift(xshg: TradingCalendar) -> None:
    national_day = datetime(2024, 10, 2, 18, 0, tzinfo=SHANGHAI)
    assert calendar_fire_time(xshg, national_day, SHANGHAI, 0) is None
    assert calendar_fire_time(xshg, national_day, SHANGHAI, 1) == datetime(
        2024, 10, 8, 18, 0, tzinfo=SHANGHAI
    )
    assert calendar_fire_time(xshg, national_day, SHANGHAI, -1) == datetime(
        2024, 9, 30, 18, 0, tzinfo=SHANGHAI
    )


def test_an_unknown_calendar_is_refused_by_name() -> None:
    with pytest.raises(CalendarUnknown, match="NOPE"):
        builtin_calendar("NOPE")


def test_the_previous_trading_day_is_the_calendars_last_session_before_the_day(
    xshg: TradingCalendar,
) -> None:
    # After National Day week 2024 (1-7 October closed; Sunday 29 September and Saturday 12 October
    # were make-up working days, on which the exchange stays closed).
    assert previous_session(xshg, date(2024, 10, 8)) == date(2024, 9, 30)
    assert previous_session(xshg, date(2024, 10, 14)) == date(2024, 10, 11)
    # Spring Festival 2025 (28 January to 4 February closed).
    assert previous_session(xshg, date(2025, 2, 5)) == date(2025, 1, 27)
    # Beyond the data: the weekday policy (New Year's Day 2027 is a Friday, so it counts).
    assert previous_session(xshg, date(2027, 1, 1)) == date(2026, 12, 31)
    assert previous_session(xshg, date(2027, 1, 4)) == date(2027, 1, 1)
    assert previous_session(xshg, date(2027, 1, 11)) == date(2027, 1, 8)


def test_without_a_calendar_the_previous_trading_day_is_the_previous_weekday() -> None:
    assert previous_session(None, date(2024, 1, 8)) == date(2024, 1, 5)  # Monday -> Friday
    assert previous_session(None, date(2024, 1, 7)) == date(2024, 1, 5)  # Sunday -> Friday
    assert previous_session(None, date(2024, 1, 10)) == date(2024, 1, 9)


# ---- synced sessions (data_sync_trading_calendar) ---------------------------------------------


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def test_synced_sessions_travel_compactly_in_a_result_and_come_back_the_same() -> None:
    sessions = [day for day in days_between(date(2027, 1, 1), date(2027, 1, 31)) if day.weekday() < 5]
    sessions.remove(date(2027, 1, 1))
    sessions.append(date(2027, 1, 9))  # a make-up Saturday that trades
    synced = SyncedSessions.of_sessions("XSHG", date(2027, 1, 1), date(2027, 1, 31), sessions)
    fields = synced.result_fields()
    assert (fields["holidays"], fields["weekend_sessions"]) == (["2027-01-01"], ["2027-01-09"])
    assert SyncedSessions.from_result(fields) == synced
    assert [
        day for day in days_between(date(2027, 1, 1), date(2027, 1, 31)) if synced.session(day)
    ] == sorted(sessions)
    for bad in (
        {**fields, "holidays": ["2027-02-01"]},
        {**fields, "end_date": "2026-12-01"},
        {"calendar": "X"},
    ):
        with pytest.raises(ValueError):
            SyncedSessions.from_result(bad)


def test_a_newer_sync_replaces_the_sessions_of_its_own_range_and_joins_ranges_that_touch() -> None:
    january = SyncedSessions.of_sessions("XSHG", date(2027, 1, 1), date(2027, 1, 31), [])  # all closed
    later = SyncedSessions.of_sessions(
        "XSHG", date(2027, 1, 15), date(2027, 2, 28), days_between(date(2027, 1, 15), date(2027, 2, 28))
    )
    merged = january.merged(later)
    assert merged.ranges == ((date(2027, 1, 1), date(2027, 2, 28)),)
    assert merged.session(date(2027, 1, 4)) is False and merged.session(date(2027, 1, 18)) is True
    apart = january.merged(SyncedSessions.of_sessions("XSHG", date(2027, 6, 1), date(2027, 6, 30), []))
    assert apart.ranges == ((date(2027, 1, 1), date(2027, 1, 31)), (date(2027, 6, 1), date(2027, 6, 30)))
    assert apart.session(date(2027, 3, 1)) is None


def test_synced_data_from_the_day_after_the_data_end_extends_the_calendar_with_the_providers_holidays(
    xshg: TradingCalendar,
) -> None:
    assert xshg.covered_until == date(2026, 12, 31)
    holidays = {date(2027, 1, 1), date(2027, 2, 8)}
    sessions = [day for day in days_between(date(2027, 1, 1), date(2027, 3, 31)) if day.weekday() < 5]
    synced = SyncedSessions.of_sessions(
        "XSHG", date(2027, 1, 1), date(2027, 3, 31), [day for day in sessions if day not in holidays]
    )
    extended = derive_calendar(xshg, synced_definition(xshg, synced))
    assert extended.covered_until == date(2027, 3, 31)
    assert not extended.is_session(date(2027, 1, 1)) and not extended.is_session(date(2027, 2, 8))
    assert extended.is_session(date(2027, 1, 4))
    assert uncovered_note(extended, [datetime(2027, 3, 31, 10, tzinfo=UTC)], SHANGHAI) == ""
    assert extended.sessions & set(days_between(date(2024, 1, 1), date(2026, 12, 31))) == {
        day for day in xshg.sessions if date(2024, 1, 1) <= day <= date(2026, 12, 31)
    }
    # A range that starts after a gap cannot move the end: the gap would be a guess.
    gapped = SyncedSessions.of_sessions("XSHG", date(2027, 2, 1), date(2027, 3, 31), sessions)
    assert derive_calendar(xshg, synced_definition(xshg, gapped)).covered_until == date(2026, 12, 31)
    # A custom calendar on XSHG gets the synced data, its own dates winning.
    custom = CalendarDefinition("CO", "XSHG", frozenset({date(2027, 1, 1)}), frozenset({date(2027, 1, 4)}))
    company = derive_calendar(xshg, combined(custom, synced_definition(xshg, synced)))
    assert company.covered_until == date(2027, 3, 31)
    assert company.is_session(date(2027, 1, 1)) and not company.is_session(date(2027, 1, 4))
    assert not company.is_session(date(2027, 2, 8)) and company.is_session(date(2027, 1, 5))
