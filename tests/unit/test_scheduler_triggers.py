"""The scheduler's fire-time definitions: live triggers and catch-up windows come from one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.triggers import Schedule, dedup_key
from zquant.scheduler.v1 import task_pb2

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
# Not on a whole second: planned times keep the anchor's microseconds.
ANCHOR = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def cron(expression: str, zone: str = "Asia/Shanghai") -> Schedule:
    return Schedule(expression, 0, None, zone, ANCHOR)


def interval(seconds: int, anchor: datetime = ANCHOR) -> Schedule:
    return Schedule("", seconds, None, "Asia/Shanghai", anchor)


def one_time(run_at: datetime) -> Schedule:
    return Schedule("", 0, run_at, "Asia/Shanghai", ANCHOR)


def task(**fields: Any) -> task_pb2.Task:
    values: dict[str, Any] = {
        "id": 7,
        "task_type": "example_task",
        "enabled": True,
        "timezone": "Asia/Shanghai",
    }
    values.update(fields)
    run_at = values.pop("run_at", None)
    message = task_pb2.Task(**values)
    if run_at is not None:
        message.run_at.FromDatetime(run_at)
    return message


def live_times(schedule: Schedule, now: datetime, until: datetime) -> list[datetime]:
    """What APScheduler would fire: ask the trigger again with each result, as its loop does."""
    trigger = schedule.trigger()
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, now)
    while fire is not None and fire <= until:
        times.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, fire)
    return times


# --- cron ---------------------------------------------------------------------------------------------


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


def test_cron_window_agrees_with_live_trigger() -> None:
    schedule = cron("0/15 * * * * *", "America/New_York")
    start = utc("2027-11-07T05:58:00.25")
    until = start + timedelta(minutes=3)
    assert schedule.planned_between(start, until, 1000)[0] == live_times(schedule, start, until)


# --- interval -----------------------------------------------------------------------------------------


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
    schedule = Schedule("", 1800, None, "America/New_York", anchor)
    times, _ = schedule.planned_between(anchor, anchor + timedelta(hours=2), 100)
    assert [b - a for a, b in zip([anchor, *times], times, strict=False)] == [timedelta(minutes=30)] * 4


def test_interval_window_agrees_with_live_trigger() -> None:
    schedule = interval(3)
    now = ANCHOR + timedelta(seconds=100, milliseconds=1)
    until = now + timedelta(seconds=60)
    live = live_times(schedule, now, until)
    assert live[0] == ANCHOR + timedelta(seconds=102)  # resumes on the anchor's phase
    assert schedule.planned_between(now, until, 1000)[0] == live
    # A fresh trigger (just enabled: now == anchor) first fires one interval later.
    assert live_times(schedule, ANCHOR, ANCHOR + timedelta(seconds=3)) == [ANCHOR + timedelta(seconds=3)]


# --- run_at -------------------------------------------------------------------------------------------


def test_run_at_inside_and_at_the_window_edges() -> None:
    moment = utc("2026-12-01T10:00:00.5")
    schedule = one_time(moment)
    second = timedelta(seconds=1)
    assert schedule.planned_between(moment - second, moment + second, 10) == ([moment], 0)
    assert schedule.planned_between(moment - second, moment, 10) == ([moment], 0)
    assert schedule.planned_between(moment, moment + second, 10) == ([], 0)
    assert schedule.planned_between(moment + second, moment + 2 * second, 10) == ([], 0)
    assert live_times(schedule, moment - second, moment + second) == [moment]


# --- dedup keys ---------------------------------------------------------------------------------------


def test_dedup_key_is_stable_across_zones_and_processes() -> None:
    planned = utc("2026-11-30T08:00:02.123456")
    key = dedup_key(7, planned)
    assert key == "s:7:2026-11-30T08:00:02.123456Z"
    assert dedup_key(7, planned.astimezone(SHANGHAI)) == key
    assert dedup_key(7, planned.astimezone(NEW_YORK)) == key
    # The same planned time reached by the live trigger and by a catch-up window.
    schedule = interval(2)
    live = live_times(schedule, ANCHOR + timedelta(seconds=1), ANCHOR + timedelta(seconds=2))
    window, _ = schedule.planned_between(ANCHOR, ANCHOR + timedelta(seconds=2), 10)
    assert [dedup_key(7, t) for t in live] == [dedup_key(7, t) for t in window]


def test_dedup_key_tells_tasks_and_instants_apart() -> None:
    planned = utc("2026-11-30T08:00:02")
    keys = {
        dedup_key(7, planned),
        dedup_key(8, planned),
        dedup_key(7, planned + timedelta(microseconds=1)),
        dedup_key(7, planned + timedelta(seconds=1)),
    }
    assert len(keys) == 4
    assert dedup_key(7, planned) == "s:7:2026-11-30T08:00:02.000000Z"


# --- Schedule.of --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"enabled": False, "interval_seconds": 5},
        {"paused": True, "interval_seconds": 5},
        {"paused": True, "cron_expression": "* * * * *"},
        {"task_type": "manual_task"},
        {"task_type": "manual_task", "interval_seconds": 5},
        {},  # no schedule at all: runs only when triggered
    ],
    ids=["disabled", "paused-interval", "paused-cron", "manual", "manual-with-interval", "unscheduled"],
)
def test_schedule_of_tasks_that_do_not_fire_on_their_own(fields: dict[str, Any]) -> None:
    assert Schedule.of(task(**fields), ANCHOR) is None


def test_schedule_of_schedulable_tasks() -> None:
    by_interval = Schedule.of(task(interval_seconds=5), ANCHOR)
    assert by_interval == Schedule("", 5, None, "Asia/Shanghai", ANCHOR)
    by_cron = Schedule.of(task(cron_expression="0 9 * * 1-5", timezone="America/New_York"), ANCHOR)
    assert by_cron == Schedule("0 9 * * 1-5", 0, None, "America/New_York", ANCHOR)
    moment = utc("2026-12-01T10:00:00.25")
    once = Schedule.of(task(run_at=moment), ANCHOR)
    assert once is not None and once.run_at == moment and once.run_at.tzinfo is not None
    # Equal definitions compare equal, so an unchanged schedule keeps its job; any change does not.
    assert Schedule.of(task(interval_seconds=5, description="x"), ANCHOR) == by_interval
    assert Schedule.of(task(interval_seconds=5), ANCHOR + timedelta(seconds=1)) != by_interval
    assert Schedule.of(task(interval_seconds=6), ANCHOR) != by_interval
