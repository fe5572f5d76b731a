"""In-process fan-out of live events: the scheduler's change feed and execution watchers.

Publishers call these after their transaction committed, so a subscriber never sees a change that
was rolled back. Queues are unbounded on purpose: a slow watcher must not make a publisher drop or
block; watchers are few and each event is small.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2


class EventHub:
    def __init__(self) -> None:
        self._scheduler: set[asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse]] = set()
        self._executions: defaultdict[int, set[asyncio.Queue[task_pb2.Execution]]] = defaultdict(set)
        # Called on every change of a task or of an execution's state (not on progress updates).
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def publish_scheduler(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        self._changed()
        for queue in self._scheduler:
            queue.put_nowait(event)

    @contextmanager
    def scheduler_feed(self) -> Iterator[asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse]]:
        queue: asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse] = asyncio.Queue()
        self._scheduler.add(queue)
        try:
            yield queue
        finally:
            self._scheduler.discard(queue)

    @property
    def scheduler_subscribers(self) -> int:
        return len(self._scheduler)

    def publish_execution(self, execution: task_pb2.Execution) -> None:
        """A state change of an execution (created, started, finished, terminated)."""
        self._changed()
        self.publish_progress(execution)

    def publish_progress(self, execution: task_pb2.Execution) -> None:
        """A progress snapshot of a running execution, for its watchers only."""
        for queue in self._executions.get(execution.id, ()):
            queue.put_nowait(execution)

    @contextmanager
    def execution_feed(self, execution_id: int) -> Iterator[asyncio.Queue[task_pb2.Execution]]:
        queue: asyncio.Queue[task_pb2.Execution] = asyncio.Queue()
        self._executions[execution_id].add(queue)
        try:
            yield queue
        finally:
            subscribers = self._executions[execution_id]
            subscribers.discard(queue)
            if not subscribers:
                del self._executions[execution_id]
