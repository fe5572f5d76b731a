"""services.registry.store.task_batches on SQLite and PostgreSQL: a batch creates tasks with the
rules and defaults of a single create; it is all or nothing and names every invalid item."""

from __future__ import annotations

import base64
import urllib.parse
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select

from services.common.errors import InvalidArgument, status_details
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store import task_batches, tasks

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
COMMAND = {"command": "true"}


def item(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "task_type": "common_task", "config": COMMAND, **fields}


def create_batch(db: Database, items: list[dict[str, Any]]) -> list[TaskRow]:
    with db.session() as session:
        return task_batches.create_tasks(session, items, "admin", "Asia/Shanghai", NOW)


def count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(TaskRow)) or 0


def test_a_batch_creates_every_item_with_the_defaults_of_a_single_create(db: Database) -> None:
    rows = create_batch(db, [item("a", interval_seconds=60), item("b", cron_expression="0 18 * * *")])
    assert [row.name for row in rows] == ["a", "b"] and rows[0].id < rows[1].id
    with db.session() as session:
        single = tasks.create_task(session, item("c", interval_seconds=60), "admin", "Asia/Shanghai", NOW)
        stored = session.get(TaskRow, rows[0].id)
        assert stored is not None
        fields = (
            "timezone",
            "max_retries",
            "retry_interval",
            "concurrency_policy",
            "misfire_policy",
            "enabled",
        )
        assert {f: getattr(stored, f) for f in fields} == {f: getattr(single, f) for f in fields}
        assert stored.schedule_anchor == NOW and stored.created_by == "admin"


def test_one_invalid_item_creates_nothing_and_every_invalid_item_is_named(db: Database) -> None:
    create_batch(db, [item("taken")])
    items = [
        item("ok"),
        item("manual", task_type="manual_task", cron_expression="0 18 * * *"),
        item("taken"),
        item("ok"),
        item("", interval_seconds=60),
    ]
    with pytest.raises(task_batches.InvalidBatch) as raised:
        create_batch(db, items)
    assert [(i.index, i.error.message) for i in raised.value.items] == [
        (1, "手动任务不支持 Cron 表达式调度"),
        (2, "任务名称 'taken' 已存在"),
        (3, "任务名称 'ok' 与 tasks[0] 重复"),
        (4, "任务名称不能为空"),
    ]
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "tasks[1]: 手动任务不支持 Cron 表达式调度" in raised.value.message
    assert count(db) == 1


def test_a_thousand_invalid_items_make_an_error_that_fits_in_grpc_trailers(db: Database) -> None:
    with pytest.raises(task_batches.InvalidBatch) as raised:
        create_batch(db, [item(f"late-{i}", cron_expression="0 0 30 2 *") for i in range(1000)])
    error = raised.value
    assert len(error.items) == 1000
    assert error.message.endswith("另有 990 项")
    # What travels: grpc-message (percent-encoded UTF-8) and the binary status, base64 (16 KiB at most).
    encoded = (
        urllib.parse.quote(error.message.encode())
        + base64.b64encode(status_details(error.code, error.message, error.reason, error.details)).decode()
    )
    assert len(encoded) < 8192


def test_a_batch_whose_only_fault_is_taken_names_is_already_exists(db: Database) -> None:
    create_batch(db, [item("taken")])
    with pytest.raises(task_batches.InvalidBatch) as raised:
        create_batch(db, [item("new"), item("taken")])
    assert raised.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert count(db) == 1


def test_a_batch_of_more_than_1000_is_refused_before_anything_is_read(db: Database) -> None:
    with pytest.raises(InvalidArgument, match="一次最多创建1000个任务，收到1001个"):
        create_batch(db, [item(f"t{i}") for i in range(1001)])
    assert create_batch(db, []) == []


def test_a_workflow_in_a_batch_is_validated_against_existing_tasks(db: Database) -> None:
    [step] = create_batch(db, [item("step")])
    node = {"task_id": step.id, "name": "step", "dependencies": []}
    workflow = item("wf", task_type="workflow", config={"workflow_type": "serial", "tasks": [node]})
    missing = item(
        "wf2",
        task_type="workflow",
        config={"workflow_type": "serial", "tasks": [{**node, "task_id": 999999}]},
    )
    with pytest.raises(task_batches.InvalidBatch) as raised:
        create_batch(db, [workflow, missing])
    [(index, message)] = [(i.index, i.error.message) for i in raised.value.items]
    assert index == 1 and message.startswith("编排任务配置无效")
    assert [row.name for row in create_batch(db, [workflow])] == ["wf"]
