"""Import and export of tasks and workflows as a document that moves between installations.

A document is ``{"version": 1, "tasks": [item, ...]}``; an item holds a task's editable fields
(``name``, ``task_type``, the schedule, ``config`` ...). Ids never appear: a workflow's config names
its sub-tasks (``{"task": "<name>", "dependencies": ["<name>", ...]}`` in place of ``task_id`` and
the ids of ``dependencies``), so the same document means the same thing on any installation.

Import upserts by name in one transaction: an item whose name is new is created, one whose fields
differ from the stored task is updated (only the fields the item carries), the rest are unchanged.
Every rule of a create or update applies; any invalid item refuses the whole document, naming each
invalid item by its index and name. A dry run does all of it and rolls back, so what it reports is
exactly what the import would do.

Import is the bulk path (the init script uses it; issue 16 asks >= 5,000 tasks/s): every item is
checked in memory, the new non-workflow tasks go in with Core INSERTs of a thousand rows
(``task_batches.insert_new``: no ORM unit of work per row), then each new workflow, whose config
references its sub-tasks by id. Existing tasks are loaded by name a thousand at a time and updated
through ``tasks.update_task`` (an update is rarer, and keeps every rule of a single update).

The pure part (``export_item``, ``changes_of``, ``config_by_name``, ``config_by_id``) is what the
unit tests check; ``export_page`` and ``import_document`` are the thin database shell.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.rpc import error_details_pb2
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.errors import DomainError, InvalidArgument, Reason
from services.common.input_checks import parse_rfc3339, shown
from services.common.vocabulary import TaskType
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.store.task_batches import insert_new
from services.registry.store.task_rules import EDITABLE, new_task
from services.registry.store.tasks import name_taken, update_task

DOCUMENT_VERSION = 1
# Items per export page, and the most one import takes (the gateway's 1 MiB body is the other bound).
DEFAULT_PAGE = 500
MAX_PAGE = 1000
MAX_IMPORT = 20_000
# Names looked up per statement (PostgreSQL allows 65,535 parameters, SQLite 32,766).
NAMES_PER_QUERY = 1000
# An item's fields: what a create accepts.
ACCEPTED = EDITABLE | {"task_type"}
# Fields whose empty value is stored as "nothing": "" / 0 / null compare equal.
CLEARABLE = frozenset({"cron_expression", "interval_seconds", "run_at", "description", "timeout_seconds"})

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


# ---- the document, pure -----------------------------------------------------------------------


def export_item(row: TaskRow, names: Mapping[int, str]) -> dict[str, Any]:
    """A task as a document item; `names` maps the ids a workflow references to their names."""
    item: dict[str, Any] = {
        "name": row.name,
        "task_type": row.task_type,
        "description": row.description,
        "enabled": row.enabled,
        "cron_expression": row.cron_expression,
        "interval_seconds": row.interval_seconds,
        "run_at": row.run_at.isoformat() if row.run_at else None,
        "timezone": row.timezone,
        "max_retries": row.max_retries,
        "retry_interval": row.retry_interval,
        "timeout_seconds": row.timeout_seconds,
        "concurrency_policy": row.concurrency_policy,
        "misfire_policy": row.misfire_policy,
        "misfire_grace_seconds": row.misfire_grace_seconds,
        "config": config_by_name(row.config, names) if row.task_type == TaskType.WORKFLOW else row.config,
    }
    return item


def workflow_ids(config: Mapping[str, Any]) -> set[int]:
    """The task ids a stored workflow config mentions (nodes and dependencies)."""
    ids: set[int] = set()
    for node in config.get("tasks") or []:
        if isinstance(node, dict):
            ids.update(value for value in [node.get("task_id")] if isinstance(value, int))
            ids.update(value for value in node.get("dependencies") or [] if isinstance(value, int))
    return ids


def config_by_name(config: Mapping[str, Any], names: Mapping[int, str]) -> dict[str, Any]:
    """A stored workflow config with its sub-tasks named instead of numbered."""
    nodes = []
    for node in config.get("tasks") or []:
        named = {key: value for key, value in node.items() if key not in ("task_id", "dependencies")}
        named = {"task": names.get(node.get("task_id"), f"#{node.get('task_id')}"), **named}
        if "dependencies" in node:
            named["dependencies"] = [names.get(dep, f"#{dep}") for dep in node["dependencies"] or []]
        nodes.append(named)
    return {**config, "tasks": nodes}


def config_by_id(config: Any, ids: Mapping[str, int]) -> Any:
    """A document's workflow config with task ids for names, as the store keeps it. A name that
    is not a task (in the document or the installation) is refused with the name."""
    if not isinstance(config, dict) or not isinstance(config.get("tasks"), list):
        return config  # the store's workflow checks refuse it with the guide's message

    def id_of(name: Any) -> int:
        if not isinstance(name, str):
            raise InvalidArgument(
                f"编排引用的子任务必须写名称，收到 {shown(name)}", reason=Reason.WORKFLOW_INVALID
            )
        if name not in ids:
            raise InvalidArgument(f"编排引用的任务 '{name}' 不存在", reason=Reason.WORKFLOW_INVALID)
        return ids[name]

    nodes = []
    for node in config["tasks"]:
        if not isinstance(node, dict) or "task" not in node:
            raise InvalidArgument("编排的每个节点必须用 task 写出子任务名称", reason=Reason.WORKFLOW_INVALID)
        numbered = {key: value for key, value in node.items() if key not in ("task", "dependencies")}
        numbered = {"task_id": id_of(node["task"]), **numbered}
        if "dependencies" in node:
            dependencies = node["dependencies"]
            if not isinstance(dependencies, list):
                raise InvalidArgument("dependencies 必须是名称数组", reason=Reason.WORKFLOW_INVALID)
            numbered["dependencies"] = [id_of(name) for name in dependencies]
        nodes.append(numbered)
    return {**config, "tasks": nodes}


def referenced_names(item: Mapping[str, Any]) -> set[str]:
    """The task names a workflow item's config mentions (nodes and dependencies); none for others."""
    config = item.get("config")
    if item.get("task_type") != TaskType.WORKFLOW or not isinstance(config, dict):
        return set()
    names: set[str] = set()
    for node in config.get("tasks") or []:
        if isinstance(node, dict):
            dependencies = node.get("dependencies")
            mentioned = [node.get("task"), *(dependencies if isinstance(dependencies, list) else [])]
            names.update(name for name in mentioned if isinstance(name, str))
    return names


