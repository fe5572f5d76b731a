"""Cache of task-list pages.

A page depends on the tasks, on their newest executions and on the clock (next_run_time,
schedule_status). It is therefore dropped on every task change and every execution state change
(the EventHub tells it; progress updates do not count), and expires at the earliest next run time it
shows, or after `max_age` seconds at most (changes made outside any registry; changes made by other
registry replicas arrive over the cluster bus and drop it at once).

The total of a filter's matches (every task, or those of a type, a name, a tag) depends on the
tasks only, and counting it is the costly part of an uncached page (a count over 100,000 tasks). So
totals are kept apart from the pages, dropped on task changes only (and after `max_age`): while
runs come and go, which drops every page, a page read again reads only its own rows.

Each page also keeps its REST body (the transcoder's JSON for it, see rest_json), rendered on the
first REST request and then served as is until the page is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from datetime import datetime

from google.api import httpbody_pb2

from services.registry import rest_json
from zquant.scheduler.v1 import task_service_pb2

MAX_PAGES = 256


class CachedPage:
    """A page and, once asked for, its REST body."""

    __slots__ = ("_http_body", "page")

    def __init__(self, page: task_service_pb2.ListTasksResponse) -> None:
        self.page = page
        self._http_body: httpbody_pb2.HttpBody | None = None

    def http_body(self) -> httpbody_pb2.HttpBody:
        if self._http_body is None:
            self._http_body = httpbody_pb2.HttpBody(
                content_type="application/json", data=rest_json.render(self.page)
            )
        return self._http_body


class TaskListCache:
    def __init__(self, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._pages: dict[Hashable, tuple[float, CachedPage]] = {}
        self.hits = 0
        # Bumped by every drop: a page read (in a worker thread) across a drop is not cached.
        self.generation = 0
        self._totals: dict[Hashable, tuple[float, int]] = {}
        # Bumped by every drop of the totals: a total counted across a task change is not kept.
        self.task_generation = 0

    def invalidate(self) -> None:
        self.generation += 1
        self._pages.clear()

    def invalidate_totals(self, _task_id: int | None = None) -> None:
        """A task changed (EventHub.on_task_change): the number of matches may have."""
        self.task_generation += 1
        self._totals.clear()

    def total(self, matches: Hashable) -> int | None:
        entry = self._totals.get(matches)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put_total(self, matches: Hashable, total: int, task_generation: int) -> None:
        """Keeps `total`, unless it was counted before a task change (`task_generation` is the one its
        count began in)."""
        if task_generation != self.task_generation:
            return
        if len(self._totals) >= MAX_PAGES:
            self._totals.clear()
        self._totals[matches] = (self._clock() + self._max_age, total)

    def get(self, key: Hashable) -> CachedPage | None:
        entry = self._pages.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        self.hits += 1
        return entry[1]

    def put(
        self,
        key: Hashable,
        page: task_service_pb2.ListTasksResponse,
        now: datetime,
        generation: int | None = None,
    ) -> CachedPage:
        """Caches `page` (unless it is stale already, or was read before a drop: `generation` is the
        one its read began in); returns its entry either way."""
        entry = CachedPage(page)
        if generation is not None and generation != self.generation:
            return entry
        ttl = self._max_age
        for task in page.tasks:
            if task.HasField("next_run_time"):
                ttl = min(ttl, (task.next_run_time.ToDatetime().timestamp() - now.timestamp()))
        if ttl <= 0:
            return entry
        if len(self._pages) >= MAX_PAGES:
            self._pages.clear()
        self._pages[key] = (self._clock() + ttl, entry)
        return entry
