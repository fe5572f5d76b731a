"""Task tags on SQLite and PostgreSQL: stored in the order given, set on create, update and in batches,
refused with TAG_INVALID when malformed, and the list filters on them by exact match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.errors import InvalidArgument, Reason
from services.registry.db import Database
from services.registry.store import task_batches, task_listing, tasks

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def item(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "task_type": "common_task", "config": {"command": "true"}, **fields}


def names_tagged(db: Database, tag: str) -> list[str]:
    with db.session() as session:
        rows, total = task_listing.list_tasks(
            session, task_listing.TaskQuery(tag=tag, order="asc", limit=100)
        )
    assert total == len(rows)
    return [row.name for row in rows]


def test_tags_are_stored_as_given_and_the_list_filters_on_one_exactly(db: Database) -> None:
    with db.session() as session:
        tasks.create_task(session, item("a", tags=["日报", "team-a"]), "admin", "UTC", NOW)
        tasks.create_task(session, item("b", tags=["team-a"]), "admin", "UTC", NOW)
        tasks.create_task(session, item("c", tags=["team-ab"]), "admin", "UTC", NOW)
        tasks.create_task(session, item("d"), "admin", "UTC", NOW)
    assert names_tagged(db, "team-a") == ["a", "b"]
    assert names_tagged(db, "日报") == ["a"]
    assert names_tagged(db, "team") == []  # no substring match
    with db.session() as session:
        rows, _ = task_listing.list_tasks(session, task_listing.TaskQuery(order="asc"))
        assert [row.tags for row in rows] == [["日报", "team-a"], ["team-a"], ["team-ab"], []]


def test_an_update_replaces_the_tags_and_null_clears_them(db: Database) -> None:
    with db.session() as session:
        row = tasks.create_task(session, item("a", tags=["x"]), "admin", "UTC", NOW)
        task_id = row.id
    with db.session() as session:
        tasks.update_task(session, task_id, {"tags": ["y", "z"]}, "admin", NOW)
    assert (names_tagged(db, "x"), names_tagged(db, "z")) == ([], ["a"])
    with db.session() as session:
        assert tasks.update_task(session, task_id, {"tags": None}, "admin", NOW).tags == []


def test_a_batch_stores_the_tags_of_each_item(db: Database) -> None:
    with db.session() as session:
        task_batches.create_tasks(session, [item("a", tags=["ops"]), item("b")], "admin", "UTC", NOW)
    assert names_tagged(db, "ops") == ["a"]


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ("ops", "标签必须是字符串数组"),
        ([1], "标签必须是字符串，收到 1"),
        ([""], "标签长度必须在1到32个字符之间"),
        (["x" * 33], "标签长度必须在1到32个字符之间"),
        (["a b"], "标签只能包含字母、数字、汉字和 _ - . : 字符"),
        (["a,b"], "标签只能包含字母、数字、汉字和 _ - . : 字符"),
        ([f"t{i}" for i in range(11)], "一个任务最多10个标签，收到11个"),
        (["a", "b", "a"], "标签重复"),
    ],
)
def test_a_malformed_tag_list_is_refused_with_its_reason_and_nothing_is_stored(
    db: Database, tags: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument) as refused, db.session() as session:
        tasks.create_task(session, item("a", tags=tags), "admin", "UTC", NOW)
    assert refused.value.reason == Reason.TAG_INVALID and message in refused.value.message
    assert names_tagged(db, "a") == []
    with db.session() as session:
        assert task_listing.list_tasks(session, task_listing.TaskQuery())[1] == 0


def test_a_malformed_tag_filter_is_refused(db: Database) -> None:
    with pytest.raises(InvalidArgument) as refused, db.session() as session:
        task_listing.list_tasks(session, task_listing.TaskQuery(tag="a%b"))
    assert refused.value.reason == Reason.TAG_INVALID
