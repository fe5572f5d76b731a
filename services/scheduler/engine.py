"""The scheduler engine: WHEN each task fires.

The registry is the source of truth, followed through its change feed (a snapshot of every task,
then changes); the timetable (`timetable.py`, APScheduler with our `triggers.py`) says when each
schedulable task is due. What a fire becomes is `fires.py`'s: a skipped run with its reason, or a
run keyed by task + planned time (so duplicates are impossible) that `dispatch.py` drives. Times
missed while no scheduler ran are found when the snapshot arrives and caught up the same way.
Calendars come from `calendar_cache.py`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime

import grpc

from services.common.calendars import TradingCalendar
from services.common.heap import freeze_heap
from services.common.metrics import FIRE_LATENESS
from services.common.vocabulary import Trigger
from services.scheduler.backfills import drive_backfills
from services.scheduler.background import Background
from services.scheduler.calendar_cache import CalendarCache
from services.scheduler.clients import ExecutorPool, RegistryClient
from services.scheduler.dispatch import Dispatcher
from services.scheduler.fires import Fires, TaskState
from services.scheduler.ledger import RunLedger
from services.scheduler.reasons import describe
from services.scheduler.settings import SchedulerSettings
from services.scheduler.timetable import Timetable
from services.scheduler.triggers import Schedule
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

log = logging.getLogger(__name__)
Feed = internal_pb2.WatchSchedulerEventsResponse

# Catch-ups under way at once after a snapshot.
CATCH_UP_SLOTS = 16
# Snapshot tasks applied between two yields to the loop (a page holds up to 1,000): fires and the
# leadership renewal get their turn while a large snapshot is taken.
SNAPSHOT_CHUNK = 100


def utcnow() -> datetime:
    return datetime.now(UTC)


def _active_since(task: task_pb2.Task, schedule: Schedule) -> datetime:
    """When the task's current schedule took effect: its anchor, or a later resume / edit."""
    return max(schedule.anchor, task.updated_at.ToDatetime(tzinfo=UTC))


