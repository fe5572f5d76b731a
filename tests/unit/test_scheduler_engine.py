"""The engine against a fake registry: what it records for a change feed, with APScheduler's real timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from services.scheduler.clients import ExecutorPool
from services.scheduler.engine import Engine
from services.scheduler.settings import SchedulerSettings
from services.scheduler.triggers import dedup_key
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

SECOND = timedelta(seconds=1)
SETTINGS = SchedulerSettings.from_env(
    {"ZQ_SERVICE_TOKEN": "token", "ZQ_REGISTRY_ADDR": "unused", "ZQ_EXECUTOR_ADDRS": ""}
)


class FakeInternal:
    """The registry's internal API: a scripted change feed and idempotent execution creation."""

    def __init__(self) -> None:
        self.feed: asyncio.Queue[internal_pb2.WatchSchedulerEventsResponse] = asyncio.Queue()
        self.created: dict[str, internal_pb2.CreateExecutionRequest] = {}
        self._changed = asyncio.Condition()
        self._ids = iter(range(1, 1_000_000))
        # How long CreateExecution takes (a loaded database).
        self.create_seconds = 0.0
        # False: created runs come back as already finished, so nothing is dispatched. True: they come
        # back pending; with no executor to run them they stay active until the engine stops.
        self.dispatch = False

    def WatchSchedulerEvents(self, request: Any, **call: Any) -> AsyncIterator[Any]:
        async def stream() -> AsyncIterator[internal_pb2.WatchSchedulerEventsResponse]:
            while True:
                yield await self.feed.get()

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
    event = internal_pb2.WatchSchedulerEventsResponse(event_type="task_upsert", task=task)
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
    registry.feed.put_nowait(internal_pb2.WatchSchedulerEventsResponse(event_type="snapshot_done"))
    await asyncio.wait_for(scheduler.ready.wait(), 5)
    # The change was committed 2.5 s before it reached the scheduler (say, a task row written by the
    # init script, which the registry notices by polling): the fire times in between are due, not lost.
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
    registry.feed.put_nowait(internal_pb2.WatchSchedulerEventsResponse(event_type="snapshot_done"))
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


async def test_on_time_fires_run_even_with_no_misfire_grace() -> None:
    async with running_engine() as (scheduler, registry):
        registry.feed.put_nowait(internal_pb2.WatchSchedulerEventsResponse(event_type="snapshot_done"))
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        changed = datetime.now(UTC)
        # A grace of 0 refuses to run missed times late; a fire that is merely on time still runs.
        registry.feed.put_nowait(upsert(every_second(3, changed, misfire_grace_seconds=0), changed))
        await registry.until(lambda: len(registry.created) >= 2)
        assert [r.status or "pending" for r in registry.created.values()][:2] == ["pending", "pending"]


async def test_forbid_holds_while_the_previous_fire_is_still_being_recorded() -> None:
    async with running_engine() as (scheduler, registry):
        registry.feed.put_nowait(internal_pb2.WatchSchedulerEventsResponse(event_type="snapshot_done"))
        await asyncio.wait_for(scheduler.ready.wait(), 5)
        registry.dispatch = True
        registry.create_seconds = 1.2  # longer than the interval between fires
        changed = datetime.now(UTC)
        registry.feed.put_nowait(upsert(every_second(4, changed, concurrency_policy="forbid"), changed))
        await registry.until(lambda: len(registry.created) >= 3, within=10)
        recorded = sorted(registry.created.values(), key=lambda r: r.scheduled_time.ToDatetime(tzinfo=UTC))
        assert [r.status or "pending" for r in recorded[:3]] == ["pending", "skipped", "skipped"]
        assert all(r.error_message.startswith("上一次执行仍在运行") for r in recorded[1:3])
