"""The schedule rules shared by the registry and the scheduler: which tasks fire on their own,
and the fire times of cron, interval and one-time schedules in a window or after an instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.common.schedule import (
    Timing,
    fires_on_its_own,
    interval_times_between,
    next_interval_time,
    planned_times_on_dates,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Not on a whole second: planned times keep the anchor's microseconds.
ANCHOR = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(expression: str, zone: str = "Asia/Shanghai") -> Timing:
    return Timing(expression, 0, None, zone, ANCHOR)


def interval(seconds: int, anchor: datetime = ANCHOR) -> Timing:
    return Timing("", seconds, None, "Asia/Shanghai", anchor)


def one_time(run_at: datetime) -> Timing:
    return Timing("", 0, run_at, "Asia/Shanghai", ANCHOR)


def fires(
    timing: Timing, task_type: str = "example_task", enabled: bool = True, paused: bool = False
) -> bool:
    return fires_on_its_own(timing, task_type=task_type, enabled=enabled, paused=paused)


NO_SCHEDULE = Timing("", 0, None, "Asia/Shanghai", ANCHOR)


# --- fires on its own ---------------------------------------------------------------------------------


def test_a_disabled_or_paused_task_does_not_fire_on_its_own() -> None:
    assert not fires(interval(5), enabled=False)
    assert not fires(interval(5), paused=True)
    assert not fires(cron("* * * * *"), paused=True)


def test_a_manual_task_never_fires_on_its_own_whatever_its_fields_say() -> None:
    for timing in (NO_SCHEDULE, interval(5), cron("* * * * *"), one_time(ANCHOR)):
        assert not fires(timing, task_type="manual_task")


def test_a_task_without_a_schedule_runs_only_when_triggered() -> None:
    assert not fires(NO_SCHEDULE)


@pytest.mark.parametrize("task_type", ["example_task", "common_task", "workflow"])
def test_an_enabled_task_with_any_schedule_fires_on_its_own(task_type: str) -> None:
    for timing in (interval(5), cron("0 9 * * *"), one_time(ANCHOR)):
        assert fires(timing, task_type=task_type)


# --- next fire time -------------------------------------------------------------------------------------


def test_next_interval_time_is_the_first_anchor_multiple_strictly_after_the_instant() -> None:
    tick = timedelta(microseconds=1)
    assert next_interval_time(ANCHOR, 10, ANCHOR) == ANCHOR + timedelta(seconds=10)
    assert next_interval_time(ANCHOR, 10, ANCHOR + timedelta(seconds=10) - tick) == ANCHOR + timedelta(
        seconds=10
    )
    assert next_interval_time(ANCHOR, 10, ANCHOR + timedelta(seconds=10)) == ANCHOR + timedelta(seconds=20)
    # Before the anchor (a clock behind the one that set it) the first time is still one interval on.
    assert next_interval_time(ANCHOR, 10, ANCHOR - timedelta(hours=1)) == ANCHOR + timedelta(seconds=10)


@pytest.mark.parametrize("days", [1, 400, 20_000])
def test_next_interval_time_far_from_the_anchor_stays_on_its_phase(days: int) -> None:
    after = ANCHOR + timedelta(days=days, microseconds=1)
    moment = next_interval_time(ANCHOR, 7, after)
    assert after < moment <= after + timedelta(seconds=7)
    assert (moment - ANCHOR) % timedelta(seconds=7) == timedelta(0)


def test_next_after_for_each_kind_of_schedule() -> None:
    now = utc("2026-11-30T02:00:00")  # 10:00 in Shanghai
    assert cron("0 9 * * *").next_after(now) == utc("2026-12-01T01:00:00")
    assert interval(60).next_after(ANCHOR + timedelta(seconds=90)) == ANCHOR + timedelta(seconds=120)
    later = now + timedelta(hours=1)
    assert one_time(later).next_after(now) == later
    # A one-time run that is due or past has no next time.
    assert one_time(later).next_after(later) is None
    assert one_time(now).next_after(later) is None


def test_the_next_time_is_the_first_time_of_the_window_after_it() -> None:
    for timing in (cron("*/7 * * * *"), interval(13), one_time(ANCHOR + timedelta(minutes=5))):
        after = ANCHOR + timedelta(seconds=1)
        times, _ = timing.planned_between(after, after + timedelta(hours=1), 1000)
        assert timing.next_after(after) == times[0]


# --- cron windows ---------------------------------------------------------------------------------------


def test_cron_weekdays_in_window_with_exclusive_start_and_inclusive_end() -> None:
    schedule = cron("0 9 * * 1-5")
    # Saturday 2026-11-28 .. Saturday 2026-12-05 in Shanghai: Monday to Friday, 09:00 local = 01:00 UTC.
    times, left_out = schedule.planned_between(utc("2026-11-28T00:00:00"), utc("2026-12-05T00:00:00"), 100)
    assert times == [
        utc("2026-11-30T01:00:00"),
        utc("2026-12-01T01:00:00"),
        utc("2026-12-02T01:00:00"),
        utc("2026-12-03T01:00:00"),
        utc("2026-12-04T01:00:00"),
    ]
    assert left_out == 0
    assert [t.astimezone(SHANGHAI).isoweekday() for t in times] == [1, 2, 3, 4, 5]
    # A fire time equal to `after` is not in the window; one equal to `until` is.
    monday, friday = utc("2026-11-30T01:00:00"), utc("2026-12-04T01:00:00")
    assert schedule.planned_between(monday, friday, 100) == (times[1:], 0)


def test_cron_sunday_spellings_agree() -> None:
    after, until = utc("2026-11-28T00:00:00"), utc("2026-12-14T00:00:00")
    zero = cron("0 0 * * 0").planned_between(after, until, 100)
    seven = cron("0 0 * * 7").planned_between(after, until, 100)
    assert zero == seven
    # Midnight of Sundays 11-29, 12-06 and 12-13 in Shanghai (16:00 UTC the day before).
    assert zero == ([utc("2026-11-28T16:00:00"), utc("2026-12-05T16:00:00"), utc("2026-12-12T16:00:00")], 0)
    assert [t.astimezone(SHANGHAI).isoweekday() for t in zero[0]] == [7, 7, 7]


def test_cron_limit_keeps_the_newest_and_counts_the_rest() -> None:
    schedule = cron("* * * * * *")
    after = utc("2026-11-30T08:00:00")
    times, left_out = schedule.planned_between(after, after + timedelta(seconds=10), 3)
    assert times == [after + timedelta(seconds=s) for s in (8, 9, 10)]
    assert left_out == 7


def test_cron_empty_window() -> None:
    schedule = cron("0 9 * * *")
    assert schedule.planned_between(utc("2026-11-30T01:00:00"), utc("2026-12-01T00:59:59"), 10) == ([], 0)
    moment = utc("2026-11-30T05:00:00")
    assert schedule.planned_between(moment, moment, 10) == ([], 0)


def test_cron_six_fields_every_two_seconds_on_even_seconds() -> None:
    after = utc("2026-11-30T08:00:00.5")
    times, _ = cron("*/2 * * * * *", "America/New_York").planned_between(
        after, after + timedelta(seconds=9), 100
    )
    assert [t.second for t in times] == [2, 4, 6, 8]
    assert all(t.microsecond == 0 for t in times)


def test_cron_dst_gap_and_overlap_in_new_york() -> None:
    # 02:30 does not exist on 2027-03-14: it fires once, at 03:00 EDT, the first instant after the gap.
    gap, _ = cron("30 2 * * *", "America/New_York").planned_between(
        utc("2027-03-13T00:00:00"), utc("2027-03-16T00:00:00"), 100
    )
    assert gap == [utc("2027-03-13T07:30:00"), utc("2027-03-14T07:00:00"), utc("2027-03-15T06:30:00")]
    # 01:30 happens twice on 2027-11-07: it fires once, on the first pass (EDT).
    overlap, _ = cron("30 1 * * *", "America/New_York").planned_between(
        utc("2027-11-06T00:00:00"), utc("2027-11-09T00:00:00"), 100
    )
    assert overlap == [utc("2027-11-06T05:30:00"), utc("2027-11-07T05:30:00"), utc("2027-11-08T06:30:00")]
    # Every half hour across the fall-back night: strictly increasing, no repeated wall time.
    half_hours, _ = cron("*/30 * * * *", "America/New_York").planned_between(
        utc("2027-11-07T03:00:00"), utc("2027-11-07T09:00:00"), 100
    )
    assert all(a < b for a, b in zip(half_hours, half_hours[1:], strict=False))
    # 23:30 .. 01:30 EDT (5), then 02:00 .. 04:00 EST (5); 01:00 and 01:30 EST are repeats.
    assert len(half_hours) == 10
    assert utc("2027-11-07T06:00:00") not in half_hours and utc("2027-11-07T06:30:00") not in half_hours


# --- interval windows -----------------------------------------------------------------------------------


def test_interval_is_anchor_plus_k_intervals() -> None:
    schedule = interval(2)
    times, left_out = schedule.planned_between(ANCHOR, ANCHOR + timedelta(seconds=6), 100)
    assert times == [ANCHOR + timedelta(seconds=s) for s in (2, 4, 6)]
    assert left_out == 0


def test_interval_window_boundaries() -> None:
    schedule = interval(2)
    at = [ANCHOR + timedelta(seconds=s) for s in range(0, 12, 2)]
    tick = timedelta(microseconds=1)
    # Exclusive start, inclusive end, to the microsecond.
    assert schedule.planned_between(at[1], at[3], 100) == ([at[2], at[3]], 0)
    assert schedule.planned_between(at[1] - tick, at[3] - tick, 100) == ([at[1], at[2]], 0)
    assert schedule.planned_between(at[1] + tick, at[2] - tick, 100) == ([], 0)
    # The anchor itself never fires (first run one interval after enabling), nor anything before it.
    assert schedule.planned_between(ANCHOR - timedelta(hours=1), at[1], 100) == ([at[1]], 0)
    assert schedule.planned_between(ANCHOR - timedelta(hours=1), at[1] - tick, 100) == ([], 0)


def test_interval_limit_keeps_the_newest_and_counts_the_rest() -> None:
    schedule = interval(1)
    times, left_out = schedule.planned_between(ANCHOR, ANCHOR + timedelta(seconds=10, milliseconds=500), 3)
    assert times == [ANCHOR + timedelta(seconds=s) for s in (8, 9, 10)]
    assert left_out == 7


@pytest.mark.parametrize("days", [0, 1, 400, 20_000])
def test_interval_far_from_anchor_stays_exact(days: int) -> None:
    schedule = interval(7)
    after = ANCHOR + timedelta(days=days, seconds=3)
    times, _ = schedule.planned_between(after, after + timedelta(seconds=70), 100)
    assert len(times) == 10
    assert all((t - ANCHOR) % timedelta(seconds=7) == timedelta(0) for t in times)


def test_interval_is_elapsed_time_across_dst() -> None:
    anchor = utc("2027-03-14T06:00:00")  # 01:00 EST, one hour before the gap
    schedule = Timing("", 1800, None, "America/New_York", anchor)
    times, _ = schedule.planned_between(anchor, anchor + timedelta(hours=2), 100)
    assert [b - a for a, b in zip([anchor, *times], times, strict=False)] == [timedelta(minutes=30)] * 4


def test_interval_times_between_works_on_the_bare_numbers() -> None:
    times, left_out = interval_times_between(ANCHOR, 5, ANCHOR, ANCHOR + timedelta(seconds=21), 2)
    assert times == [ANCHOR + timedelta(seconds=15), ANCHOR + timedelta(seconds=20)]
    assert left_out == 2


# --- run_at ---------------------------------------------------------------------------------------------


def test_run_at_inside_and_at_the_window_edges() -> None:
    moment = utc("2026-12-01T10:00:00.5")
    schedule = one_time(moment)
    second = timedelta(seconds=1)
    assert schedule.planned_between(moment - second, moment + second, 10) == ([moment], 0)
    assert schedule.planned_between(moment - second, moment, 10) == ([moment], 0)
    assert schedule.planned_between(moment, moment + second, 10) == ([], 0)
    assert schedule.planned_between(moment + second, moment + 2 * second, 10) == ([], 0)


def test_the_planned_times_on_dates_are_those_whose_local_date_is_in_the_range_inclusive() -> None:
    # 00:30 in Shanghai is the day before in UTC: the range is of Shanghai dates.
    times = planned_times_on_dates(cron("30 0 * * *"), date(2024, 1, 1), date(2024, 1, 3), 100)
    assert times == [utc("2023-12-31T16:30:00"), utc("2024-01-01T16:30:00"), utc("2024-01-02T16:30:00")]


def test_the_planned_times_on_dates_skip_what_the_filter_leaves_out() -> None:
    weekdays_only = planned_times_on_dates(
        cron("0 18 * * *"), date(2024, 1, 1), date(2024, 1, 7), 100, keep=lambda t: t.weekday() < 5
    )
    assert weekdays_only is not None
    assert [t.astimezone(SHANGHAI).day for t in weekdays_only] == [1, 2, 3, 4, 5]


def test_more_planned_times_on_dates_than_the_limit_are_refused_not_cut_short() -> None:
    assert planned_times_on_dates(interval(60), date(2026, 12, 1), date(2026, 12, 1), 10) is None
    whole_day = planned_times_on_dates(cron("0 * * * *"), date(2024, 1, 1), date(2024, 1, 1), 24)
    assert whole_day is not None and len(whole_day) == 24


def test_a_one_time_task_has_its_one_planned_time_on_its_date_only() -> None:
    run_at = utc("2026-12-01T02:00:00")
    assert planned_times_on_dates(one_time(run_at), date(2026, 12, 1), date(2026, 12, 1), 5) == [run_at]
    assert planned_times_on_dates(one_time(run_at), date(2026, 12, 2), date(2026, 12, 3), 5) == []


def test_an_interval_schedules_planned_times_on_dates_before_its_anchor_keep_its_phase() -> None:
    times = planned_times_on_dates(interval(6 * 3600), date(2026, 11, 1), date(2026, 11, 1), 10)
    # ANCHOR is 08:00:00.123456 UTC = 16:00 in Shanghai: every 6 h from there, on 1 November.
    assert times is not None
    assert [t.astimezone(SHANGHAI).strftime("%H:%M") for t in times] == ["04:00", "10:00", "16:00", "22:00"]
    assert all(t.microsecond == 123456 for t in times)
