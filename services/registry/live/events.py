"""Fan-out of live events: the scheduler's change feed and execution watchers.

Publishers call `publish_*` after their transaction committed, so a subscriber never sees a change
that was rolled back. A publish reaches this process's subscribers at once and, when a `relay` is set
(the cluster bus on PostgreSQL, `cluster.py`), the other registry replicas too. The bus hands what
other replicas published to `deliver_*`, which reaches this process's subscribers only.

Queues are unbounded on purpose: a slow watcher must not make a publisher drop or block; watchers
are few and each event is small.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

SchedulerEvent = internal_pb2.WatchSchedulerEventsResponse
# Put on a scheduler feed to end it (compared by identity): the scheduler subscribes again and gets
# a fresh snapshot.
RESUBSCRIBE = SchedulerEvent()
TASK_EVENTS = frozenset({SchedulerEvent.EVENT_TYPE_TASK_UPSERT, SchedulerEvent.EVENT_TYPE_TASK_DELETE})


class Relay(Protocol):
    """Carries events published in this process to the other registry replicas."""

    def scheduler_event(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None: ...

    def execution_changed(self, execution: task_pb2.Execution, attempt: int) -> None: ...

    def progress(self, execution_id: int, attempt: int, snapshot: task_pb2.Execution | None) -> None:
        """A progress snapshot, or a bare heartbeat (None) that only renews the run's lease."""


class EventHub:
    def __init__(self) -> None:
        self._scheduler: set[asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse]] = set()
        # The feeds whose scheduler answers trigger offers (live/trigger_offers.py).
        self._offer_takers: set[asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse]] = set()
        self._executions: defaultdict[int, set[asyncio.Queue[task_pb2.Execution]]] = defaultdict(set)
        # Called on every change of a task or of an execution's state (not on progress updates).
        self.on_change: list[Callable[[], None]] = []
        # Called with the task id on every change of a task (created, updated, deleted); with None
        # when any task may have changed.
        self.on_task_change: list[Callable[[int | None], None]] = []
        # Called with its task's id on every state change of a run (not on progress updates); with
        # None when any run may have changed.
        self.on_run_change: list[Callable[[int | None], None]] = []
        self.relay: Relay | None = None
        # Followers of runs' logs, woken when this replica appends (other replicas' appends are
        # found by polling).
        self._logs: defaultdict[int, set[asyncio.Event]] = defaultdict(set)

    def _changed(self) -> None:
        for callback in self.on_change:
            callback()

    def _run_changed(self, task_id: int | None) -> None:
        for callback in self.on_run_change:
            callback(task_id)

    # ---- scheduler feed ---------------------------------------------------------------------

    def publish_scheduler(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        self.deliver_scheduler(event)
        if self.relay is not None:
            self.relay.scheduler_event(event)

    def deliver_scheduler(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        """To this process's feeds only: events of other replicas, rows changed outside any registry."""
        self._changed()
        if event.type in TASK_EVENTS:
            task_id = event.task.id if event.type == SchedulerEvent.EVENT_TYPE_TASK_UPSERT else event.task_id
            for callback in self.on_task_change:
                callback(task_id)
        else:  # a run made ready or asked to stop
            self._run_changed(event.execution.task_id if event.HasField("execution") else None)
        for queue in self._scheduler:
            queue.put_nowait(event)

    def end_scheduler_feeds(self) -> None:
        """Events may have been missed (the cluster bus was disconnected): every feed ends, so its
        scheduler subscribes again and rebuilds its view from a snapshot."""
        self._changed()
        for callback in self.on_task_change:
            callback(None)
        self._run_changed(None)
        for queue in self._scheduler:
            queue.put_nowait(RESUBSCRIBE)

    def publish_offer(self, event: internal_pb2.WatchSchedulerEventsResponse) -> None:
        """A trigger offer, to this process's feeds that take offers only (never relayed)."""
        for queue in self._offer_takers:
            queue.put_nowait(event)

    @property
    def offer_takers(self) -> int:
        return len(self._offer_takers)

    @contextmanager
    def scheduler_feed(self) -> Iterator[asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse]]:
        queue: asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse] = asyncio.Queue()
        self._scheduler.add(queue)
        try:
            yield queue
        finally:
            self._scheduler.discard(queue)

    @contextmanager
    def offers_to(self, feed: asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse]) -> Iterator[None]:
        """While open, trigger offers go to `feed` as well."""
        self._offer_takers.add(feed)
        try:
            yield
        finally:
            self._offer_takers.discard(feed)

    @property
    def scheduler_subscribers(self) -> int:
        return len(self._scheduler)

    # ---- executions -------------------------------------------------------------------------

    def publish_execution(self, execution: task_pb2.Execution, attempt: int) -> None:
        """A state change of an execution (created, started, requeued, finished, terminated);
        `attempt` is the row's attempt counter after the change."""
        self.deliver_execution(execution)
        if self.relay is not None:
            self.relay.execution_changed(execution, attempt)

    def deliver_execution(self, execution: task_pb2.Execution) -> None:
        self._changed()
        self._run_changed(execution.task_id)
        self.deliver_progress(execution)

    def publish_progress(self, execution: task_pb2.Execution, attempt: int) -> None:
        """A progress snapshot of a running execution, for its watchers only."""
        self.deliver_progress(execution)
        if self.relay is not None:
            self.relay.progress(execution.id, attempt, execution)

    def publish_heartbeat(self, execution_id: int, attempt: int) -> None:
        """A report without progress: nothing for watchers, but other replicas renew the lease."""
        if self.relay is not None:
            self.relay.progress(execution_id, attempt, None)

    def deliver_progress(self, execution: task_pb2.Execution) -> None:
        for queue in self._executions.get(execution.id, ()):
            queue.put_nowait(execution)

    def watched_executions(self) -> list[int]:
        return list(self._executions)

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

    # ---- logs -------------------------------------------------------------------------------

    def log_appended(self, execution_id: int) -> None:
        for wakeup in self._logs.get(execution_id, ()):
            wakeup.set()

    @contextmanager
    def log_feed(self, execution_id: int) -> Iterator[asyncio.Event]:
        """Set whenever the run's log grows here; the follower clears it before reading."""
        wakeup = asyncio.Event()
        self._logs[execution_id].add(wakeup)
        try:
            yield wakeup
        finally:
            followers = self._logs[execution_id]
            followers.discard(wakeup)
            if not followers:
                del self._logs[execution_id]
