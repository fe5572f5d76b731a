"""services.registry.store.transfer: documents that name sub-tasks instead of numbering them, and
an import that upserts by name, all or nothing, with a dry run that changes nothing. The pure
functions first, then the import on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from services.common.errors import InvalidArgument, Reason
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store import task_batches, task_rules, transfer

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
COMMAND = {"command": "true"}


def item(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "task_type": "common_task", "config": COMMAND, **fields}


def workflow(name: str, *nodes: tuple[str, list[str]]) -> dict[str, Any]:
    config = {"workflow_type": "parallel", "tasks": [{"task": t, "dependencies": d} for t, d in nodes]}
    return {"name": name, "task_type": "workflow", "config": config}


def run(db: Database, items: list[Any], dry_run: bool = False) -> list[tuple[str, str]]:
    imported = transfer.run_import(db, items, "admin", "Asia/Shanghai", NOW, dry_run=dry_run)
    return [(name, action) for name, action, _ in imported.actions]


def export(db: Database, limit: int = 1000) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after_id = 0
    while True:
        with db.session() as session:
            page = transfer.export_page(session, after_id, limit)
        items += page.items
        after_id = page.next_after_id
        if not after_id:
            return items


def count(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(TaskRow)) or 0


# ---- pure ---------------------------------------------------------------------------------------


def test_a_stored_workflow_config_names_its_sub_tasks_and_back() -> None:
    stored = {
        "workflow_type": "serial",
        "tasks": [{"task_id": 7, "name": "x"}, {"task_id": 9, "dependencies": [7]}],
    }
    named = transfer.config_by_name(stored, {7: "fetch", 9: "report"})
    assert named["tasks"] == [{"task": "fetch", "name": "x"}, {"task": "report", "dependencies": ["fetch"]}]
    assert transfer.config_by_id(named, {"fetch": 3, "report": 4})["tasks"] == [
        {"task_id": 3, "name": "x"},
        {"task_id": 4, "dependencies": [3]},
    ]


def test_a_workflow_naming_a_task_that_exists_nowhere_is_refused_with_the_name() -> None:
    named = {"workflow_type": "serial", "tasks": [{"task": "ghost"}]}
    with pytest.raises(InvalidArgument, match="ghost") as caught:
        transfer.config_by_id(named, {})
    assert caught.value.reason == Reason.WORKFLOW_INVALID


def test_only_fields_that_differ_are_changes_and_empty_values_are_alike() -> None:
    stored = {"name": "a", "enabled": True, "description": None, "interval_seconds": 60, "max_retries": 3}
    wanted = {"name": "a", "enabled": True, "description": "", "interval_seconds": 60, "max_retries": 5}
    assert transfer.changes_of(stored, wanted) == {"max_retries": 5}
    # 1 and true are different values in JSON, so a changed type is a change.
    assert transfer.changes_of({"enabled": True}, {"enabled": 1}) == {"enabled": 1}


def test_the_same_moment_written_two_ways_is_no_change() -> None:
    stored = {"run_at": "2027-01-01T10:00:00+00:00"}
    assert transfer.changes_of(stored, {"run_at": "2027-01-01T18:00:00+08:00"}) == {}


@pytest.mark.parametrize(
    "document",
    [[], {"tasks": {}}, {"tasks": [], "extra": 1}, {"version": 2, "tasks": []}],
)
def test_a_document_of_the_wrong_shape_is_refused(document: Any) -> None:
    with pytest.raises(InvalidArgument):
        transfer.document_items(document)


def test_an_item_without_a_name_or_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="名称"):
        transfer.item_fields({"task_type": "common_task"})
    with pytest.raises(InvalidArgument, match="id"):
        transfer.item_fields({"name": "a", "id": 3})


# ---- on the database ----------------------------------------------------------------------------


def test_an_import_creates_then_finds_everything_unchanged(db: Database) -> None:
    document = [workflow("wf", ("a", []), ("b", ["a"])), item("a", interval_seconds=60), item("b")]
    assert run(db, document) == [("wf", "created"), ("a", "created"), ("b", "created")]
    assert run(db, document) == [("wf", "unchanged"), ("a", "unchanged"), ("b", "unchanged")]


def test_an_export_imported_elsewhere_means_the_same_tasks(db: Database) -> None:
    run(
        db,
        [
            item("a", cron_expression="0 18 * * 1-5", description="d"),
            item("b"),
            workflow("wf", ("a", []), ("b", ["a"])),
        ],
    )
    exported = export(db, limit=2)  # across pages
    assert [entry["name"] for entry in exported] == ["a", "b", "wf"]
    assert exported[2]["config"]["tasks"] == [
        {"task": "a", "dependencies": []},
        {"task": "b", "dependencies": ["a"]},
    ]
    with db.session() as session:
        for row in session.scalars(select(TaskRow)):
            session.delete(row)
    run(db, exported)
    assert export(db) == exported
    assert run(db, exported) == [("a", "unchanged"), ("b", "unchanged"), ("wf", "unchanged")]


def test_an_import_updates_only_what_differs(db: Database) -> None:
    run(db, [item("a", max_retries=1), item("b")])
    assert run(db, [item("a", max_retries=2), item("b")]) == [("a", "updated"), ("b", "unchanged")]
    with db.session() as session:
        row = session.scalar(select(TaskRow).where(TaskRow.name == "a"))
        assert row is not None and row.max_retries == 2


def test_a_dry_run_reports_the_changes_and_writes_nothing(db: Database) -> None:
    run(db, [item("a", max_retries=1)])
    assert run(db, [item("a", max_retries=2), item("new")], dry_run=True) == [
        ("a", "updated"),
        ("new", "created"),
    ]
    assert count(db) == 1
    assert export(db)[0]["max_retries"] == 1


def test_one_invalid_item_refuses_the_document_and_names_the_item(db: Database) -> None:
    document = [item("fine"), item("bad", cron_expression="not a cron"), item("fine")]
    with pytest.raises(transfer.DocumentRefused) as caught:
        run(db, document)
    assert [entry.label for entry in caught.value.items] == ["tasks[1] (bad)", "tasks[2] (fine)"]
    assert caught.value.message.count("tasks[1] (bad): Cron") == 1
    assert count(db) == 0


def test_a_task_type_cannot_change_on_import(db: Database) -> None:
    run(db, [item("a")])
    with pytest.raises(transfer.DocumentRefused, match=r"tasks\[0\] \(a\)"):
        run(db, [{**item("a"), "task_type": "manual_task", "config": {}}])


def test_a_workflow_refused_only_for_its_refused_sub_task_is_not_named_twice(db: Database) -> None:
    document = [workflow("wf", ("a", [])), item("a", cron_expression="bad")]
    with pytest.raises(transfer.DocumentRefused) as caught:
        run(db, document)
    assert [entry.label for entry in caught.value.items] == ["tasks[1] (a)"]
    assert caught.value.reason == Reason.CRON_INVALID


def test_a_workflow_may_reference_a_workflow_defined_before_it_in_the_document(db: Database) -> None:
    document = [workflow("outer", ("inner", [])), item("a"), workflow("inner", ("a", []))]
    with pytest.raises(transfer.DocumentRefused, match=r"tasks\[0\] \(outer\)"):
        run(db, document)  # "inner" comes later: not a task yet when "outer" is created
    document = [item("a"), workflow("inner", ("a", [])), workflow("outer", ("inner", []))]
    assert run(db, document) == [("a", "created"), ("inner", "created"), ("outer", "created")]


def test_a_name_taken_after_the_lookup_is_refused_by_the_unique_index(db: Database) -> None:
    with db.session() as session:
        first = task_rules.new_task(session, item("taken"), "admin", "UTC", NOW)
        assert set(task_batches.insert_new(session, [first])) == {"taken"}
        rows = [task_rules.new_task(session, item(name), "admin", "UTC", NOW) for name in ("taken", "free")]
        inserted = task_batches.insert_new(session, rows)
    assert set(inserted) == {"free"}
    assert [entry["name"] for entry in export(db)] == ["taken", "free"]
