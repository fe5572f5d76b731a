"""A batch of task creates: every item or none, in as few statements as the database allows.

Each item passes the rules of a single create (`task_rules.new_task`); names are checked against
each other in memory and against existing tasks by the unique index, not looked up first (a lookup
of a thousand names may scan the whole table). The rows are inserted with Core, a thousand per
statement, outside the ORM's unit of work. A batch that breaks a rule raises `InvalidBatch`, which
names each invalid item and stays small enough for gRPC trailers. The import (`transfer.py`), the
seeding of examples and the bulk-import benchmark insert through `insert_new` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.rpc import error_details_pb2
from sqlalchemy import select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common.errors import AlreadyExists, DomainError, InvalidArgument, Reason
from services.registry.db import among, draw_ids, upsert_into
from services.registry.models import TaskRow
from services.registry.store.task_rules import new_task
from services.registry.store.tasks import TASKS, name_taken

# Items of one batch at the most.
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class InvalidItem:
    index: int
    error: DomainError


class InvalidBatch(DomainError):
    """Items of a batch create that break a rule; nothing of the batch was created.

    ALREADY_EXISTS when every invalid item is a taken name, else INVALID_ARGUMENT. The message names
    the first items by index ("tasks[2]: reason") and counts the rest; `items` keeps them all. An error
    travels in gRPC trailers (16 KiB at most, Chinese text percent-encoded three times over), so
    what it names is bounded by count and length: 1,000 invalid items must not turn a clear 400 into
    RESOURCE_EXHAUSTED.
    """

    def __init__(self, items: list[InvalidItem]) -> None:
        named = items[:INVALID_ITEMS_NAMED]
        described = [(f"tasks[{item.index}]", _clipped(item.error.message)) for item in named]
        shown = "；".join(f"{field}: {text}" for field, text in described)
        more = f"；另有 {len(items) - len(named)} 项" if len(items) > len(named) else ""
        names_only = all(isinstance(i.error, AlreadyExists) for i in items)
        super().__init__(
            f"批量创建未执行，{len(items)} 项无效: {shown}{more}",
            reason=Reason.TASK_NAME_TAKEN if names_only else Reason.TASK_INVALID,
        )
        self.items = items
        self.code = AlreadyExists.code if names_only else InvalidArgument.code
        # gRPC clients get the same items as field violations too.
        self.details = (
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
                    for field, text in described
                ]
            ),
        )


INVALID_ITEMS_NAMED = 10
INVALID_ITEM_CHARS = 80


def _clipped(text: str) -> str:
    return text if len(text) <= INVALID_ITEM_CHARS else text[: INVALID_ITEM_CHARS - 1] + "…"


def check_batch_size(count: int) -> None:
    if count > MAX_BATCH:
        raise InvalidArgument(f"一次最多创建{MAX_BATCH}个任务，收到{count}个", reason=Reason.TASK_INVALID)


def create_tasks(
    session: Session,
    items: Sequence[Mapping[str, Any]],
    actor: str,
    default_timezone: str,
    now: datetime,
) -> list[TaskRow]:
    """Creates every item or none (InvalidBatch lists each invalid item with its reason).

    Each item passes the rules of create_task. Names are checked against each other in memory and
    against existing tasks by the unique index (one INSERT ... ON CONFLICT DO NOTHING for the batch).
    The rows returned are detached: they are not in the session.
    """
    check_batch_size(len(items))

    def duplicate(name: str, first: int) -> DomainError:
        return AlreadyExists(f"任务名称 '{name}' 与 tasks[{first}] 重复")

    outcomes = create_each(session, items, [actor] * len(items), default_timezone, now, duplicate)
    # Every item was tried, so that the error names the taken ones too; the error rolls the
    # inserted rows back with the transaction.
    invalid = [
        InvalidItem(index, outcome)
        for index, outcome in enumerate(outcomes)
        if isinstance(outcome, DomainError)
    ]
    if invalid:
        raise InvalidBatch(invalid)
    return [outcome for outcome in outcomes if isinstance(outcome, TaskRow)]


def create_each(
    session: Session,
    items: Sequence[Mapping[str, Any]],
    actors: Sequence[str],
    default_timezone: str,
    now: datetime,
    duplicate: Callable[[str, int], DomainError],
) -> list[TaskRow | DomainError]:
    """One outcome per item, in order: its task (detached, with its id), or why it was not created:
    a rule it breaks, its name taken before (TASK_NAME_TAKEN), or taken by an earlier item
    (`duplicate(name, that item's index)`). `actors[i]` creates `items[i]`.

    The valid items go in one INSERT ... ON CONFLICT DO NOTHING: a taken name is skipped by the
    unique index, not looked up first (a lookup of a thousand names may scan the whole table).
    """
    outcomes: list[TaskRow | DomainError] = []
    first_index: dict[str, int] = {}
    for index, (fields, actor) in enumerate(zip(items, actors, strict=True)):
        try:
            row = new_task(session, fields, actor, default_timezone, now)
        except DomainError as exc:
            outcomes.append(exc)
            continue
        if row.name in first_index:
            outcomes.append(duplicate(row.name, first_index[row.name]))
            continue
        first_index[row.name] = index
        outcomes.append(row)
    ids = insert_new(session, [outcome for outcome in outcomes if isinstance(outcome, TaskRow)])
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, TaskRow):
            if outcome.name in ids:
                outcome.id = ids[outcome.name]
            else:
                outcomes[index] = name_taken(outcome.name)
    return outcomes


# Rows per INSERT statement: 1,000 rows of ~25 columns stay under SQLite's 32,766 parameters.
INSERT_CHUNK = 1000
# Up to this many rows PostgreSQL too takes one INSERT ... RETURNING (a group of single creates,
# `task_creates.py`): fewer round trips than drawing the ids first.
FEW_ROWS = 100


def insert_new(session: Session, rows: Sequence[TaskRow]) -> dict[str, int]:
    """Inserts valid new task rows (from `new_task`) with Core, a thousand per statement, and
    returns the id of each name inserted. A name already taken is skipped by the unique index
    (INSERT ... ON CONFLICT DO NOTHING), not looked up first: it is missing from the result. The
    rows stay outside the session (no ORM unit of work per row)."""
    ids: dict[str, int] = {}
    if not rows:
        return ids
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) > FEW_ROWS:
        for start in range(0, len(rows), INSERT_CHUNK):
            ids.update(_insert_new_postgresql(session, rows[start : start + INSERT_CHUNK]))
        return ids
    statement = (
        upsert_into(TASKS, dialect)
        .on_conflict_do_nothing(index_elements=[TASKS.c.name])
        .returning(TASKS.c.id, TASKS.c.name)
    )
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        inserted = session.execute(statement, [_column_values(row) for row in chunk])
        ids.update((name, task_id) for task_id, name in inserted)
    return ids


def _insert_new_postgresql(session: Session, rows: Sequence[TaskRow]) -> dict[str, int]:
    """PostgreSQL: ids drawn from the table's sequence first, then one pipelined executemany of a
    short INSERT (psycopg would parse a multi-row VALUES of 25,000 parameters in Python, which
    costs more than the database's work). Only when a name is taken (the unique index refuses the
    chunk, in a savepoint) are the free ones inserted and read back by id."""
    new_ids = draw_ids(session, TASKS, len(rows))
    values = [{**_column_values(row), "id": task_id} for row, task_id in zip(rows, new_ids, strict=True)]
    try:
        with session.begin_nested():
            session.execute(postgresql.insert(TASKS), values)
        return {row.name: task_id for row, task_id in zip(rows, new_ids, strict=True)}
    except IntegrityError:
        pass
    session.execute(postgresql.insert(TASKS).on_conflict_do_nothing(index_elements=[TASKS.c.name]), values)
    inserted = session.execute(
        select(TASKS.c.name, TASKS.c.id).where(among(TASKS.c.id, new_ids, "postgresql"))
    )
    return dict(inserted.all())


_INSERTED_COLUMNS = tuple(column.key for column in TASKS.columns if column.key != "id")


def _column_values(row: TaskRow) -> dict[str, Any]:
    # The instance's own dict (what its attributes hold; None for one never set), not an
    # instrumented read per column: this runs for every row of a bulk insert.
    values = vars(row)
    return {key: values.get(key) for key in _INSERTED_COLUMNS}