def _same(name: str, stored: Any, wanted: Any) -> bool:
    if name in CLEARABLE and stored in (None, "", 0) and wanted in (None, "", 0):
        return True
    if name == "run_at" and isinstance(stored, str) and isinstance(wanted, str):
        try:
            moments = [parse_rfc3339(text, "run_at", reason=Reason.TASK_INVALID) for text in (stored, wanted)]
            return moments[0] == moments[1]
        except DomainError:
            return False
    return bool(stored == wanted) and type(stored) is type(wanted)


def changes_of(stored: Mapping[str, Any], item: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `item` that differ from the stored task's item (both in document form)."""
    return {
        name: value
        for name, value in item.items()
        if name not in ("name", "task_type") and not _same(name, stored.get(name), value)
    }


def document_items(document: Any) -> list[Any]:
    """The items of a document, checked for shape only (each item is checked on import)."""
    if not isinstance(document, dict):
        raise InvalidArgument(f"导入文档必须是 JSON 对象，收到 {shown(document)}", reason=Reason.TASK_INVALID)
    unknown = sorted(set(document) - {"version", "tasks"})
    if unknown:
        raise InvalidArgument(
            f"导入文档不支持的字段: {shown(', '.join(unknown))}", reason=Reason.TASK_INVALID
        )
    version = document.get("version", DOCUMENT_VERSION)
    if version != DOCUMENT_VERSION:
        raise InvalidArgument(
            f"不支持的文档版本 {shown(version)}，应为 {DOCUMENT_VERSION}", reason=Reason.TASK_INVALID
        )
    items = document.get("tasks")
    if not isinstance(items, list):
        raise InvalidArgument("导入文档必须包含 tasks 数组", reason=Reason.TASK_INVALID)
    if len(items) > MAX_IMPORT:
        raise InvalidArgument(
            f"一次最多导入{MAX_IMPORT}个任务，收到{len(items)}个", reason=Reason.TASK_INVALID
        )
    return items


def item_fields(item: Any) -> dict[str, Any]:
    """One item's fields: an object with a name and only fields the document knows."""
    if not isinstance(item, dict):
        raise InvalidArgument(f"必须是 JSON 对象，收到 {shown(item)}", reason=Reason.TASK_INVALID)
    unknown = sorted(set(item) - ACCEPTED)
    if unknown:
        raise InvalidArgument(f"不支持的字段: {shown(', '.join(unknown))}", reason=Reason.TASK_INVALID)
    if not isinstance(item.get("name"), str) or not item["name"].strip():
        raise InvalidArgument("任务名称不能为空", reason=Reason.TASK_INVALID)
    return {name: value for name, value in item.items() if value is not None or name in CLEARABLE}


# ---- errors -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvalidItem:
    index: int
    name: str
    error: DomainError

    @property
    def label(self) -> str:
        return f"tasks[{self.index}]" + (f" ({self.name})" if self.name else "")


class DocumentRefused(DomainError):
    """Items of an import that break a rule; nothing was changed. The message names each item by
    its index and name ("tasks[2] (daily-report): reason"); gRPC clients get them as field
    violations of a google.rpc.BadRequest too."""

    def __init__(self, items: list[InvalidItem]) -> None:
        listed = "；".join(f"{item.label}: {item.error.message}" for item in items[:20])
        more = f"；另有 {len(items) - 20} 项" if len(items) > 20 else ""
        reasons = {item.error.reason for item in items}
        super().__init__(
            f"导入未执行，{len(items)} 项无效: {listed}{more}",
            reason=reasons.pop() if len(reasons) == 1 else Reason.TASK_INVALID,
        )
        self.items = items
        self.code = InvalidArgument.code
        self.details = (
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=item.label, description=item.error.message
                    )
                    for item in items
                ]
            ),
        )


