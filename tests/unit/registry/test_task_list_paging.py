"""The task list on SQLite and PostgreSQL: keyset pages by id (after_id) walk the same tasks as
skip/limit pages in both orders, and the name search is a case-insensitive substring with LIKE's
wildcards taken literally (PostgreSQL answers it with ILIKE, SQLite with lower() LIKE)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidArgument, Reason
from services.registry.db import Database
from services.registry.store import tasks

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
NAMES = ["Daily-Report", "daily_report", "weekly-report", "100%-done", "其他任务"]


def create(db: Database, names: list[str]) -> None:
    with db.session() as session:
        rows = [
            tasks.new_task(
                session,
                {"name": name, "task_type": "manual_task", "config": {"command": "true"}},
                "a",
                "UTC",
                NOW,
            )
            for name in names
        ]
        tasks.insert_new(session, rows)


def walk(db: Database, order: str) -> list[str]:
    """Every task's name, page by page of 2, each page after the last id of the one before."""
    names: list[str] = []
    after_id = 0
    while True:
        with db.session() as session:
            rows, total = tasks.list_tasks(session, tasks.TaskQuery(limit=2, order=order, after_id=after_id))
        assert total == len(NAMES)  # all matches, whatever the page
        names += [row.name for row in rows]
        if len(rows) < 2:
            return names
        after_id = rows[-1].id


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_keyset_pages_walk_the_same_tasks_as_skip_pages(db: Database, order: str) -> None:
    create(db, NAMES)
    with db.session() as session:
        everything, _ = tasks.list_tasks(session, tasks.TaskQuery(limit=100, order=order))
    assert walk(db, order) == [row.name for row in everything]
    assert sorted(walk(db, order)) == sorted(NAMES)


def test_keyset_pages_need_the_id_order(db: Database) -> None:
    with db.session() as session, pytest.raises(InvalidArgument) as caught:
        tasks.list_tasks(session, tasks.TaskQuery(order_by="name", after_id=3))
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
        rows, total = tasks.list_tasks(session, tasks.TaskQuery(name=text, order="asc"))
    assert [row.name for row in rows] == found
    assert total == len(found)
