"""Single task creates that arrive together are stored in one transaction.

A create is a short transaction whose fixed costs (the hop to a worker thread, BEGIN, the turn at
SQLite's write lock, the commit) outweigh its one row. So creates wait in line while the
transaction before them is under way, and the next transaction takes the whole line (up to
`MAX_GROUP`): a lone create goes at once, as before, and eight clients creating at once share
commits. Each create keeps its own answer:
- each is checked alone (`task_rules.new_task`); one that breaks a rule gets its own error;
- the rows go in one INSERT ... ON CONFLICT DO NOTHING; a name taken before, or by an earlier
  create of the same group, gets TASK_NAME_TAKEN, as it would one at a time;
- a group whose transaction fails for any other reason (the database refusing something the checks
  let through, a lost connection) is stored again one create at a time, so that no create fails for
  another's sake.

Workflows do not wait in line: their check reads the sub-tasks and must hold SQLite's write lock from
that read (`serialized`), so each is a transaction of its own.

The line's transactions run on a thread of their own, one at a time as the line stores them: the
same thread every time, not whichever of the shared worker threads is free (measured: 4–6 % more
creates per second, a little less CPU per create).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common.vocabulary import TaskType
from services.registry.db import Database
from services.registry.models import TaskRow
from services.registry.settings import RegistrySettings
from services.registry.store import audit, task_batches, task_rules
from services.registry.store import tasks as store
from services.registry.store.audit import Action, Actor, Target

log = logging.getLogger(__name__)

# Creates stored in one transaction at the most.
MAX_GROUP = 100


def reads_other_tasks(fields: Mapping[str, Any]) -> bool:
    """A workflow's create decides on the sub-tasks it reads: its transaction is `serialized` (on
    SQLite the check and the insert are one turn at the write lock)."""
    return fields.get("task_type") == TaskType.WORKFLOW


def create_entry(actor: Actor, row: TaskRow, now: datetime) -> dict[str, Any]:
    """The audit entry of a created task (`audit.record`): who, and the fields given (not the
    defaults)."""
    fields = task_rules.editable_values(row)
    given = {name: value for name, value in fields.items() if value not in (None, "", [], {})}
    return audit.entry(actor, Action.TASK_CREATE, Target.TASK, row.id, now, name=row.name, changes=given)


@dataclass(frozen=True, slots=True)
class _Create:
    fields: Mapping[str, Any]
    actor: Actor
    answer: asyncio.Future[TaskRow]


class TaskCreates:
    def __init__(self, db: Database, settings: RegistrySettings, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._settings = settings
        self._clock = clock
        self._line: list[_Create] = []
        self._storing: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="task-creates")

    async def create(self, fields: Mapping[str, Any], actor: Actor) -> TaskRow:
        """The created task (detached from any session), or the create's own DomainError."""
        if reads_other_tasks(fields):
            return await asyncio.to_thread(self._store_alone, fields, actor, serialized=True)
        answer: asyncio.Future[TaskRow] = asyncio.get_running_loop().create_future()
        self._line.append(_Create(fields, actor, answer))
        if self._storing is None:
            self._storing = asyncio.create_task(self._store_line())
        return await answer

    async def _store_line(self) -> None:
        try:
            while self._line:
                group, self._line = self._line[:MAX_GROUP], self._line[MAX_GROUP:]
                group = [create for create in group if not create.answer.done()]  # callers gone
                try:
                    outcomes = await asyncio.get_running_loop().run_in_executor(
                        self._thread, self._store_group, group
                    )
                except Exception as exc:  # every caller learns it, as alone
                    outcomes = [exc] * len(group)
                for create, outcome in zip(group, outcomes, strict=True):
                    if create.answer.done():
                        continue
                    if isinstance(outcome, Exception):
                        create.answer.set_exception(outcome)
                    else:
                        create.answer.set_result(outcome)
        finally:
            self._storing = None

    def close(self) -> None:
        """Stops the line's thread once the group under way, if any, is stored."""
        self._thread.shutdown(wait=False)

    def _store_group(self, group: list[_Create]) -> list[TaskRow | Exception]:
        try:
            return self._store_together(group)
        except Exception:  # one create must not fail the others: each alone
            if len(group) == 1:  # its failure is its own
                raise
            log.warning("a group of task creates failed; storing each alone", exc_info=True)
        outcomes: list[TaskRow | Exception] = []
        for create in group:
            try:
                outcomes.append(self._store_alone(create.fields, create.actor))
            except Exception as exc:  # its caller gets it
                outcomes.append(exc)
        return outcomes

    def _store_together(self, group: list[_Create]) -> list[TaskRow | Exception]:
        now = self._clock()
        with self._db.session() as session:
            outcomes = task_batches.create_each(
                session,
                [create.fields for create in group],
                [create.actor.username for create in group],
                self._settings.default_timezone,
                now,
                lambda name, _first: store.name_taken(name),  # an earlier create of the group took it
            )
            audit.record(
                session,
                *(
                    create_entry(create.actor, outcome, now)
                    for create, outcome in zip(group, outcomes, strict=True)
                    if isinstance(outcome, TaskRow)
                ),
            )
        return list(outcomes)

    def _store_alone(self, fields: Mapping[str, Any], actor: Actor, *, serialized: bool = False) -> TaskRow:
        now = self._clock()
        with self._db.session(serialized=serialized) as session:
            row = store.create_task(session, fields, actor.username, self._settings.default_timezone, now)
            audit.record(session, create_entry(actor, row, now))
            return row
