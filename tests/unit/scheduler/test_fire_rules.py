"""What a fire becomes: skipped on a closed day (when asked), skipped when later than the grace
(but never for the loop's own latency), the overlap policies, and the catch-up of times missed
while no scheduler ran."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.calendars import NON_TRADING_DAY, builtin_calendar
from services.common.vocabulary import HolidayPolicy
from services.scheduler.fire_rules import SCHEDULER_WAS_DOWN, catch_up_plan, decide_fire
from services.scheduler.triggers import Schedule
from zquant.scheduler.v1 import task_pb2

ANCHOR = datetime(2025, 9, 1, tzinfo=UTC)
# 18:00 in Shanghai on 2025-10-01 (National Day: the exchange is closed) and on 2025-09-30 (open).
NATIONAL_DAY = datetime(2025, 10, 1, 10, 0, tzinfo=UTC)
TRADING_DAY = datetime(2025, 9, 30, 10, 0, tzinfo=UTC)


def task(**fields: Any) -> task_pb2.Task:
    values: dict[str, Any] = {
        "id": 7,
        "task_type": "example_task",
        "enabled": True,
        "timezone": "Asia/Shanghai",
        "cron_expression": "0 18 * * *",
        "concurrency_policy": "allow",
    }
    values.update(fields)
    return task_pb2.Task(**values)


def schedule_of(message: task_pb2.Task, calendar: bool = False) -> Schedule:
    schedule = Schedule.of(message, ANCHOR, builtin_calendar("XSHG") if calendar else None)
    assert schedule is not None
    return schedule


def test_a_fire_on_time_runs() -> None:
    message = task()
    decision = decide_fire(message, schedule_of(message), TRADING_DAY, TRADING_DAY, previous_running=False)
    assert (decision.outcome, decision.skipped_because, decision.replace_running) == ("run", "", False)


def test_a_fire_later_than_its_grace_is_skipped_with_how_late_it_was() -> None:
    message = task(misfire_grace_seconds=5)
    late = TRADING_DAY + timedelta(seconds=7)
    decision = decide_fire(message, schedule_of(message), TRADING_DAY, late, previous_running=False)
    assert decision.outcome == "skipped_late"
    assert "延迟 7.0 秒" in decision.skipped_because and "宽限 5 秒" in decision.skipped_because


def test_the_loops_own_latency_never_skips_a_fire_even_with_no_grace() -> None:
    message = task(misfire_grace_seconds=0)
    now = TRADING_DAY + timedelta(milliseconds=900)
    assert (
        decide_fire(message, schedule_of(message), TRADING_DAY, now, previous_running=False).outcome == "run"
    )


def test_forbid_skips_while_the_previous_run_goes_on_and_runs_once_it_ended() -> None:
    message = task(concurrency_policy="forbid")
    schedule = schedule_of(message)
    busy = decide_fire(message, schedule, TRADING_DAY, TRADING_DAY, previous_running=True)
    assert busy.outcome == "skipped_overlap" and "forbid" in busy.skipped_because
    assert decide_fire(message, schedule, TRADING_DAY, TRADING_DAY, previous_running=False).outcome == "run"


def test_replace_runs_after_terminating_the_previous_run_and_allow_runs_both() -> None:
    replace = task(concurrency_policy="replace")
    decision = decide_fire(replace, schedule_of(replace), TRADING_DAY, TRADING_DAY, previous_running=True)
    assert (decision.outcome, decision.replace_running) == ("run", True)
    allow = task(concurrency_policy="allow")
    decision = decide_fire(allow, schedule_of(allow), TRADING_DAY, TRADING_DAY, previous_running=True)
    assert (decision.outcome, decision.replace_running) == ("run", False)


def test_a_closed_day_is_recorded_as_skipped_only_when_the_task_asks_for_it() -> None:
    recorded = task(calendar="XSHG", calendar_holidays=HolidayPolicy.RECORD)
    decision = decide_fire(
        recorded, schedule_of(recorded, calendar=True), NATIONAL_DAY, NATIONAL_DAY, previous_running=False
    )
    assert (decision.outcome, decision.skipped_because) == ("skipped_holiday", NON_TRADING_DAY)
    open_day = decide_fire(
        recorded, schedule_of(recorded, calendar=True), TRADING_DAY, TRADING_DAY, previous_running=False
    )
    assert open_day.outcome == "run" and not open_day.beyond_calendar


def test_a_fire_past_the_calendars_known_data_runs_and_is_marked() -> None:
    message = task(calendar="XSHG")
    schedule = schedule_of(message, calendar=True)
    assert schedule.calendar is not None
    beyond = datetime.combine(schedule.calendar.covered_until + timedelta(days=10), datetime.min.time(), UTC)
    decision = decide_fire(message, schedule, beyond, beyond, previous_running=False)
    assert decision.outcome == "run" and decision.beyond_calendar


def test_missed_times_are_skipped_and_run_once_runs_the_newest_within_its_grace() -> None:
    now = TRADING_DAY + timedelta(seconds=30)
    missed = [TRADING_DAY - timedelta(days=1), TRADING_DAY]
    run_once = task(misfire_policy="run_once", misfire_grace_seconds=60)
    assert catch_up_plan(run_once, missed, 3, now) == [
        (missed[0], SCHEDULER_WAS_DOWN + "（另有 3 次更早的错过执行未逐条记录）"),
        (missed[1], ""),
    ]
    too_late = task(misfire_policy="run_once", misfire_grace_seconds=10)
    assert [reason for _, reason in catch_up_plan(too_late, missed, 0, now)] == [SCHEDULER_WAS_DOWN] * 2
    skip = task(misfire_policy="skip", misfire_grace_seconds=60)
    assert all(reason for _, reason in catch_up_plan(skip, missed, 0, now))
