"""The engine against a fake registry: what it records for a change feed, with APScheduler's real timing."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.common.calendars import TradingCalendar
from services.scheduler.clients import ExecutorPool
from services.scheduler.engine import Engine
from services.scheduler.fires import TaskState
from services.scheduler.settings import SchedulerSettings
from services.scheduler.triggers import dedup_key
from tests.unit.scheduler.run_stream import StreamOfCalls, stream_of_calls
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

SECOND = timedelta(seconds=1)
SETTINGS = SchedulerSettings.from_env(
    {"ZQ_SERVICE_TOKEN": "token", "ZQ_REGISTRY_ADDR": "unused", "ZQ_EXECUTOR_ADDRS": ""}
)


@pytest.fixture(autouse=True)
def unfrozen_heap() -> Iterator[None]:
    """An engine freezes the heap once its snapshot is applied (common.heap); thawed after each
    test so this process's garbage is collected as usual."""
    yield
    gc.unfreeze()


class FakeInternal:
    """The registry's internal API: a scripted change feed and idempotent execution creation."""

    def __init__(self) -> None:
        # None ends the stream (the engine subscribes again).
        self.feed: asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse | None] = asyncio.Queue()
        self.subscriptions: list[internal_pb2.WatchSchedulerEventsRequest] = []
        self.created: dict[str, internal_pb2.CreateExecutionRequest] = {}
        self._changed = asyncio.Condition()
        self._ids = iter(range(1, 1_000_000))
        # How long CreateExecution takes (a loaded database).
        self.create_seconds = 0.0
        # False: created runs come back as already finished, so nothing is dispatched. True: they come
        # back pending; with no executor to run them they stay active until the engine stops.
        self.dispatch = False
        self.backfill_passes = 0

    def WatchSchedulerEvents(self, request: Any, **call: Any) -> AsyncIterator[Any]:
        self.subscriptions.append(request)

        async def stream() -> AsyncIterator[internal_pb2.WatchSchedulerEventsResponse]:
            while (event := await self.feed.get()) is not None:
                yield event

        return stream()

    async def CreateExecution(
        self, request: internal_pb2.CreateExecutionRequest, **call: Any
    ) -> internal_pb2.CreateExecutionResponse:
        await asyncio.sleep(self.create_seconds)
        created = request.dedup_key not in self.created
        if created:
            self.created[request.dedup_key] = request
            async with self._changed:
                self._changed.notify_all()
        execution = task_pb2.Execution(
            id=next(self._ids),
            task_id=request.task_id,
            status=(request.status or "pending") if self.dispatch else "skipped",
            trigger=request.trigger,
        )
        return internal_pb2.CreateExecutionResponse(execution=execution, created=created)

    def RecordRunStream(self, **call: Any) -> StreamOfCalls:
        return stream_of_calls(self)

    async def RecordRuns(
        self, request: internal_pb2.RecordRunsRequest, **call: Any
    ) -> internal_pb2.RecordRunsResponse:
        """The engine's batched creates (the only updates it makes here: nothing runs)."""
        created = await asyncio.gather(*(self.CreateExecution(u.create) for u in request.updates))
        return internal_pb2.RecordRunsResponse(
            results=[internal_pb2.RunUpdateResult(create=response) for response in created]
        )

    async def until(self, predicate: Callable[[], bool], within: float = 5) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    async def ListActiveExecutions(self, request: Any, **call: Any) -> Any:
        return internal_pb2.ListActiveExecutionsResponse()

    async def AdvanceBackfills(self, request: Any, **call: Any) -> Any:
        self.backfill_passes += 1
        async with self._changed:
            self._changed.notify_all()
        return internal_pb2.AdvanceBackfillsResponse()


class FakeRegistry:
    def __init__(self) -> None:
        self.internal = FakeInternal()
        self.metadata: list[tuple[str, str]] = []


