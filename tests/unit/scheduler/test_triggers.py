"""The scheduler's triggers: APScheduler fires exactly the times the common schedule plans for a
catch-up window, a task message becomes a Schedule only when it fires on its own, and dedup keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.triggers import Schedule, dedup_key
from zquant.scheduler.v1 import task_pb2

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
ANCHOR = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def schedule(
    cron: str = "", every: int = 0, once: datetime | None = None, zone: str = "Asia/Shanghai"
) -> Schedule:
    return Schedule(cron, every, once, zone, ANCHOR)


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


def live_times(timing: Schedule, now: datetime, until: datetime) -> list[datetime]:
    """What APScheduler would fire: ask the trigger again with each result, as its loop does."""
    trigger = timing.trigger()
    times: list[datetime] = []
    fire = trigger.get_next_fire_time(None, now)
    while fire is not None and fire <= until:
        times.append(fire.astimezone(UTC))
        fire = trigger.get_next_fire_time(fire, fire)
    return times


# --- cron ---------------------------------------------------------------------------------------------


def test_cron_window_agrees_with_live_trigger() -> None:
    every_15s = schedule("0/15 * * * * *", zone="America/New_York")
    start = utc("2027-11-07T05:58:00.25")  # across the fall-back hour
    until = start + timedelta(minutes=3)
    assert every_15s.planned_between(start, until, 1000)[0] == live_times(every_15s, start, until)


# --- interval -----------------------------------------------------------------------------------------


def test_interval_window_agrees_with_live_trigger() -> None:
    every_3s = schedule(every=3)
    now = ANCHOR + timedelta(seconds=100, milliseconds=1)
    until = now + timedelta(seconds=60)
    live = live_times(every_3s, now, until)
    assert live[0] == ANCHOR + timedelta(seconds=102)  # resumes on the anchor's phase
    assert every_3s.planned_between(now, until, 1000)[0] == live
    # A fresh trigger (just enabled: now == anchor) first fires one interval later.
    assert live_times(every_3s, ANCHOR, ANCHOR + timedelta(seconds=3)) == [ANCHOR + timedelta(seconds=3)]


# --- run_at -------------------------------------------------------------------------------------------


def test_run_at_fires_once_at_its_time() -> None:
    moment = utc("2026-12-01T10:00:00.5")
    second = timedelta(seconds=1)
    assert live_times(schedule(once=moment), moment - second, moment + second) == [moment]


# --- dedup keys ---------------------------------------------------------------------------------------


def test_dedup_key_is_stable_across_zones_and_processes() -> None:
    planned = utc("2026-11-30T08:00:02.123456")
    key = dedup_key(7, planned)
    assert key == "s:7:2026-11-30T08:00:02.123456Z"
    assert dedup_key(7, planned.astimezone(SHANGHAI)) == key
    assert dedup_key(7, planned.astimezone(NEW_YORK)) == key
    # The same planned time reached by the live trigger and by a catch-up window.
    every_2s = schedule(every=2)
    live = live_times(every_2s, ANCHOR + timedelta(seconds=1), ANCHOR + timedelta(seconds=2))
    window, _ = every_2s.planned_between(ANCHOR, ANCHOR + timedelta(seconds=2), 10)
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
