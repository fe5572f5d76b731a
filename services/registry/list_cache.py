"""Cache of task-list pages.

A page depends on the tasks, on their newest executions and on the clock (next_run_time,
schedule_status). It is therefore dropped on every task change and every execution state change
(the EventHub tells it; progress updates do not count), and expires at the earliest next run time it
shows, or after `max_age` seconds at most (changes made outside any registry; changes made by other
registry replicas arrive over the cluster bus and drop it at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from datetime import datetime

from zquant.scheduler.v1 import task_service_pb2

MAX_PAGES = 256


class TaskListCache:
    def __init__(self, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._pages: dict[Hashable, tuple[float, task_service_pb2.ListTasksResponse]] = {}
        self.hits = 0

    def invalidate(self) -> None:
        self._pages.clear()

    def get(self, key: Hashable) -> task_service_pb2.ListTasksResponse | None:
        entry = self._pages.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        self.hits += 1
        return entry[1]

    def put(self, key: Hashable, page: task_service_pb2.ListTasksResponse, now: datetime) -> None:
        ttl = self._max_age
        for task in page.tasks:
            if task.HasField("next_run_time"):
                ttl = min(ttl, (task.next_run_time.ToDatetime().timestamp() - now.timestamp()))
        if ttl <= 0:
            return
        if len(self._pages) >= MAX_PAGES:
            self._pages.clear()
        self._pages[key] = (self._clock() + ttl, page)
