"""Task names by id, for execution records (which carry their task's name).

A run's start and end need the name; reading it per run would be one more query on the hot path.
Names change only with their task, so a name is dropped on every change of its task the EventHub hears
(this replica's, and other replicas' over the cluster bus).
"""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from services.registry.store.run_history import task_names

MAX_NAMES = 100_000


class TaskNameCache:
    def __init__(self) -> None:
        self._names: dict[int, str] = {}
        # Bumped by every drop: a name read before a drop is not cached after it. Worker threads
        # read names while the event loop drops them, hence the lock.
        self._generation = 0
        self._lock = threading.Lock()

    def invalidate(self, task_id: int | None) -> None:
        """Forgets a task's name (a task changed), or every name (None: any may have)."""
        with self._lock:
            self._generation += 1
            if task_id is None:
                self._names.clear()
            else:
                self._names.pop(task_id, None)

    def get(self, session: Session, task_id: int) -> str:
        return self.get_many(session, {task_id})[task_id]

    def get_many(self, session: Session, task_ids: set[int]) -> dict[int, str]:
        """Names by task id ("" for a task that does not exist), reading the missing ones at once."""
        with self._lock:
            names = {task_id: self._names[task_id] for task_id in task_ids if task_id in self._names}
            generation = self._generation
        missing = task_ids - names.keys()
        if missing:
            found = task_names(session, missing)
            fetched = {task_id: found.get(task_id, "") for task_id in missing}
            names.update(fetched)
            with self._lock:
                if generation == self._generation:
                    if len(self._names) + len(missing) > MAX_NAMES:
                        self._names.clear()
                    self._names.update(fetched)
        return names
