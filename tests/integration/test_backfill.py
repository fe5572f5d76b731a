"""Backfills through the real stack (issue 13): one run per planned time of the range with its
logical date, never more than max_parallel at once, skipping what already succeeded, cancellable as
a whole, and carried on without duplicates by the scheduler that comes back after a kill -9.

Each run's command records itself in a directory the job user can write: a file per running run
(so a run sees how many run with it) and a line per run in a log."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.calendars import UNCOVERED, builtin_calendar
from stack import Stack
from tests.conftest import BACKENDS, database_url
from tests.integration.api import Api, unique
from tests.integration.conftest import ADMIN_PASSWORD, start_stack
from tests.waiting import wait_for

# Starts, counts the runs running with it (itself included), works a while, ends.
RECORDING_RUN = (
    'touch "$DIR/running/$ZQ_EXECUTION_ID"; n=$(ls "$DIR/running" | wc -l); '
    'sleep "$SECONDS_EACH"; echo "$ZQ_LOGICAL_DATE $n" >> "$DIR/runs.log"; '
    'rm "$DIR/running/$ZQ_EXECUTION_ID"'
)
# 18:00 on weekdays in Shanghai; disabled, so only the backfill runs it.
WEEKDAYS_18 = "0 18 * * 1-5"
JANUARY_1_TO_14_WEEKDAYS = [f"2024-01-{day:02d}" for day in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)]
FEBRUARY_1_TO_12_WEEKDAYS = [f"2024-02-{day:02d}" for day in (1, 2, 5, 6, 7, 8, 9, 12)]


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp(f"backfill-{request.param}")
    with database_url(request.param, str(tmp)) as url:
        stack = start_stack(tmp, url, executors=2)
        try:
            yield stack
        finally:
            # Not stop_and_check: one test kills the scheduler, whose successor's first calls may
            # be slow on a busy machine (the loop watchdog is asserted by modules that kill nothing).
            stack.stop()


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Api:
    return Api.login(stack.http_url, "admin", ADMIN_PASSWORD)


@pytest.fixture
def records() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="zq-backfill-"))
    (directory / "running").mkdir()
    for path in (directory, directory / "running"):
        path.chmod(0o777)  # the job user of a root executor writes here
    yield directory
    shutil.rmtree(directory)


def recording_task(admin: Api, records: Path, seconds: float, **fields: Any) -> dict[str, Any]:
    env = {"DIR": str(records), "SECONDS_EACH": str(seconds)}
    body: dict[str, Any] = {
        "name": unique("backfill"),
        "task_type": "common_task",
        "cron_expression": WEEKDAYS_18,
        "timezone": "Asia/Shanghai",
        "enabled": False,
        "max_retries": 0,
        "config": {"command": ["sh", "-c", RECORDING_RUN], "env": env},
    }
    body.update(fields)
    return admin.create_task(**body)


def logged(records: Path) -> list[tuple[str, int]]:
    path = records / "runs.log"
    lines = path.read_text().split() if path.exists() else []
    return [(lines[i], int(lines[i + 1])) for i in range(0, len(lines), 2)]


def finished_backfill(admin: Api, backfill_id: int, timeout: float = 120) -> dict[str, Any]:
    backfill: dict[str, Any] = wait_for(
        lambda: (b := admin.ok("GET", f"/backfills/{backfill_id}"))["status"] != "running" and b,
        timeout,
        f"backfill {backfill_id} to finish",
    )
    return backfill


def test_a_backfill_runs_each_planned_time_once_with_its_date_never_more_than_max_parallel_at_once(
    admin: Api, records: Path
) -> None:
    task = recording_task(admin, records, 0.5)
    body = {"start": "2024-01-01", "end": "2024-01-14", "max_parallel": 3}
    created = admin.ok("POST", f"/tasks/{task['id']}/backfill", json=body)
    assert (created["status"], created["total"], created["skipped"]) == ("running", 10, 0)

    done = finished_backfill(admin, created["id"])
    assert done["status"] == "success", done
    assert (done["created"], done["succeeded"], done["failed"], done["running"]) == (10, 10, 0, 0)
    runs = admin.executions(task["id"], limit=100)
    assert sorted(run["logical_date"] for run in runs) == JANUARY_1_TO_14_WEEKDAYS
    assert {run["trigger"] for run in runs} == {"backfill"}
    # 18:00 in Shanghai is 10:00 UTC on the same date.
    assert {run["scheduled_time"][11:19] for run in runs} == {"10:00:00"}
    ran = logged(records)
    assert sorted(day for day, _ in ran) == JANUARY_1_TO_14_WEEKDAYS
    assert max(together for _, together in ran) <= 3
    assert admin.ok("GET", "/backfills", params={"task_id": task["id"]})["backfills"][0]["id"] == done["id"]

    # The same dates again: what succeeded is skipped, unless asked to run it again.
    again = admin.ok("POST", f"/tasks/{task['id']}/backfill", json={**body, "end": "2024-01-16"})
    assert (again["total"], again["skipped"]) == (2, 10)  # 15 and 16 January are new
    assert finished_backfill(admin, again["id"])["status"] == "success"
    rerun = {"start": "2024-01-02", "end": "2024-01-02", "rerun_succeeded": True}
    rerunning = admin.ok("POST", f"/tasks/{task['id']}/backfill", json=rerun)
    assert rerunning["total"] == 1
    assert finished_backfill(admin, rerunning["id"])["status"] == "success"


def test_a_cancelled_backfill_starts_nothing_more_and_ends_its_live_runs(admin: Api, records: Path) -> None:
    task = recording_task(admin, records, 30)
    body = {"start": "2024-01-01", "end": "2024-01-14", "max_parallel": 2}
    backfill = admin.ok("POST", f"/tasks/{task['id']}/backfill", json=body)
    wait_for(lambda: len(list((records / "running").iterdir())) == 2, 60, "two backfill runs to be running")
    cancelled = admin.ok("POST", f"/backfills/{backfill['id']}/cancel", json={})
    assert cancelled["status"] == "cancelled"
    runs = wait_for(
        lambda: (
            (runs := admin.executions(task["id"])) and all(r["status"] == "terminated" for r in runs) and runs
        ),
        60,
        "the backfill's runs to be terminated",
    )
    assert len(runs) == cancelled["created"] == 2
    assert admin.ok("GET", f"/backfills/{backfill['id']}")["status"] == "cancelled"


def test_a_backfill_goes_on_without_duplicates_after_its_scheduler_is_killed(
    stack: Stack, admin: Api, records: Path
) -> None:
    task = recording_task(admin, records, 1)
    body = {"start": "2024-02-01", "end": "2024-02-12", "max_parallel": 2}
    backfill = admin.ok("POST", f"/tasks/{task['id']}/backfill", json=body)
    assert backfill["total"] == len(FEBRUARY_1_TO_12_WEEKDAYS)
    wait_for(lambda: len(logged(records)) >= 2, 60, "two backfill runs to finish")
    scheduler = stack.config.scheduler_names[0]
    stack.kill(scheduler)
    stack.start_service(scheduler)

    done = finished_backfill(admin, backfill["id"])
    assert done["status"] == "success", done
    runs = admin.executions(task["id"], limit=100)
    assert sorted(run["logical_date"] for run in runs) == FEBRUARY_1_TO_12_WEEKDAYS
    ran = Counter(day for day, _ in logged(records))
    assert sorted(ran) == FEBRUARY_1_TO_12_WEEKDAYS and set(ran.values()) == {1}
    assert max(together for _, together in logged(records)) <= 2


def test_bad_backfills_are_refused_with_their_reason_and_create_nothing(admin: Api, records: Path) -> None:
    task = recording_task(admin, records, 0)
    every_minute = recording_task(admin, records, 0, cron_expression=None, interval_seconds=60)
    unscheduled = recording_task(admin, records, 0, cron_expression=None)
    refused = [
        (task, {"start": "2024-03-31", "end": "2024-01-01"}, "BACKFILL_INVALID"),
        (every_minute, {"start": "2024-01-01", "end": "2024-01-31"}, "BACKFILL_INVALID"),  # 44,640 runs
        (task, {"start": "2024-1-1", "end": "2024-01-31"}, "BACKFILL_INVALID"),
        (task, {"start": "2024-01-01"}, "BACKFILL_INVALID"),
        (task, {"start": "2024-01-01", "end": "2024-01-31", "max_parallel": 101}, "BACKFILL_INVALID"),
        (task, {"start": "2024-01-01", "end": "2024-01-31", "params": [1]}, "RUN_PARAMS_INVALID"),
        (task, {"start": "2024-01-01", "end": "2024-01-31", "params": {"x": "{{ ds }}"}}, "TEMPLATE_INVALID"),
        (task, {"start": "2024-01-01", "end": "2024-01-31", "parallel": 2}, "INVALID_ARGUMENT"),
        (unscheduled, {"start": "2024-01-01", "end": "2024-01-31"}, "BACKFILL_INVALID"),
    ]
    for target, body, reason in refused:
        response = admin.post(f"/tasks/{target['id']}/backfill", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["reason"] == reason, (body, response.text)
    for target in (task, every_minute, unscheduled):
        assert admin.ok("GET", "/backfills", params={"task_id": target["id"]})["backfills"] == []
        assert admin.executions(target["id"]) == []
    missing = admin.post("/tasks/999999/backfill", json={"start": "2024-01-01", "end": "2024-01-02"})
    assert (missing.status_code, missing.json()["reason"]) == (404, "TASK_NOT_FOUND")


def test_backfill_runs_beyond_their_calendars_data_carry_the_uncovered_note_like_scheduled_fires(
    admin: Api, records: Path
) -> None:
    xshg = builtin_calendar("XSHG")  # the library's data, as the registry loads it (through 2026)
    data_end = xshg.covered_until
    last_covered = data_end
    while not xshg.is_session(last_covered):
        last_covered -= timedelta(days=1)
    first_beyond = data_end + timedelta(days=1)
    while first_beyond.weekday() >= 5:
        first_beyond += timedelta(days=1)
    task = recording_task(admin, records, 0, cron_expression="0 18 * * *", calendar="XSHG")
    body = {"start": last_covered.isoformat(), "end": first_beyond.isoformat(), "max_parallel": 2}
    backfill = admin.ok("POST", f"/tasks/{task['id']}/backfill", json=body)
    assert backfill["total"] == 2
    # Both runs are created at once (max_parallel 2); a planned time still ahead waits for it.
    runs = wait_for(
        lambda: len(runs := admin.executions(task["id"], limit=100)) == 2 and runs, 60, "both backfill runs"
    )
    admin.ok("POST", f"/backfills/{backfill['id']}/cancel", json={})

    notes = {run["logical_date"]: run["note"] for run in runs}
    assert set(notes) == {last_covered.isoformat(), first_beyond.isoformat()}
    assert notes[last_covered.isoformat()] == ""
    assert notes[first_beyond.isoformat()].startswith(UNCOVERED), notes
    assert data_end.isoformat() in notes[first_beyond.isoformat()]
