"""services.registry.store.task_listing. The task list on SQLite and PostgreSQL: keyset pages by id
(after_id) walk the same tasks as skip/limit pages in both orders, skip pages are slices of the
whole list in every sort order, and the name search is a
case-insensitive substring with LIKE's wildcards taken literally (PostgreSQL answers it with ILIKE,
SQLite with lower() LIKE). What the list shows beside a task: its next run time and schedule
status, from the common schedule rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.errors import InvalidArgument, Reason
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store import task_batches, task_listing, task_rules
from services.registry.store.task_listing import LatestRun, next_run_time, schedule_status

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NAMES = ["Daily-Report", "daily_report", "weekly-report", "100%-done", "其他任务"]


def create(db: Database, names: list[str]) -> None:
    with db.session() as session:
        rows = [
            task_rules.new_task(
                session,
                {"name": name, "task_type": "manual_task", "config": {"command": "true"}},
                "a",
                "UTC",
                NOW,
            )
            for name in names
        ]
        task_batches.insert_new(session, rows)


def walk(db: Database, order: str) -> list[str]:
    """Every task's name, page by page of 2, each page after the last id of the one before."""
    names: list[str] = []
    after_id = 0
    while True:
        with db.session() as session:
            rows, total = task_listing.list_tasks(
                session, task_listing.TaskQuery(limit=2, order=order, after_id=after_id)
            )
        assert total == len(NAMES)  # all matches, whatever the page
        names += [row.name for row in rows]
        if len(rows) < 2:
            return names
        after_id = rows[-1].id


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_pages_walk_the_same_tasks_as_skip_pages(db: Database, order: str) -> None:
    create(db, NAMES)
    with db.session() as session:
        everything, _ = task_listing.list_tasks(session, task_listing.TaskQuery(limit=100, order=order))
    assert walk(db, order) == [row.name for row in everything]
    assert sorted(walk(db, order)) == sorted(NAMES)


@pytest.mark.parametrize("order_by", ["id", "name", "created_at"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_skip_pages_in_every_order_are_slices_of_the_whole_list_and_filters_still_apply(
    db: Database, order_by: str, order: str
) -> None:
    create(db, NAMES)
    query = task_listing.TaskQuery(limit=100, order=order, order_by=order_by)
    with db.session() as session:
        everything = [row.name for row in task_listing.list_tasks(session, query)[0]]
        for skip in range(len(NAMES) + 1):
            rows, total = task_listing.list_tasks(
                session, task_listing.TaskQuery(limit=2, skip=skip, order=order, order_by=order_by)
            )
            assert [row.name for row in rows] == everything[skip : skip + 2] and total == len(NAMES)
        found, total = task_listing.list_tasks(
            session, task_listing.TaskQuery(limit=2, skip=1, name="report", order=order, order_by=order_by)
        )
    reports = [name for name in everything if "report" in name.lower()]
    assert [row.name for row in found] == reports[1:3] and total == len(reports)


def test_keyset_pages_need_the_id_order(db: Database) -> None:
    with db.session() as session, pytest.raises(InvalidArgument) as caught:
        task_listing.list_tasks(session, task_listing.TaskQuery(order_by="name", after_id=3))
    assert caught.value.reason == Reason.PAGE_INVALID


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("report", ["Daily-Report", "daily_report", "weekly-report"]),
        ("DAILY", ["Daily-Report", "daily_report"]),
        ("_", ["daily_report"]),  # not "any one character"
        ("%", ["100%-done"]),
        ("任务", ["其他任务"]),
    ],
)
def test_the_name_search_is_a_case_insensitive_substring(db: Database, text: str, found: list[str]) -> None:
    create(db, NAMES)
    with db.session() as session:
        rows, total = task_listing.list_tasks(session, task_listing.TaskQuery(name=text, order="asc"))
    assert [row.name for row in rows] == found
    assert total == len(found)


# ---- what the list shows beside a task ------------------------------------------------------

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