# ---- the database shell -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportPage:
    items: list[dict[str, Any]]
    # The id to pass as after_id for the next page; 0 when this was the last.
    next_after_id: int


def _names_of(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    names: dict[int, str] = {}
    for start in range(0, len(wanted), NAMES_PER_QUERY):
        chunk = wanted[start : start + NAMES_PER_QUERY]
        statement = select(TaskRow.id, TaskRow.name).where(TaskRow.id.in_(chunk))
        names.update((task_id, name) for task_id, name in session.execute(statement))
    return names


def _rows_named(session: Session, names: Iterable[str]) -> dict[str, TaskRow]:
    wanted = sorted(set(names))
    rows: dict[str, TaskRow] = {}
    for start in range(0, len(wanted), NAMES_PER_QUERY):
        chunk = wanted[start : start + NAMES_PER_QUERY]
        rows.update(
            (row.name, row) for row in session.scalars(select(TaskRow).where(TaskRow.name.in_(chunk)))
        )
    return rows


def export_page(session: Session, after_id: int, limit: int) -> ExportPage:
    """The tasks with id > after_id, by id (a keyset page: deep pages cost what the first does)."""
    if after_id < 0:
        raise InvalidArgument("after_id 不能为负数")
    limit = limit or DEFAULT_PAGE
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(f"limit 必须在1到{MAX_PAGE}之间")
    rows = list(
        session.scalars(select(TaskRow).where(TaskRow.id > after_id).order_by(TaskRow.id).limit(limit))
    )
    referenced = set().union(
        *(workflow_ids(row.config) for row in rows if row.task_type == TaskType.WORKFLOW)
    )
    names = _names_of(session, referenced)
    next_after_id = rows[-1].id if len(rows) == limit else 0
    return ExportPage([export_item(row, names) for row in rows], next_after_id)


@dataclass(frozen=True, slots=True)
class Imported:
    """What an import did (or, in a dry run, would do) to each name, in document order."""

    actions: list[
        tuple[str, str, int]
    ]  # (name, created|updated|unchanged, task id; 0 in a dry run when created)
    changed: list[TaskRow]


class _RolledBack(Exception):
    def __init__(self, imported: Imported) -> None:
        self.imported = imported


def import_document(
    session: Session,
    items: list[Any],
    actor: str,
    default_timezone: str,
    now: datetime,
    *,
    dry_run: bool,
) -> Imported:
    """Upserts every item or none (DocumentRefused names each invalid one). Sub-tasks first, then
    workflows, so that a workflow may reference tasks of the same document. A dry run raises
    before the caller's transaction commits; use `run_import`, which rolls it back."""
    fields: dict[int, dict[str, Any]] = {}
    invalid: list[InvalidItem] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        name = str(item["name"]) if isinstance(item, dict) and isinstance(item.get("name"), str) else ""
        try:
            checked = item_fields(item)
        except DomainError as exc:
            invalid.append(InvalidItem(index, name, exc))
            continue
        if name in first_index:
            duplicate = InvalidArgument(f"名称与 tasks[{first_index[name]}] 重复", reason=Reason.TASK_INVALID)
            invalid.append(InvalidItem(index, name, duplicate))
            continue
        first_index[name] = index
        fields[index] = checked
    existing = _rows_named(session, first_index)
    # Names a workflow references that the document does not define: existing tasks.
    referenced = set().union(*(referenced_names(item) for item in fields.values()))
    outside = {name for name in referenced if isinstance(name, str) and name not in first_index}
    ids = {row.name: row.id for row in _rows_named(session, outside).values()}
    ids.update((name, row.id) for name, row in existing.items())
    stored_names = _names_of(
        session,
        set().union(
            *(workflow_ids(row.config) for row in existing.values() if row.task_type == TaskType.WORKFLOW)
        ),
    )

    actions: dict[int, tuple[str, str, int]] = {}
    changed: list[TaskRow] = []
    # Sub-tasks first, the new ones inserted in bulk; then workflows one at a time, in document
    # order, each referencing by id the tasks (and workflows) before it.
    plain = [index for index in fields if fields[index].get("task_type") != TaskType.WORKFLOW]
    workflows = [[index] for index in fields if fields[index].get("task_type") == TaskType.WORKFLOW]
    for indices in (plain, *workflows):
        new_rows: list[tuple[int, TaskRow]] = []
        for index in indices:
            item = fields[index]
            name = item["name"]
            try:
                row = existing.get(name)
                if row is None:
                    wanted = {key: value for key, value in item.items() if value is not None}
                    if item.get("task_type") == TaskType.WORKFLOW:
                        wanted["config"] = config_by_id(item.get("config"), ids)
                    new_rows.append((index, new_task(session, wanted, actor, default_timezone, now)))
                    continue
                action = _update(session, row, item, ids, stored_names, actor, now)
                actions[index] = (name, action, row.id)
                if action == UPDATED:
                    changed.append(row)
            except DomainError as exc:
                if referenced_names(item) & {entry.name for entry in invalid}:
                    continue  # a workflow whose sub-task is refused: that item's own error says why
                invalid.append(InvalidItem(index, name, exc))
        inserted = insert_new(session, [row for _, row in new_rows])
        for index, row in new_rows:
            if row.name not in inserted:  # created since the names were looked up
                invalid.append(InvalidItem(index, row.name, name_taken(row.name)))
                continue
            row.id = ids[row.name] = inserted[row.name]
            actions[index] = (row.name, CREATED, row.id)
            changed.append(row)
    if invalid:
        raise DocumentRefused(sorted(invalid, key=lambda item: item.index))
    imported = Imported([actions[index] for index in sorted(actions)], changed)
    if dry_run:
        raise _RolledBack(imported)
    return imported


def _update(
    session: Session,
    row: TaskRow,
    item: dict[str, Any],
    ids: Mapping[str, int],
    stored_names: Mapping[int, str],
    actor: str,
    now: datetime,
) -> str:
    """Applies an item to the stored task of its name: UPDATED, or UNCHANGED when nothing differs."""
    if "task_type" in item and item["task_type"] != row.task_type:
        raise InvalidArgument(
            f"任务类型不能修改（现为 {row.task_type}，文档为 {shown(item['task_type'])}）",
            reason=Reason.TASK_INVALID,
        )
    changes = changes_of(export_item(row, stored_names), item)
    if not changes:
        return UNCHANGED
    if "config" in changes and row.task_type == TaskType.WORKFLOW:
        changes["config"] = config_by_id(changes["config"], ids)
    update_task(session, row.id, changes, actor, now)
    return UPDATED


def run_import(
    db: Database, items: list[Any], actor: str, default_timezone: str, now: datetime, *, dry_run: bool
) -> Imported:
    """`import_document` in a serialized transaction: committed, or rolled back for a dry run or
    any refusal. Called in a worker thread."""
    try:
        with db.session(serialized=True) as session:
            return import_document(session, items, actor, default_timezone, now, dry_run=dry_run)
    except _RolledBack as rolled_back:
        created = [
            (name, action, 0 if action == CREATED else task_id)
            for name, action, task_id in rolled_back.imported.actions
        ]
        return Imported(created, [])
