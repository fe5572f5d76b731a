"""The registry's next run time and schedule status of a task row, from the common schedule rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.registry.models import TaskRow
from services.registry.store.tasks import LatestRun, next_run_time, schedule_status

ANCHOR = datetime(2026, 12, 1, 8, 0, 0, 500000, tzinfo=UTC)


def row(**fields: Any) -> TaskRow:
    values: dict[str, Any] = {
        "task_type": "example_task",
        "enabled": True,
        "paused": False,
        "timezone": "Asia/Shanghai",
        "schedule_anchor": ANCHOR,
    }
    values.update(fields)
    return TaskRow(**values)


def test_an_interval_task_next_runs_on_the_anchors_phase() -> None:
    task = row(interval_seconds=60)
    assert next_run_time(task, ANCHOR) == ANCHOR + timedelta(seconds=60)
    assert next_run_time(task, ANCHOR + timedelta(seconds=150)) == ANCHOR + timedelta(seconds=180)
    assert schedule_status(task, None, next_run_time(task, ANCHOR)) == "pending"


def test_a_cron_task_next_runs_at_its_local_time() -> None:
    task = row(cron_expression="0 9 * * *")  # 09:00 in Shanghai is 01:00 UTC
    assert next_run_time(task, ANCHOR) == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def test_a_one_time_task_has_no_next_run_once_its_time_has_passed() -> None:
    task = row(run_at=ANCHOR + timedelta(hours=1))
    assert next_run_time(task, ANCHOR) == ANCHOR + timedelta(hours=1)
    assert next_run_time(task, ANCHOR + timedelta(hours=2)) is None
    assert schedule_status(task, None, None) == "finished"


def test_tasks_that_do_not_fire_on_their_own_have_no_next_run() -> None:
    assert next_run_time(row(interval_seconds=60, enabled=False), ANCHOR) is None
    assert next_run_time(row(interval_seconds=60, paused=True), ANCHOR) is None
    assert next_run_time(row(task_type="manual_task", interval_seconds=60), ANCHOR) is None
    unscheduled = row()
    assert next_run_time(unscheduled, ANCHOR) is None
    assert schedule_status(unscheduled, None, None) == "manual"


def test_a_live_latest_run_shows_the_task_as_running() -> None:
    task = row(interval_seconds=60)
    upcoming = next_run_time(task, ANCHOR)
    assert schedule_status(task, LatestRun(ANCHOR, "running"), upcoming) == "running"
    assert schedule_status(task, LatestRun(ANCHOR, "pending"), upcoming) == "running"
    assert schedule_status(task, LatestRun(ANCHOR, "failed"), upcoming) == "pending"
    assert (
        schedule_status(row(interval_seconds=60, paused=True), LatestRun(ANCHOR, "running"), None) == "paused"
    )
    assert schedule_status(row(enabled=False), None, None) == "disabled"
