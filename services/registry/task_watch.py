"""Notices task rows changed outside this process (init script, another registry replica without
the cluster bus) and forwards them to this process's scheduler feed. Every replica polls for itself,
so nothing is relayed to the others. Changes made through a registry are published at once by its
servicers (and the cluster bus); seeing them here again is harmless (the scheduler ignores
unchanged schedules).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from services.registry.convert import task_event
from services.registry.db import Database
from services.registry.events import EventHub
from services.registry.models import TaskRow
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

log = logging.getLogger(__name__)


class TaskChangeWatcher:
    def __init__(
        self, db: Database, events: EventHub, clock: Callable[[], datetime], interval: float = 2.0
    ) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._interval = interval
        self._seen: dict[int, datetime] | None = None

    def poll(self) -> int:
        """Publishes what changed since the last poll; returns how many events it sent."""
        with self._db.session() as session:
            versions = dict(session.execute(select(TaskRow.id, TaskRow.updated_at)).tuples().all())
            if self._seen is None:
                self._seen = versions
                return 0
            changed = [task_id for task_id, updated in versions.items() if self._seen.get(task_id) != updated]
            rows = list(session.scalars(select(TaskRow).where(TaskRow.id.in_(changed)))) if changed else []
        deleted = set(self._seen) - set(versions)
        now = self._clock()
        for row in rows:
            self._events.deliver_scheduler(task_event(row, now))
        for task_id in deleted:
            self._events.deliver_scheduler(
                internal_pb2.WatchSchedulerEventsResponse(event_type="task_delete", task_id=task_id)
            )
        self._seen = versions
        return len(rows) + len(deleted)

    async def run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:
                log.exception("task change poll failed; will retry")
            await asyncio.sleep(self._interval)