class Engine:
    def __init__(
        self,
        settings: SchedulerSettings,
        registry: RegistryClient,
        executors: ExecutorPool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._ledger = RunLedger(registry)
        self._clock = clock
        self._tasks: dict[int, TaskState] = {}
        self._calendars = CalendarCache()
        self._background = Background()
        self._dispatcher = Dispatcher(
            settings,
            registry,
            executors,
            self._ledger,
            self._background,
            self._known_task,
            clock,
            self._known_calendar,
        )
        self._fires = Fires(self._ledger, self._dispatcher, self._tasks.get, clock)
        self._catch_up_slots = asyncio.Semaphore(CATCH_UP_SLOTS)
        self._timetable = Timetable(self._on_fire)
        self.ready = asyncio.Event()
        # Set when a backfill's run is announced: the backfill pass polls again (backfills.py).
        self._backfill_wake = asyncio.Event()
        # Fire lateness in seconds (planned -> seen by the engine), for metrics and benchmarks.
        self.lateness: deque[float] = deque(maxlen=100_000)

    # ---- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Follows the registry's change feed forever, re-subscribing after any error."""
        self._timetable.start()
        backoff = 0.2
        while True:
            try:
                call = self._registry.internal.WatchSchedulerEvents(
                    internal_pb2.WatchSchedulerEventsRequest(
                        snapshot_pages=True, trigger_offers=True, batch_events=True
                    ),
                    metadata=self._registry.metadata,
                )
                snapshot: set[int] | None = set()  # task ids, until the snapshot is done
                async for message in call:
                    backoff = 0.2
                    for event in (message, *message.then):  # live events ready together
                        snapshot = await self._follow(event, snapshot)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                log.warning("change feed lost, reconnecting", extra={"reason": describe(exc)})
            except Exception:
                log.exception("change feed handler failed, reconnecting")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _follow(self, event: Feed, snapshot: set[int] | None) -> set[int] | None:
        """Applies one feed event; `snapshot` holds the tasks seen while the snapshot lasts."""
        if event.type == Feed.EVENT_TYPE_TASK_UPSERT:
            calendar = await self._calendars.of(event)
            if snapshot is None:
                self._upsert(event, calendar)
            else:  # an older registry's snapshot: a task per event
                self._take_from_snapshot(event, calendar, snapshot)
        elif event.type == Feed.EVENT_TYPE_SNAPSHOT_PAGE and snapshot is not None:
            for index, upsert in enumerate(event.snapshot_tasks, 1):
                # Awaits only for a calendar not loaded yet (once per calendar).
                calendar = await self._calendars.of(upsert)
                self._take_from_snapshot(upsert, calendar, snapshot)
                if index % SNAPSHOT_CHUNK == 0:
                    await asyncio.sleep(0)
        elif event.type == Feed.EVENT_TYPE_SNAPSHOT_DONE:
            for task_id in set(self._tasks) - (snapshot or set()):
                self._remove(task_id)
            await self._dispatcher.adopt_active_runs()
            freeze_heap()  # the tasks' schedules live as long as the leadership (see common.heap)
            if not self.ready.is_set():  # once per leadership: the loop outlives feed reconnects
                self._background.spawn(
                    drive_backfills(self._registry, self._dispatcher.launch, self._backfill_wake)
                )
            else:  # a reconnect: a backfill's announcement may have been missed meanwhile
                self._backfill_wake.set()
            self.ready.set()
            return None
        elif event.type == Feed.EVENT_TYPE_TASK_DELETE:
            self._remove(event.task_id)
        elif event.type == Feed.EVENT_TYPE_EXECUTION_READY:
            self._dispatcher.launch(event.execution)
            if event.execution.trigger == Trigger.BACKFILL:
                self._backfill_wake.set()  # a backfill runs: its pass polls again
        elif event.type == Feed.EVENT_TYPE_TRIGGER_OFFER:
            self._dispatcher.take_offer(event.trigger_offer)
        elif event.type == Feed.EVENT_TYPE_TERMINATE_REQUESTED:
            self._dispatcher.request_cancel(event.execution.id)
        return snapshot

    async def stop(self) -> None:
        self._timetable.shutdown()
        await self._background.stop()
        await self._dispatcher.close()
        await self._ledger.close()

    def _known_task(self, task_id: int) -> task_pb2.Task | None:
        state = self._tasks.get(task_id)
        return state.task if state is not None else None

    def _known_calendar(self, task_id: int) -> TradingCalendar | None:
        state = self._tasks.get(task_id)
        return state.calendar if state is not None else None

    # ---- schedule -----------------------------------------------------------------------------

    def _keep(self, event: Feed, calendar: TradingCalendar | None) -> tuple[Schedule | None, bool]:
        """Stores the task as the event has it: its schedule, and whether that changed."""
        task = event.task
        schedule = Schedule.of(task, event.schedule_anchor.ToDatetime(tzinfo=UTC), calendar)
        previous = self._tasks.get(task.id)
        self._tasks[task.id] = TaskState(task=task, schedule=schedule, calendar=calendar)
        return schedule, previous is None or previous.schedule != schedule

    def _upsert(self, event: Feed, calendar: TradingCalendar | None) -> None:
        """(Re)schedules a task changed live: it fires from the change's moment."""
        schedule, changed = self._keep(event, calendar)
        if changed:
            changed_at = _active_since(event.task, schedule) if schedule is not None else None
            self._timetable.place(event.task.id, schedule, changed_at=changed_at)

    def _take_from_snapshot(self, event: Feed, calendar: TradingCalendar | None, snapshot: set[int]) -> None:
        """A task as the snapshot has it: it fires from now on, and the planned times that passed
        while no scheduler ran are caught up.

        One schedule computation serves both (a 100,000-task snapshot makes it count): the first
        planned time after the task's last one is either past (missed: caught up) or its next fire.
        """
        snapshot.add(event.task.id)
        schedule, changed = self._keep(event, calendar)
        upcoming = None if schedule is None else schedule.next_after(self._since(event, schedule))
        missed = upcoming is not None and upcoming <= self._clock()
        if changed:
            # Under record_holidays the trigger also fires on the days next_after passes over.
            known = schedule is not None and not missed and not schedule.record_holidays
            self._timetable.place(event.task.id, schedule, changed_at=None, first=upcoming if known else None)
        if missed:
            # Concurrently (bounded): one task's missed runs must not hold up the feed.
            self._background.spawn(self._catch_up_bounded(event))

    def _remove(self, task_id: int) -> None:
        self._tasks.pop(task_id, None)
        self._fires.forget(task_id)
        self._timetable.remove(task_id)

    def _since(self, event: Feed, schedule: Schedule) -> datetime:
        """Since when a snapshot's task may have missed runs: the later of when its schedule took
        effect and its last recorded planned time."""
        since = _active_since(event.task, schedule)
        if event.HasField("last_scheduled_time"):
            since = max(since, event.last_scheduled_time.ToDatetime(tzinfo=UTC))
        return since

    def _missed(self, event: Feed, limit: int) -> tuple[list[datetime], int]:
        """Planned times of the snapshot's task that passed while no scheduler ran (up to `limit`),
        and how many more there were."""
        state = self._tasks[event.task.id]
        if state.schedule is None:
            return [], 0
        return state.schedule.planned_between(self._since(event, state.schedule), self._clock(), limit)

    async def _catch_up_bounded(self, event: Feed) -> None:
        async with self._catch_up_slots:
            try:
                await self._catch_up(event)
            except grpc.aio.AioRpcError as exc:
                log.warning("catch-up failed", extra={"task_id": event.task.id, "reason": describe(exc)})

    async def _catch_up(self, event: Feed) -> None:
        """Records the planned times that passed while no scheduler ran (see fires.py)."""
        if event.task.id not in self._tasks:  # deleted meanwhile
            return
        missed, left_out = self._missed(event, self._settings.max_missed_records)
        await self._fires.catch_up(event.task, missed, left_out)
        if missed:
            log.info(
                "caught up missed runs", extra={"task_id": event.task.id, "missed": len(missed) + left_out}
            )

    # ---- firing -------------------------------------------------------------------------------

    def _on_fire(self, task_id: int, planned: datetime) -> None:
        now = self._clock()
        late = (now - planned).total_seconds()
        self.lateness.append(late)
        FIRE_LATENESS.observe(late)
        self._background.spawn(self._fires.fire(task_id, planned, now))
