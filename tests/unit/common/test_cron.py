"""Tests for the cron dialect. Expected times come from the calendar (weekday(), monthrange) or from a
brute-force clock walk, never from the module's own output."""

from __future__ import annotations

import calendar
import pickle
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from services.common.cron import CronError, DialectCronTrigger, parse_cron, validate_timezone

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
ZONE_UTC = ZoneInfo("UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int, minute: int, tz: ZoneInfo, second: int = 0) -> datetime:
    """A wall time that exists exactly once, as a UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=tz).astimezone(UTC)


def days(start: date, count: int) -> list[date]:
    return [start + timedelta(days=i) for i in range(count)]


def fire_dates(expression: str, start: date, count: int, tz: ZoneInfo = SHANGHAI) -> list[date]:
    """Local dates on which a once-a-day expression fires within `count` days from `start`."""
    after = datetime(start.year, start.month, start.day, tzinfo=tz) - timedelta(seconds=1)
    end = datetime.combine(start + timedelta(days=count), datetime.min.time(), tzinfo=tz)
    times = parse_cron(expression).next_times(after, tz, count + 1)
    return [t.astimezone(tz).date() for t in times if t < end]


# --- weekdays, names, fields -------------------------------------------------------------------------


def test_weekdays_from_saturday_in_shanghai() -> None:
    saturday = date(2026, 11, 28)
    assert saturday.weekday() == 5
    after = datetime(2026, 11, 28, 10, 0, tzinfo=SHANGHAI)
    times = parse_cron("0 9 * * 1-5").next_times(after, SHANGHAI, 5)
    expected_days = [d for d in days(saturday, 10) if d.weekday() < 5][:5]
    assert expected_days[0] == date(2026, 11, 30) and expected_days[-1] == date(2026, 12, 4)
    assert times == [local(d.year, d.month, d.day, 9, 0, SHANGHAI) for d in expected_days]
    assert [t.hour for t in times] == [1] * 5  # 09:00 +08:00
    assert all(t.tzinfo is UTC for t in times)

    four_weeks = days(saturday, 28)
    assert fire_dates("0 9 * * 1-5", saturday, 28) == [d for d in four_weeks if d.weekday() < 5]


@pytest.mark.parametrize("weekday", ["0", "7", "SUN", "sun", "Sun"])
def test_sunday_spellings(weekday: str) -> None:
    start = date(2027, 1, 1)
    sundays = [d for d in days(start, 60) if d.weekday() == 6]
    assert fire_dates(f"0 0 * * {weekday}", start, 60) == sundays
    assert parse_cron(f"0 0 * * {weekday}").days_of_week == frozenset({0})


def test_weekday_names_and_ranges_equal_numbers() -> None:
    assert parse_cron("0 0 * * MON-FRI").days_of_week == parse_cron("0 0 * * 1-5").days_of_week
    assert parse_cron("0 0 * * mon,wed,FRI").days_of_week == frozenset({1, 3, 5})
    assert parse_cron("0 0 * * 5-7").days_of_week == frozenset({5, 6, 0})
    start = date(2027, 5, 1)
    assert fire_dates("0 0 * * MON-FRI", start, 30) == fire_dates("0 0 * * 1-5", start, 30)


def test_month_names() -> None:
    schedule = parse_cron("0 0 1 JAN,jul *")
    assert schedule.months == frozenset({1, 7})
    assert parse_cron("0 0 1 jan-MAR *").months == frozenset({1, 2, 3})
    times = schedule.next_times(utc("2027-02-01T00:00:00"), SHANGHAI, 3)
    assert [t.astimezone(SHANGHAI).date() for t in times] == [
        date(2027, 7, 1),
        date(2028, 1, 1),
        date(2028, 7, 1),
    ]


def test_six_field_seconds() -> None:
    after = utc("2027-06-01T10:20:00")
    times = parse_cron("*/15 * * * * *").next_times(after - timedelta(seconds=1), ZONE_UTC, 5)
    assert [t.second for t in times] == [0, 15, 30, 45, 0]
    assert times[0] == after and times[-1] == after + timedelta(minutes=1)

    times = parse_cron("30 0 18 * * *").next_times(datetime(2027, 6, 1, tzinfo=SHANGHAI), SHANGHAI, 2)
    assert times == [
        local(2027, 6, 1, 18, 0, SHANGHAI, second=30),
        local(2027, 6, 2, 18, 0, SHANGHAI, second=30),
    ]


def test_five_fields_fire_at_second_zero() -> None:
    assert parse_cron("0 9 * * *").seconds == frozenset({0})
    assert parse_cron("  0\t9 *  * *  ").expression == "0 9 * * *"


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("0/15", {0, 15, 30, 45}),
        ("*/15", {0, 15, 30, 45}),
        ("5/20", {5, 25, 45}),
        ("10-30/10", {10, 20, 30}),
        ("1,2,50-52", {1, 2, 50, 51, 52}),
        ("59", {59}),
    ],
)
def test_minute_steps_and_lists(field: str, values: set[int]) -> None:
    assert parse_cron(f"{field} * * * *").minutes == frozenset(values)


@pytest.mark.parametrize(
    ("year", "month", "last"),
    [(2027, 2, 28), (2028, 2, 29), (2027, 4, 30), (2027, 12, 31), (2100, 2, 28)],
)
def test_last_day_of_month(year: int, month: int, last: int) -> None:
    assert calendar.monthrange(year, month)[1] == last
    after = datetime(year, month, 1, tzinfo=SHANGHAI)
    assert parse_cron("0 12 L * *").next_after(after, SHANGHAI) == local(year, month, last, 12, 0, SHANGHAI)


def test_question_mark_means_no_restriction() -> None:
    start = date(2027, 3, 1)
    assert fire_dates("0 0 ? * *", start, 10) == days(start, 10)
    assert fire_dates("0 0 * * ?", start, 10) == days(start, 10)
    assert fire_dates("0 0 ? * 1", start, 21) == [d for d in days(start, 21) if d.weekday() == 0]
    assert fire_dates("0 0 15 * ?", start, 60) == [date(2027, 3, 15), date(2027, 4, 15)]


def test_vixie_or_when_day_and_weekday_both_restricted() -> None:
    start = date(2026, 1, 1)
    expected = [d for d in days(start, 730) if d.day == 13 or d.weekday() == 4]
    assert fire_dates("0 0 13 * 5", start, 730) == expected
    assert any(d.day == 13 and d.weekday() != 4 for d in expected)
    assert any(d.day == 13 and d.weekday() == 4 for d in expected)


def test_star_step_in_day_field_is_not_a_restriction() -> None:
    # Vixie cron: `*/2` starts with `*`, so the weekday field alone is not OR-ed with it.
    start = date(2027, 1, 1)
    expected = [d for d in days(start, 90) if d.day % 2 == 1 and d.weekday() == 0]
    assert fire_dates("0 0 */2 * 1", start, 90) == expected


def test_day_restricted_alone_ignores_weekday_and_vice_versa() -> None:
    start = date(2027, 1, 1)
    assert fire_dates("0 0 1,15 * *", start, 60) == [d for d in days(start, 60) if d.day in (1, 15)]
    assert fire_dates("0 0 L * 1", start, 90) == [
        d for d in days(start, 90) if d.day == calendar.monthrange(d.year, d.month)[1] or d.weekday() == 0
    ]


# --- DST ----------------------------------------------------------------------------------------------


def test_spring_forward_nonexistent_time_fires_once_at_gap_end() -> None:
    schedule = parse_cron("30 2 * * *")
    times = schedule.next_times(utc("2027-03-13T12:00:00"), NEW_YORK, 3)
    assert times == [utc("2027-03-14T07:00:00"), utc("2027-03-15T06:30:00"), utc("2027-03-16T06:30:00")]
    first = times[0].astimezone(NEW_YORK)
    assert (first.hour, first.minute, first.utcoffset()) == (3, 0, timedelta(hours=-4))


def test_spring_forward_every_half_hour_has_no_duplicates() -> None:
    times = parse_cron("*/30 * * * *").next_times(utc("2027-03-14T04:00:00"), NEW_YORK, 8)
    assert times == [
        utc("2027-03-14T04:30:00"),  # 23:30 EST
        utc("2027-03-14T05:00:00"),
        utc("2027-03-14T05:30:00"),
        utc("2027-03-14T06:00:00"),
        utc("2027-03-14T06:30:00"),  # 01:30 EST
        utc("2027-03-14T07:00:00"),  # 02:00 and 02:30 do not exist; 03:00 EDT, once
        utc("2027-03-14T07:30:00"),
        utc("2027-03-14T08:00:00"),
    ]


def test_fall_back_repeated_time_fires_once() -> None:
    times = parse_cron("30 1 * * *").next_times(utc("2027-11-06T12:00:00"), NEW_YORK, 2)
    assert times == [utc("2027-11-07T05:30:00"), utc("2027-11-08T06:30:00")]
    assert times[0].astimezone(NEW_YORK).utcoffset() == timedelta(hours=-4)
    assert times[1].astimezone(NEW_YORK).utcoffset() == timedelta(hours=-5)
    # Asked from inside the second 01:xx hour, the repeated 01:30 is not fired again.
    assert parse_cron("30 1 * * *").next_after(utc("2027-11-07T06:10:00"), NEW_YORK) == times[1]


def test_fall_back_every_half_hour_is_monotonic_and_terminates() -> None:
    schedule = parse_cron("*/30 * * * *")
    times = schedule.next_times(utc("2027-11-07T03:00:00"), NEW_YORK, 8)
    assert times == [
        utc("2027-11-07T03:30:00"),  # 23:30 EDT
        utc("2027-11-07T04:00:00"),
        utc("2027-11-07T04:30:00"),
        utc("2027-11-07T05:00:00"),  # 01:00 EDT, first occurrence
        utc("2027-11-07T05:30:00"),  # 01:30 EDT
        utc("2027-11-07T07:00:00"),  # 02:00 EST; 01:00/01:30 EST are repeats
        utc("2027-11-07T07:30:00"),
        utc("2027-11-07T08:00:00"),
    ]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))


def test_second_schedule_through_fall_back() -> None:
    times = parse_cron("* * * * * *").next_times(utc("2027-11-07T05:59:58"), NEW_YORK, 3)
    assert times == [utc("2027-11-07T05:59:59"), utc("2027-11-07T07:00:00"), utc("2027-11-07T07:00:01")]


@pytest.mark.parametrize("after", ["2027-11-07T06:00:00", "2027-11-07T06:29:59.5", "2027-11-07T06:59:59"])
def test_after_inside_second_pass_of_repeated_hour(after: str) -> None:
    assert parse_cron("* * * * *").next_after(utc(after), NEW_YORK) == utc("2027-11-07T07:00:00")


def test_next_after_is_strictly_later_and_accepts_any_zone() -> None:
    schedule = parse_cron("0 9 * * *")
    fire = local(2027, 6, 1, 9, 0, SHANGHAI)
    assert schedule.next_after(fire, SHANGHAI) == fire + timedelta(days=1)
    assert schedule.next_after(fire - timedelta(microseconds=1), SHANGHAI) == fire
    assert schedule.next_after(fire.astimezone(NEW_YORK), SHANGHAI) == fire + timedelta(days=1)


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_cron("* * * * *").next_after(datetime(2027, 1, 1), SHANGHAI)


# --- impossible and rare schedules --------------------------------------------------------------------


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "59 59 23 31 FEB *"])
def test_impossible_schedule_returns_none_quickly(expression: str) -> None:
    schedule = parse_cron(expression)
    started = time.perf_counter()
    assert schedule.next_after(utc("2027-01-01T00:00:00"), SHANGHAI) is None
    assert schedule.next_times(utc("2027-01-01T00:00:00"), SHANGHAI, 5) == []
    assert time.perf_counter() - started < 0.2


def test_leap_day_across_skipped_century_leap_year() -> None:
    fired = parse_cron("0 0 29 2 *").next_after(utc("2096-03-01T00:00:00"), ZONE_UTC)
    assert fired == utc("2104-02-29T00:00:00")


def test_yearly_lookup_is_cheap() -> None:
    schedule = parse_cron("0 0 1 1 *")
    after = utc("2027-01-02T00:00:00")
    started = time.perf_counter()
    for _ in range(200):
        fired = schedule.next_after(after, SHANGHAI)
    assert (time.perf_counter() - started) / 200 < 0.001
    assert fired == local(2028, 1, 1, 0, 0, SHANGHAI)


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "index", "name", "token", "reason_part"),
    [
        ("60 * * * *", 1, "分", "60", "超出范围 0-59"),
        ("* 24 * * *", 2, "时", "24", "超出范围 0-23"),
        ("* * 32 * *", 3, "日", "32", "超出范围 1-31"),
        ("* * 0 * *", 3, "日", "0", "超出范围 1-31"),
        ("* * * 13 *", 4, "月", "13", "超出范围 1-12"),
        ("* * * * 8", 5, "周", "8", "超出范围 0-7"),
        ("60 * * * * *", 1, "秒", "60", "超出范围 0-59"),
        ("0 60 * * * *", 2, "分", "60", "超出范围 0-59"),
        ("5-1 * * * *", 1, "分", "5-1", "大于"),
        ("*/0 * * * *", 1, "分", "*/0", "步长"),
        ("*/x * * * *", 1, "分", "*/x", "步长"),
        ("a b c d e", 1, "分", "a", "无法识别"),
        ("0 0 * * FOO", 5, "周", "FOO", "无法识别"),
        ("0 0 * MON *", 4, "月", "MON", "无法识别"),
        ("0 0 L W *", 4, "月", "W", "W"),
        ("0 0 15W * *", 3, "日", "15W", "W"),
        ("0 0 LW * *", 3, "日", "LW", "W"),
        ("0 0 * * 5#3", 5, "周", "5#3", "#"),
        ("0 0 * * 5L", 5, "周", "5L", "L"),
        ("0 0 * L *", 4, "月", "L", "L"),
        ("? * * * *", 1, "分", "?", "?"),
        ("0 0 1,? * *", 3, "日", "?", "?"),
        ("1,,2 * * * *", 1, "分", "1,,2", "空"),
        ("1- * * * *", 1, "分", "1-", "缺少"),
        ("1-2-3 * * * *", 1, "分", "1-2-3", "无法识别"),
        ("0 0 1 1 1 %", 6, "周", "%", "无法识别"),
        ("０ * * * *", 1, "分", "０", "无法识别"),
    ],
)
def test_invalid_field(expression: str, index: int, name: str, token: str, reason_part: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    error = caught.value
    assert (error.field_index, error.field_name, error.token) == (index, name, token)
    assert reason_part in error.reason
    assert str(error) == f"Cron表达式无效: 第{index}个字段({name}) '{token}': {error.reason}"
    assert isinstance(error, ValueError)


def test_error_message_format() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron("* * 32 * *")
    assert str(caught.value) == "Cron表达式无效: 第3个字段(日) '32': 超出范围 1-31"
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (str(copy), copy.field_index, copy.token) == (str(caught.value), 3, "32")


@pytest.mark.parametrize(("expression", "count"), [("* * *", 3), ("0 0 0 0 0 0 0", 7), ("", 0), ("   ", 0)])
def test_wrong_field_count(expression: str, count: int) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert (caught.value.field_index, caught.value.field_name, caught.value.token) == (0, "", "")
    assert str(caught.value) == (
        f"Cron表达式无效: 需要5个字段（分 时 日 月 周）或6个字段（秒 分 时 日 月 周），实际为 {count} 个"
    )


def test_overlong_expression() -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(",".join(["1"] * 600) + " * * * *")
    assert caught.value.field_index == 0


def test_validate_timezone() -> None:
    assert validate_timezone("Asia/Shanghai") == SHANGHAI
    for bad in ["Mars/Olympus", "", "America", "../etc", "/etc/localtime", "Asia/Shanghai\x00"]:
        with pytest.raises(ValueError, match="无效的时区"):
            validate_timezone(bad)


# --- APScheduler trigger ------------------------------------------------------------------------------


def test_trigger_next_fire_time() -> None:
    trigger = DialectCronTrigger(parse_cron("0 9 * * 1-5"), SHANGHAI)
    monday = local(2026, 11, 30, 9, 0, SHANGHAI)
    assert trigger.get_next_fire_time(None, monday) == monday  # equal to now counts
    assert trigger.get_next_fire_time(None, monday.astimezone(SHANGHAI)) == monday
    assert trigger.get_next_fire_time(None, monday + timedelta(microseconds=1)) == monday + timedelta(days=1)
    assert trigger.get_next_fire_time(monday, monday + timedelta(hours=5)) == monday + timedelta(days=1)
    friday = monday + timedelta(days=4)
    assert trigger.get_next_fire_time(friday, friday) == monday + timedelta(days=7)
    fired = trigger.get_next_fire_time(None, monday)
    assert fired is not None and fired.tzinfo is UTC
    with pytest.raises(ValueError):
        trigger.get_next_fire_time(None, datetime(2026, 11, 30))


def test_trigger_run_times_through_fall_back_terminate() -> None:
    # APScheduler's own catch-up loop: ask again with each result until past `now`.
    trigger = DialectCronTrigger(parse_cron("*/30 * * * *"), NEW_YORK)
    now = utc("2027-11-07T09:00:00")
    fire = trigger.get_next_fire_time(None, utc("2027-11-07T03:00:00"))
    seen = []
    while fire is not None and fire <= now:
        seen.append(fire)
        fire = trigger.get_next_fire_time(fire, now)
    assert len(seen) == 11  # 23:00..01:30 EDT (6) and 02:00..04:00 EST (5)
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False))


def test_trigger_pickle_and_repr() -> None:
    trigger = DialectCronTrigger(parse_cron("0 9 * * MON-FRI"), SHANGHAI)
    copy = pickle.loads(pickle.dumps(trigger))
    assert copy.schedule == trigger.schedule and copy.timezone == SHANGHAI
    now = utc("2026-11-28T00:00:00")
    assert copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)
    assert "0 9 * * MON-FRI" in repr(trigger) and "Asia/Shanghai" in repr(trigger)
    assert "0 9 * * MON-FRI" in str(trigger) and "Asia/Shanghai" in str(trigger)


def test_trigger_in_background_scheduler() -> None:
    schedule = parse_cron("0 0 1 1 *")
    trigger = DialectCronTrigger(schedule, SHANGHAI)
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)
    try:
        before = datetime.now(UTC)
        job = scheduler.add_job(print, trigger=trigger, id="yearly")
        assert job.next_run_time == schedule.next_after(before, SHANGHAI)
        local_next = job.next_run_time.astimezone(SHANGHAI)
        assert (local_next.month, local_next.day, local_next.hour, local_next.minute) == (1, 1, 0, 0)
    finally:
        scheduler.shutdown(wait=False)


# --- brute force: walk the wall clock and fire whenever it reaches or jumps over a matching time ------


Matcher = Callable[[datetime], bool]


def brute_force(
    matches: Matcher, tz: ZoneInfo, start: datetime, end: datetime, step: timedelta
) -> list[datetime]:
    """Instants in (start, end] at which the wall clock first reaches, or jumps past, a matching wall time.

    The high-water mark makes a repeated hour fire nothing new; a jump forward fires once if any wall
    time it skipped (or landed on) matches.
    """
    fired = []
    high_water = start.astimezone(tz).replace(tzinfo=None)
    instant = start + step
    while instant <= end:
        wall = instant.astimezone(tz).replace(tzinfo=None)
        candidate = high_water + step
        while candidate <= wall and not matches(candidate):
            candidate += step
        if candidate <= wall:
            fired.append(instant)
        high_water = max(high_water, wall)
        instant += step
    return fired


def last_day(t: datetime) -> int:
    return calendar.monthrange(t.year, t.month)[1]


MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
BRUTE_FORCE_CASES: list[tuple[str, str, str, timedelta, Matcher]] = [
    (
        "0 9 * * 1-5",
        "Asia/Shanghai",
        "2026-11-27T00:00:00",
        MINUTE,
        lambda t: (t.hour, t.minute) == (9, 0) and t.weekday() < 5,
    ),
    ("*/30 * * * *", "America/New_York", "2027-11-06T12:00:00", MINUTE, lambda t: t.minute % 30 == 0),
    ("*/30 * * * *", "America/New_York", "2027-03-13T12:00:00", MINUTE, lambda t: t.minute % 30 == 0),
    (
        "15,45 1-3 * * *",
        "America/New_York",
        "2027-03-13T12:00:00",
        MINUTE,
        lambda t: t.minute in (15, 45) and 1 <= t.hour <= 3,
    ),
    (
        "*/10 1 * * *",
        "Australia/Lord_Howe",
        "2027-04-02T12:00:00",
        MINUTE,
        lambda t: t.minute % 10 == 0 and t.hour == 1,
    ),
    (
        "0,20 2 * * *",
        "Australia/Lord_Howe",
        "2027-10-02T12:00:00",
        MINUTE,
        lambda t: t.minute in (0, 20) and t.hour == 2,
    ),
    ("0 1 * * *", "Europe/London", "2027-03-27T12:00:00", MINUTE, lambda t: (t.hour, t.minute) == (1, 0)),
    (
        "0 0 13 * FRI",
        "Europe/Berlin",
        "2027-08-12T00:00:00",
        MINUTE,
        lambda t: (t.hour, t.minute) == (0, 0) and (t.day == 13 or t.weekday() == 4),
    ),
    (
        "0 12 L * ?",
        "Asia/Kolkata",
        "2027-02-27T00:00:00",
        MINUTE,
        lambda t: (t.hour, t.minute) == (12, 0) and t.day == last_day(t),
    ),
    (
        "7 */4 ? JAN,JUL SUN",
        "America/Sao_Paulo",
        "2027-07-03T12:00:00",
        MINUTE,
        lambda t: t.minute == 7 and t.hour % 4 == 0 and t.month in (1, 7) and t.weekday() == 6,
    ),
    (
        "*/20 0-5 12 * * *",
        "Asia/Tokyo",
        "2027-06-01T02:30:00",
        SECOND,
        lambda t: t.second % 20 == 0 and t.minute <= 5 and t.hour == 12,
    ),
    (
        "0 30 1 * * *",
        "America/New_York",
        "2027-11-07T04:30:00",
        SECOND,
        lambda t: (t.hour, t.minute, t.second) == (1, 30, 0),
    ),
]


@pytest.mark.parametrize(("expression", "zone", "start", "step", "matches"), BRUTE_FORCE_CASES)
def test_matches_brute_force(
    expression: str, zone: str, start: str, step: timedelta, matches: Matcher
) -> None:
    tz = ZoneInfo(zone)
    begin = utc(start)
    end = begin + (timedelta(days=2) if step == MINUTE else timedelta(hours=3))
    expected = brute_force(matches, tz, begin, end, step)
    assert expected, "the window should contain fire times"
    schedule = parse_cron(expression)
    actual = [t for t in schedule.next_times(begin, tz, len(expected) + 1) if t <= end]
    assert actual == expected
