"""What a fire becomes, and what a snapshot's missed times become: pure functions over a task's
frozen `Schedule`, the engine does the I/O.

A live fire, in this order: on a day its calendar closes (under the "record" holiday policy) it is
recorded as skipped (非交易日); later than the task's misfire grace (and than ON_TIME_SECONDS, the
loop's own latency) it is recorded as skipped; while the task's previous run is still going, the
overlap policy decides (forbid skips, replace terminates the running ones first, allow runs both);
otherwise it runs. A fire on a day past the calendar's known data runs as on a weekday and is marked.

Times missed while no scheduler ran (a snapshot's task whose last planned run is older than its
schedule's latest time) are each recorded as skipped, except the newest under `run_once` while still
within the grace, which runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.common.calendars import NON_TRADING_DAY
from services.scheduler.triggers import Schedule
from zquant.scheduler.v1 import task_pb2

# A live fire up to this late is on time (event-loop and dispatch latency); the task's misfire grace,
# which may be 0, only decides about fires later than this.
ON_TIME_SECONDS = 1.0
SCHEDULER_WAS_DOWN = "调度器未运行，错过计划执行时间"


@dataclass(frozen=True, slots=True)
class FireDecision:
    # The FIRES metric's label: run, skipped_holiday, skipped_late or skipped_overlap.
    outcome: str
    # Recorded as skipped with this reason ("" = the fire runs).
    skipped_because: str = ""
    # Terminate the task's running runs first (the replace policy).
    replace_running: bool = False
    # Runs on a day past its calendar's known data (a weekday, by the documented policy).
    beyond_calendar: bool = False


def decide_fire(
    task: task_pb2.Task, schedule: Schedule, planned: datetime, now: datetime, *, previous_running: bool
) -> FireDecision:
    if schedule.record_holidays and schedule.is_holiday(planned):
        return FireDecision("skipped_holiday", NON_TRADING_DAY)
    late = (now - planned).total_seconds()
    if late > max(task.misfire_grace_seconds, ON_TIME_SECONDS):
        reason = f"错过执行宽限期（延迟 {late:.1f} 秒，宽限 {task.misfire_grace_seconds} 秒）"
        return FireDecision("skipped_late", reason)
    if previous_running and task.concurrency_policy == "forbid":
        return FireDecision("skipped_overlap", "上一次执行仍在运行，本次跳过（并发策略: forbid）")
    calendar = schedule.calendar
    beyond = calendar is not None and not calendar.covers(planned.astimezone(ZoneInfo(task.timezone)).date())
    return FireDecision(
        "run",
        replace_running=previous_running and task.concurrency_policy == "replace",
        beyond_calendar=beyond,
    )


def catch_up_plan(
    task: task_pb2.Task, missed: list[datetime], left_out: int, now: datetime
) -> list[tuple[datetime, str]]:
    """Each missed time with its skip reason, or "" for the one that runs (run_once's newest, if
    still within the grace). `left_out`: older missed times not listed (counted in the first reason)."""
    catch_up = missed[-1] if missed and task.misfire_policy == "run_once" else None
    if catch_up is not None and (now - catch_up).total_seconds() > task.misfire_grace_seconds:
        catch_up = None
    plan = []
    for index, planned in enumerate(missed):
        if planned == catch_up:
            plan.append((planned, ""))
            continue
        reason = SCHEDULER_WAS_DOWN
        if index == 0 and left_out:
            reason += f"（另有 {left_out} 次更早的错过执行未逐条记录）"
        plan.append((planned, reason))
    return plan
