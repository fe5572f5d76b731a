"""Cache of task-list pages.

A page depends on the tasks, on their newest executions and on the clock (next_run_time,
schedule_status). Which tasks a page holds, and their order, depend on the tasks' own columns only
(its filters and `ORDERABLE` columns are the tasks'); the runs only decide what the page shows of
each of its tasks. So a task change (created, updated, deleted) drops every page, and a run's state
change drops only the pages that show its task (the EventHub tells both; progress updates do not
count): while a burst of runs goes on elsewhere, a page of other tasks stays cached. A page also
expires at the earliest next run time it shows, or after `max_age` seconds at most (changes made
outside any registry; changes made by other registry replicas arrive over the cluster bus and drop
it at once).

A page is read in a worker thread while changes go on: it is cached only if no task changed since
its read began, and no run of a task it shows (the recent run changes are kept, numbered, for that
check; a read that began before the oldest kept is served, not cached).

The total of a filter's matches (every task, or those of a type, a name, a tag) depends on the
tasks only, and counting it is the costly part of an uncached page (a count over 100,000 tasks). So
totals are kept apart from the pages, dropped on task changes only (and after `max_age`): a page
read again after a run change reads only its own rows.

Each page also keeps its REST body (the transcoder's JSON for it, see rest_json), rendered on the
first REST request and then served as is until the page is dropped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime

from google.api import httpbody_pb2

from services.registry import rest_json
from zquant.scheduler.v1 import task_service_pb2

MAX_PAGES = 256
# Run changes remembered for reads under way: more than a read's worth at thousands a second.
RECENT_RUN_CHANGES = 4096


@dataclass(frozen=True, slots=True)
class ReadStart:
    """Where a page's read began: the drops of every page (a task change, or any run's) and the run
    changes counted by then."""

    every_page_drops: int
    run_changes: int


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
        # The keys of the cached pages that show each task.
        self._showing: dict[int, set[Hashable]] = {}
        self.hits = 0
        # Counted: a page read across a change that concerns it is not cached.
        self.every_page_drops = 0
        self.run_changes = 0
        self._recent_runs: deque[tuple[int, int]] = deque(maxlen=RECENT_RUN_CHANGES)
        self._totals: dict[Hashable, tuple[float, int]] = {}

    def task_changed(self, _task_id: int | None = None) -> None:
        """A task changed, or any may have (None): every page and every total goes."""
        self._drop_every_page()
        self._totals.clear()

    def run_changed(self, task_id: int | None) -> None:
        """A run of `task_id` changed state: the pages showing that task go (every page for None:
        any task's runs may have changed)."""
        if task_id is None:
            self._drop_every_page()
            return
        self.run_changes += 1
        self._recent_runs.append((self.run_changes, task_id))
        for key in self._showing.pop(task_id, ()):
            self._pages.pop(key, None)

    def read_start(self) -> ReadStart:
        return ReadStart(self.every_page_drops, self.run_changes)

    def total(self, matches: Hashable) -> int | None:
        entry = self._totals.get(matches)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def put_total(self, matches: Hashable, total: int, began: ReadStart) -> None:
        """Keeps `total`, unless every page was dropped since its count began (as on any task
        change)."""
        if began.every_page_drops != self.every_page_drops:
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
        began: ReadStart | None = None,
    ) -> CachedPage:
        """Caches `page` (unless it is stale already, or a change that concerns it came while it was
        read: `began` is where its read began); returns its entry either way."""
        entry = CachedPage(page)
        if began is not None and self._changed_since(began, page):
            return entry
        ttl = self._max_age
        for task in page.tasks:
            if task.HasField("next_run_time"):
                ttl = min(ttl, (task.next_run_time.ToDatetime().timestamp() - now.timestamp()))
        if ttl <= 0:
            return entry
        if len(self._pages) >= MAX_PAGES:  # a full cache starts afresh
            self._pages.clear()
            self._showing.clear()
        self._pages[key] = (self._clock() + ttl, entry)
        for task in page.tasks:
            self._showing.setdefault(task.id, set()).add(key)
        return entry

    def _changed_since(self, began: ReadStart, page: task_service_pb2.ListTasksResponse) -> bool:
        if began.every_page_drops != self.every_page_drops:
            return True
        if began.run_changes == self.run_changes:
            return False
        if not self._recent_runs or self._recent_runs[0][0] > began.run_changes + 1:
            return True  # more run changes than are remembered
        shown = {task.id for task in page.tasks}
        for number, task_id in reversed(self._recent_runs):
            if number <= began.run_changes:
                return False
            if task_id in shown:
                return True
        return False

    def _drop_every_page(self) -> None:
        self.every_page_drops += 1
        self._pages.clear()
        self._showing.clear()