@asynccontextmanager
async def running_engine() -> AsyncIterator[tuple[Engine, FakeInternal]]:
    """An engine following a fake feed (in the test's own event loop)."""
    registry = FakeRegistry()
    pool = ExecutorPool((), "token")
    engine = Engine(SETTINGS, registry, pool)  # type: ignore[arg-type]  # a structural fake
    runner = asyncio.create_task(engine.run())
    try:
        yield engine, registry.internal
    finally:
        runner.cancel()
        await engine.stop()
        await asyncio.gather(runner, return_exceptions=True)


def upsert(task: task_pb2.Task, anchor: datetime, last_scheduled: datetime | None = None) -> Any:
    event = internal_pb2.WatchSchedulerEventsResponse(
        type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_TASK_UPSERT, task=task
    )
    event.schedule_anchor.FromDatetime(anchor)
    if last_scheduled is not None:
        event.last_scheduled_time.FromDatetime(last_scheduled)
    return event


def every_second(task_id: int, changed: datetime, **fields: Any) -> task_pb2.Task:
    values: dict[str, Any] = {
        "task_type": "example_task",
        "cron_expression": "* * * * * *",
        "timezone": "Asia/Shanghai",
        "enabled": True,
        "concurrency_policy": "allow",
        "misfire_policy": "run_once",
        "misfire_grace_seconds": 60,
        **fields,
    }
    task = task_pb2.Task(id=task_id, **values)
    task.updated_at.FromDatetime(changed)
    return task


def whole_seconds(after: datetime, until: datetime) -> Iterator[datetime]:
    moment = after.replace(microsecond=0) + SECOND
    while moment <= until:
        yield moment
        moment += SECOND


async def test_live_change_fires_the_times_that_passed_before_it_arrived() -> None:
    async with running_engine() as (scheduler, registry):
        await check_live_change(scheduler, registry)


async def check_live_change(scheduler: Engine, registry: FakeInternal) -> None:
    registry.feed.put_nowait(
        internal_pb2.WatchSchedulerEventsResponse(
            type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
        )
    )
    await asyncio.wait_for(scheduler.ready.wait(), 5)
    # The change was committed 2.5 s before it reached the scheduler (say, the feed was reconnecting):
    # the fire times in between are due, not lost.
    changed = datetime.now(UTC) - 2.5 * SECOND
    registry.feed.put_nowait(upsert(every_second(1, changed), changed))
    due = list(whole_seconds(changed, datetime.now(UTC)))
    keys = [dedup_key(1, moment) for moment in due]
    await registry.until(lambda: set(keys) <= set(registry.created))
    assert all(registry.created[key].status in ("", "pending") for key in keys)
    # Nothing before the change.
    assert all(
        request.scheduled_time.ToDatetime(tzinfo=UTC) > changed for request in registry.created.values()
    )


async def test_snapshot_records_missed_times_and_runs_the_newest_once() -> None:
    async with running_engine() as (scheduler, registry):
        await check_snapshot(scheduler, registry)


async def check_snapshot(scheduler: Engine, registry: FakeInternal) -> None:
    current = datetime.now(UTC)
    anchor = current - 60 * SECOND
    last = (current - 5.5 * SECOND).replace(microsecond=0)
    registry.feed.put_nowait(upsert(every_second(2, anchor), anchor, last_scheduled=last))
    registry.feed.put_nowait(
        internal_pb2.WatchSchedulerEventsResponse(
            type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
        )
    )
    await asyncio.wait_for(scheduler.ready.wait(), 5)
    await registry.until(lambda: len(registry.created) >= 6)
    recorded = sorted(registry.created.values(), key=lambda r: r.scheduled_time.ToDatetime(tzinfo=UTC))
    times = [r.scheduled_time.ToDatetime(tzinfo=UTC) for r in recorded]
    # Every second after the last recorded one, none before it, no gaps.
    assert times == list(whole_seconds(last, times[-1]))
    # The missed ones: skipped with the reason, except the newest, which runs once; then live fires.
    statuses = [r.status or "pending" for r in recorded]
    skipped = statuses.index("pending")
    assert skipped >= 4 and "skipped" not in statuses[skipped:], statuses
    assert all("调度器未运行" in r.error_message for r in recorded[:skipped])
    assert times[skipped] <= current + SECOND


