"""History retention through the real stack (both backends): a task's retention_days over REST,
and the leader's housekeeping purging old runs while the statistics stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert

from services.registry.db import normalize_url
from services.registry.models import ExecutionRow
from stack import Stack
from tests.integration.api import Api, error, unique
from tests.waiting import wait_for


def test_a_task_says_how_long_its_history_is_kept(admin: Api) -> None:
    task = admin.create_task(name=unique("kept"), retention_days=7)
    assert task["retention_days"] == 7
    assert "retention_days" not in admin.ok("PUT", f"/tasks/{task['id']}", json={"retention_days": None})
    error(admin.put(f"/tasks/{task['id']}", json={"retention_days": -1}), 400, reason="TASK_INVALID")


def test_runs_past_a_shortened_retention_are_purged_soon_and_the_statistics_stay(
    stack: Stack, admin: Api
) -> None:
    task = admin.create_task(name=unique("purged"), retention_days=30)
    now = datetime.now(UTC)
    engine = create_engine(normalize_url(stack.database_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(ExecutionRow),
                [
                    {
                        "task_id": task["id"],
                        "status": "success",
                        "trigger": "schedule",
                        "created_at": now - timedelta(days=age),
                        "start_time": now - timedelta(days=age, seconds=5),
                        "end_time": now - timedelta(days=age),
                        "duration_seconds": 5.0,
                        "result": {},
                        "retry_count": 0,
                        "attempt": 1,
                        "terminate_requested": False,
                    }
                    for age in (10, 9, 8, 1)
                ],
            )
    finally:
        engine.dispose()
    before = admin.ok("GET", "/stats", params={"task_id": task["id"]})
    assert before["total_executions"] == 4
    # The change wakes the leader's housekeeping, idle or not (it passes at least once a minute).
    admin.ok("PUT", f"/tasks/{task['id']}", json={"retention_days": 3})
    wait_for(lambda: len(admin.executions(task["id"])) == 1, 30, "the three old runs to be purged")
    assert admin.ok("GET", "/stats", params={"task_id": task["id"]}) == before