async def test_a_snapshot_in_pages_schedules_every_task_and_catches_up_what_each_missed() -> None:
    async with running_engine() as (scheduler, registry):
        current = datetime.now(UTC)
        anchor = current - 60 * SECOND
        last = (current - 3.5 * SECOND).replace(microsecond=0)
        ids = range(1, 251)  # more than one chunk between yields to the loop
        registry.feed.put_nowait(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_PAGE,
                snapshot_tasks=[upsert(every_second(i, anchor), anchor, last_scheduled=last) for i in ids],
            )
        )
        registry.feed.put_nowait(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
            )
        )
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        assert registry.subscriptions[0].snapshot_pages

        def first_missed_of_each() -> set[int]:
            return {r.task_id for r in registry.created.values() if "调度器未运行" in r.error_message}

        await registry.until(lambda: first_missed_of_each() == set(ids), within=10)
        # Applied and frozen: a full collection no longer walks the tasks' states (common.heap).
        assert gc.get_freeze_count() > 0
        assert not any(isinstance(obj, TaskState) for obj in gc.get_objects())


async def test_on_time_fires_run_even_with_no_misfire_grace() -> None:
    async with running_engine() as (scheduler, registry):
        registry.feed.put_nowait(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
            )
        )
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        changed = datetime.now(UTC)
        # A grace of 0 refuses to run missed times late; a fire that is merely on time still runs.
        registry.feed.put_nowait(upsert(every_second(3, changed, misfire_grace_seconds=0), changed))
        await registry.until(lambda: len(registry.created) >= 2)
        assert [r.status or "pending" for r in registry.created.values()][:2] == ["pending", "pending"]


async def test_forbid_holds_while_the_previous_fire_is_still_being_recorded() -> None:
    async with running_engine() as (scheduler, registry):
        registry.feed.put_nowait(
            internal_pb2.WatchSchedulerEventsResponse(
                type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
            )
        )
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        registry.dispatch = True
        registry.create_seconds = 1.2  # longer than the interval between fires
        changed = datetime.now(UTC)
        registry.feed.put_nowait(upsert(every_second(4, changed, concurrency_policy="forbid"), changed))
        await registry.until(lambda: len(registry.created) >= 3, within=10)
        recorded = sorted(registry.created.values(), key=lambda r: r.scheduled_time.ToDatetime(tzinfo=UTC))
        assert [r.status or "pending" for r in recorded[:3]] == ["pending", "skipped", "skipped"]
        assert all(r.error_message.startswith("上一次执行仍在运行") for r in recorded[1:3])


def with_custom_calendar(event: Any, *, added: Sequence[str] = (), removed: Sequence[str] = ()) -> Any:
    """The task event naming a custom calendar on XSHG, with its definition, as the registry sends it."""
    event.task.calendar = "CUSTOM"
    event.custom_calendar.CopyFrom(
        task_pb2.Calendar(
            name="CUSTOM", source="custom", base="XSHG", added_dates=added, removed_dates=removed
        )
    )
    return event


async def snapshot_done(scheduler: Engine, registry: FakeInternal) -> None:
    registry.feed.put_nowait(
        internal_pb2.WatchSchedulerEventsResponse(
            type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
        )
    )
    await asyncio.wait_for(scheduler.ready.wait(), 5)


@pytest.mark.parametrize(
    ("change", "expected"),
    [("removed", [("skipped", "非交易日")] * 2), ("added", [("pending", "")] * 2)],
)
async def test_a_fire_on_a_day_the_calendar_closes_is_recorded_as_skipped_and_on_an_added_day_runs(
    change: str, expected: list[tuple[str, str]]
) -> None:
    async with running_engine() as (scheduler, registry):
        await snapshot_done(scheduler, registry)
        changed = datetime.now(UTC)
        today = changed.date().isoformat()
        task = every_second(5, changed, timezone="UTC", calendar_holidays="record")
        registry.feed.put_nowait(with_custom_calendar(upsert(task, changed), **{change: [today]}))
        await registry.until(lambda: len(registry.created) >= 2, within=30)
        recorded = list(registry.created.values())[:2]
        assert [(r.status or "pending", r.error_message) for r in recorded] == expected
        # Where the calendar's data ends, for the alert 30 days before: XSHG's data covers 2026.
        end = REGISTRY.get_sample_value("zq_calendar_data_end_timestamp_seconds", {"calendar": "CUSTOM"})
        assert end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "fields",
    [
        {"cron_expression": "30 18 * * 1-5", "timezone": "Asia/Shanghai"},
        {"cron_expression": "0 9 * * *", "timezone": "America/New_York"},
        {"cron_expression": "", "interval_seconds": 3637},
        {"cron_expression": "", "run_at_in": timedelta(hours=3)},
        {"cron_expression": "0 18 * * *", "timezone": "UTC", "calendar": "SPARSE", "calendar_shift": 1},
        # The trigger fires on non-session days too (to record them skipped): next_after does not.
        {
            "cron_expression": "0 18 * * *",
            "timezone": "UTC",
            "calendar": "SPARSE",
            "calendar_holidays": "record",
        },
    ],
    ids=["cron", "cron-dst-zone", "interval", "run-at", "calendar-shift", "calendar-record-holidays"],
)
async def test_a_snapshots_task_is_placed_at_the_first_fire_its_trigger_gives_from_now(
    fields: dict[str, Any],
) -> None:
    now = datetime.now(UTC)
    # No session in the next three days: a trigger that fires on every day differs from one that
    # fires on sessions only.
    sessions = frozenset(now.date() + timedelta(days=n) for n in range(-60, 60) if not 0 <= n <= 3)
    calendar = TradingCalendar(
        "SPARSE", sessions, now.date() - timedelta(days=60), now.date() + timedelta(days=60)
    )
    run_at_in = fields.pop("run_at_in", None)
    task = every_second(11, now - timedelta(days=2), **fields)
    if run_at_in is not None:
        task.run_at.FromDatetime(now + run_at_in)
    event = upsert(task, now - timedelta(days=2), last_scheduled=now - timedelta(minutes=1))
    engine = Engine(SETTINGS, FakeRegistry(), ExecutorPool((), "token"))  # type: ignore[arg-type]
    engine._timetable.start()
    try:
        engine._take_from_snapshot(event, calendar if task.calendar else None, set())
        schedule = engine._tasks[11].schedule
        assert schedule is not None
        job = engine._timetable._store.lookup_job("11")
        expected = schedule.trigger().get_next_fire_time(None, datetime.now(UTC))
        assert job is not None and job.next_run_time == expected
    finally:
        await engine.stop()


async def test_a_feed_reconnect_makes_the_idle_backfill_pass_ask_the_registry_again() -> None:
    done = internal_pb2.WatchSchedulerEventsResponse(
        type=internal_pb2.WatchSchedulerEventsResponse.EVENT_TYPE_SNAPSHOT_DONE
    )
    async with running_engine() as (_, internal):
        internal.feed.put_nowait(done)
        await internal.until(lambda: internal.backfill_passes == 1)
        # A backfill announced while the feed was down would be missed: the new snapshot wakes it.
        internal.feed.put_nowait(None)
        internal.feed.put_nowait(done)
        await internal.until(lambda: internal.backfill_passes == 2)
        await asyncio.sleep(0.3)
        assert internal.backfill_passes == 2  # no backfill runs: it waits again


async def test_the_live_events_of_a_batch_are_applied_each_in_order() -> None:
    async with running_engine() as (scheduler, registry):
        Feed = internal_pb2.WatchSchedulerEventsResponse
        registry.feed.put_nowait(Feed(type=Feed.EVENT_TYPE_SNAPSHOT_DONE))
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        assert registry.subscriptions[0].batch_events
        changed = datetime.now(UTC)
        batch = upsert(every_second(1, changed), changed)
        # Task 2 is created, task 1 deleted right after its own create: it never fires.
        batch.then.extend(
            [upsert(every_second(2, changed), changed), Feed(type=Feed.EVENT_TYPE_TASK_DELETE, task_id=1)]
        )
        registry.feed.put_nowait(batch)
        await registry.until(lambda: sum(r.task_id == 2 for r in registry.created.values()) >= 2)
        assert {request.task_id for request in registry.created.values()} == {2}
