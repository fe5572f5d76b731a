"""Dispatch: the Dispatcher with its claims, executor stream and cancels reads an executor's refusal
by its reason (busy: the next executor; anything else: the run failed), drops a run the registry no
longer gives it, tells a run its previous trading day, stops a terminated run wherever it is on
its way, and puts an adopted run that never reached its executor back to pending."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest

from services.common.calendars import TradingCalendar
from services.common.errors import EXECUTOR_UP_SINCE, Reason, reason_of, rpc_error
from services.common.vocabulary import TERMINATED_MESSAGE
from services.scheduler.background import Background
from services.scheduler.clients import ExecutorHandle, ExecutorPool
from services.scheduler.dispatch import Dispatcher
from services.scheduler.ledger import RunLedger
from services.scheduler.settings import SchedulerSettings
from tests.unit.scheduler.run_stream import StreamOfCalls, stream_of_calls
from zquant.scheduler.v1 import executor_service_pb2, task_pb2
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2

pytestmark = pytest.mark.asyncio


SETTINGS = SchedulerSettings.from_env(
    {"ZQ_SERVICE_TOKEN": "token", "ZQ_REGISTRY_ADDR": "unused", "ZQ_EXECUTOR_ADDRS": ""}
)
TASK = task_pb2.Task(id=3, task_type="example_task")


class ScriptedCall:
    """An executor's Run stream: the events it sends, or the error it fails with."""

    def __init__(self, events: list[executor_service_pb2.RunResponse], error: grpc.aio.AioRpcError | None):
        self._events = list(events)
        self._error = error

    async def read(self) -> Any:
        if self._events:
            return self._events.pop(0)
        if self._error is not None:
            raise self._error
        return grpc.aio.EOF  # type: ignore[attr-defined]  # missing from grpc-stubs

    def cancel(self) -> None:
        pass


class ScriptedExecutor:
    def __init__(self, error: grpc.aio.AioRpcError | None = None) -> None:
        self.error = error
        self.runs: list[int] = []
        self.requests: list[executor_service_pb2.RunRequest] = []

    def Run(self, request: executor_service_pb2.RunRequest, **call: Any) -> ScriptedCall:
        self.runs.append(request.attempt)
        self.requests.append(request)
        if self.error is not None:
            return ScriptedCall([], self.error)
        accepted = executor_service_pb2.RunResponse(type=executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED)
        finished = executor_service_pb2.RunResponse(
            type=executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED, status="success"
        )
        return ScriptedCall([accepted, finished], None)


class ScriptedRegistry:
    """Claims give attempts 1, 2, ...; `claim_refusal` refuses every claim with that reason."""

    def __init__(self, claim_refusal: Reason | None = None) -> None:
        self.claim_refusal = claim_refusal
        self.claims: list[str] = []
        self.requeues: list[int] = []
        self.finishes: list[internal_pb2.FinishExecutionRequest] = []
        self.internal, self.metadata = self, list[tuple[str, str]]()

    async def StartExecution(self, request: internal_pb2.StartExecutionRequest, **call: Any) -> Any:
        if self.claim_refusal is not None:
            raise rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "不能开始执行", self.claim_refusal)
        self.claims.append(request.executor)
        return internal_pb2.StartExecutionResponse(attempt=len(self.claims), task=TASK)

    async def RequeueExecution(self, request: internal_pb2.RequeueExecutionRequest, **call: Any) -> Any:
        self.requeues.append(request.attempt)
        return internal_pb2.RequeueExecutionResponse()

    def RecordRunStream(self, **call: Any) -> StreamOfCalls:
        return stream_of_calls(self)

    async def RecordRuns(self, request: internal_pb2.RecordRunsRequest, **call: Any) -> Any:
        """Claims (as StartExecution answers them), ends, progress and logs, each with its result."""
        results = []
        for update in request.updates:
            if update.HasField("start"):
                try:
                    started = await self.StartExecution(update.start)
                except grpc.aio.AioRpcError as exc:
                    code, reason = exc.code().value[0], reason_of(exc)
                    results.append(internal_pb2.RunUpdateResult(code=code, message="", reason=reason))
                    continue
                results.append(internal_pb2.RunUpdateResult(start=started))
            elif update.HasField("finish"):
                self.finishes.append(update.finish)
                results.append(internal_pb2.RunUpdateResult(finish=internal_pb2.FinishExecutionResponse()))
            else:  # progress and logs: taken
                results.append(internal_pb2.RunUpdateResult())
        return internal_pb2.RecordRunsResponse(results=results)


class Awaited(Background):
    """Background work the test can wait for."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[asyncio.Task[Any]] = []

    def spawn(self, work: Any) -> asyncio.Task[Any] | None:
        task = super().spawn(work)
        if task is not None:
            self.spawned.append(task)
        return task


async def dispatch_one(
    registry: ScriptedRegistry,
    *executors: Any,
    run: task_pb2.Execution | None = None,
    calendar: TradingCalendar | None = None,
    meanwhile: Callable[[Dispatcher], Awaitable[None]] | None = None,
) -> None:
    """Launches one pending run of TASK (`run`, by default one without a planned time) with these
    executors (tried in this order) and waits until the dispatcher is done with it (`meanwhile`
    runs alongside)."""
    pool = ExecutorPool(tuple(f"127.0.0.1:{port}" for port in range(1, len(executors) + 1)), "token")
    for executor in executors:
        handle = pool.pick()
        assert handle is not None
        handle.stub = executor
    background = Awaited()
    fake: Any = registry  # a structural fake
    dispatcher = Dispatcher(
        SETTINGS,
        fake,
        pool,
        RunLedger(fake),
        background,
        lambda task_id: TASK,
        lambda: datetime.now(UTC),
        lambda task_id: calendar,
    )
    dispatcher.launch(run or task_pb2.Execution(id=9, task_id=TASK.id, status="pending"))
    if meanwhile is not None:
        await asyncio.wait_for(meanwhile(dispatcher), 10)
    await asyncio.wait_for(asyncio.gather(*background.spawned), 10)
    assert not dispatcher.active(TASK.id)
    await background.stop()
    await pool.close()


async def test_a_busy_executor_is_passed_over_and_the_run_goes_to_the_next() -> None:
    registry = ScriptedRegistry()
    busy = ScriptedExecutor(rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "执行器繁忙", Reason.EXECUTOR_BUSY))
    free = ScriptedExecutor()
    await dispatch_one(registry, busy, free)
    assert busy.runs == [1] and registry.requeues == [1]  # back to pending after the refusal
    assert free.runs == [2]
    assert [(f.attempt, f.status) for f in registry.finishes] == [(2, "success")]


async def test_an_executor_refusing_for_another_reason_fails_the_run_instead_of_requeueing_it() -> None:
    registry = ScriptedRegistry()
    refusing = ScriptedExecutor(
        rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "已在运行", Reason.RUN_ALREADY_ACTIVE)
    )
    await dispatch_one(registry, refusing, ScriptedExecutor())
    assert registry.requeues == []
    assert [(f.attempt, f.status) for f in registry.finishes] == [(1, "failed")]


async def test_a_run_no_longer_pending_in_the_registry_is_dropped_without_a_word() -> None:
    registry = ScriptedRegistry(claim_refusal=Reason.RUN_NOT_PENDING)
    executor = ScriptedExecutor()
    await dispatch_one(registry, executor)
    assert executor.runs == [] and registry.finishes == []


async def test_a_run_is_told_the_trading_day_before_its_logical_date_by_its_tasks_calendar() -> None:
    # National Day week 2024: 1 to 7 October closed.
    weekdays = {date(2024, 9, 1) + timedelta(days=n) for n in range(61)}
    sessions = frozenset(
        d for d in weekdays if d.weekday() < 5 and not date(2024, 10, 1) <= d <= date(2024, 10, 7)
    )
    calendar = TradingCalendar("XSHG", sessions, date(2024, 9, 1), date(2024, 10, 31))
    run = task_pb2.Execution(id=9, task_id=TASK.id, status="pending", logical_date="2024-10-08")
    by_calendar, by_weekday = ScriptedExecutor(), ScriptedExecutor()
    await dispatch_one(ScriptedRegistry(), by_calendar, run=run, calendar=calendar)
    await dispatch_one(ScriptedRegistry(), by_weekday, run=run)
    assert [r.prev_trading_day for r in by_calendar.requests] == ["2024-09-30"]
    assert [r.prev_trading_day for r in by_weekday.requests] == ["2024-10-07"]


# ---- terminating a run on its way ---------------------------------------------------------------


class SlowExecutor:
    """Accepts a run only when `accept` is set, then runs it until a Cancel reaches it. A Cancel that
    arrives before the acceptance finds nothing to stop (it overtook the Run on the wire)."""

    def __init__(self) -> None:
        self.accept = asyncio.Event()
        self.called = asyncio.Event()
        self.stopped = asyncio.Event()
        self.cancels: list[bool] = []

    def Run(self, request: executor_service_pb2.RunRequest, **call: Any) -> Any:
        self.called.set()
        executor = self

        class Stream:
            sent_accepted = False

            async def read(self) -> Any:
                if not self.sent_accepted:
                    await executor.accept.wait()
                    self.sent_accepted = True
                    return executor_service_pb2.RunResponse(
                        type=executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED
                    )
                await executor.stopped.wait()
                return executor_service_pb2.RunResponse(
                    type=executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED, status="terminated"
                )

            def cancel(self) -> None:
                pass

        return Stream()

    async def Cancel(self, request: executor_service_pb2.CancelRequest, **call: Any) -> Any:
        cancelled = self.accept.is_set()
        self.cancels.append(cancelled)
        if cancelled:
            self.stopped.set()
        return executor_service_pb2.CancelResponse(cancelled=cancelled)


async def test_a_termination_overtaking_its_run_on_the_wire_is_sent_again_once_the_executor_accepts() -> None:
    registry = ScriptedRegistry()
    executor = SlowExecutor()

    async def terminate_before_acceptance(dispatcher: Dispatcher) -> None:
        await executor.called.wait()
        await dispatcher._cancel(9)  # what request_cancel runs in the background
        executor.accept.set()

    await dispatch_one(registry, executor, meanwhile=terminate_before_acceptance)
    assert executor.cancels == [False, True]
    assert [(f.attempt, f.status) for f in registry.finishes] == [(1, "terminated")]


class ClaimOnCue(ScriptedRegistry):
    """Holds each claim's answer until `answer` is set (the run shows running meanwhile)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()

    async def StartExecution(self, request: internal_pb2.StartExecutionRequest, **call: Any) -> Any:
        self.asked.set()
        await self.answer.wait()
        return await super().StartExecution(request, **call)


async def test_a_run_terminated_between_its_claim_and_its_executor_ends_terminated_without_running() -> None:
    registry = ClaimOnCue()
    executor = ScriptedExecutor()

    async def terminate_during_the_claim(dispatcher: Dispatcher) -> None:
        await registry.asked.wait()
        await dispatcher._cancel(9)
        registry.answer.set()

    await dispatch_one(registry, executor, meanwhile=terminate_during_the_claim)
    assert executor.runs == []
    assert [(f.attempt, f.status, f.error_message) for f in registry.finishes] == [
        (1, "terminated", TERMINATED_MESSAGE)
    ]


@dataclass
class OneExecutor:
    """A dispatcher with one executor that takes `capacity` runs at once (0: no limit)."""

    dispatcher: Dispatcher
    pool: ExecutorPool
    handle: ExecutorHandle
    background: Awaited

    @classmethod
    def start(cls, registry: ScriptedRegistry, executor: Any, capacity: int = 0) -> OneExecutor:
        pool = ExecutorPool(("127.0.0.1:1",), "token")
        handle = pool.pick()
        assert handle is not None
        handle.stub = executor
        pool.learn_capacity(handle, capacity)
        pool.release(handle)
        background = Awaited()
        fake: Any = registry
        dispatcher = Dispatcher(
            SETTINGS, fake, pool, RunLedger(fake), background, lambda task_id: TASK, lambda: datetime.now(UTC)
        )
        return cls(dispatcher, pool, handle, background)

    async def finish(self) -> None:
        """Waits until every run is done (also those the background work launched), then stops."""
        waited = 0
        while waited < len(self.background.spawned):
            waited = len(self.background.spawned)
            await asyncio.wait_for(asyncio.gather(*self.background.spawned), 10)
        assert not self.dispatcher.active(TASK.id) and self.handle.reserved == 0
        await self.background.stop()
        await self.pool.close()


class GatedExecutor:
    """Takes each run and finishes it only when the test opens its gate; counts runs at once."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.order: list[int] = []
        self.at_once = self.most_at_once = 0
        self.two_at_once = asyncio.Event()
        self._began: dict[int, asyncio.Event] = {}

    def began(self, execution_id: int) -> asyncio.Event:
        """Set once the run reached this executor."""
        return self._began.setdefault(execution_id, asyncio.Event())

    def Run(self, request: executor_service_pb2.RunRequest, **call: Any) -> Any:
        executor = self
        gate = self.gates.setdefault(request.execution_id, asyncio.Event())
        self.order.append(request.execution_id)
        self.began(request.execution_id).set()
        self.at_once += 1
        self.most_at_once = max(self.most_at_once, self.at_once)
        if self.at_once == 2:
            self.two_at_once.set()
        events = [
            executor_service_pb2.RunResponse(type=executor_service_pb2.RunResponse.EVENT_TYPE_ACCEPTED),
            executor_service_pb2.RunResponse(
                type=executor_service_pb2.RunResponse.EVENT_TYPE_FINISHED, status="success"
            ),
        ]

        class GatedCall:
            async def read(self) -> Any:
                if len(events) == 1:
                    await gate.wait()
                    executor.at_once -= 1
                return events.pop(0) if events else grpc.aio.EOF  # type: ignore[attr-defined]

            def cancel(self) -> None:
                pass

        return GatedCall()


async def test_a_burst_beyond_the_executors_room_waits_in_line_runs_oldest_first_and_a_terminated_run_leaves_the_line() -> (
    None
):
    registry = ScriptedRegistry()
    executor = GatedExecutor()
    stack = OneExecutor.start(registry, executor, capacity=2)
    dispatcher = stack.dispatcher
    for execution_id in range(101, 107):
        dispatcher.launch(task_pb2.Execution(id=execution_id, task_id=TASK.id, status="pending"))

    await asyncio.wait_for(executor.two_at_once.wait(), 5)
    await dispatcher._cancel(104)  # terminated while it waits: it leaves the line at once
    for opened in range(101, 107):
        if opened == 104:
            continue
        executor.gates.setdefault(opened, asyncio.Event()).set()
    await stack.finish()
    assert executor.order == [101, 102, 103, 105, 106]  # oldest first, the terminated one never
    assert executor.most_at_once == 2  # never beyond the room the executor said it has
    assert len(registry.claims) == 5


class EndsOnCue(ScriptedRegistry):
    """Holds the answer to every batch with an end in it until `store` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.store = asyncio.Event()

    async def RecordRuns(self, request: internal_pb2.RecordRunsRequest, **call: Any) -> Any:
        if any(update.HasField("finish") for update in request.updates):
            await self.store.wait()
        return await super().RecordRuns(request, **call)


async def test_a_runs_room_goes_to_the_next_run_as_soon_as_its_executor_finished_it_not_once_its_end_is_stored() -> (
    None
):
    registry = EndsOnCue()
    executor = GatedExecutor()
    stack = OneExecutor.start(registry, executor, capacity=1)
    dispatcher = stack.dispatcher
    for execution_id in (201, 202):
        dispatcher.launch(task_pb2.Execution(id=execution_id, task_id=TASK.id, status="pending"))
        executor.gates[execution_id] = asyncio.Event()
    executor.gates[201].set()  # the first run's job ends; its end is not stored yet

    await asyncio.wait_for(executor.began(202).wait(), 5)
    assert registry.finishes == []  # the first run's end is still on its way
    registry.store.set()
    executor.gates[202].set()
    await stack.finish()
    assert [(f.execution_id, f.status) for f in registry.finishes] == [(201, "success"), (202, "success")]


class LiveRuns(ScriptedRegistry):
    """Answers ListActiveExecutions with these runs, a page at a time."""

    def __init__(self, live: list[task_pb2.Execution]) -> None:
        super().__init__()
        self.live = live
        self.asked: list[int] = []

    async def ListActiveExecutions(
        self, request: internal_pb2.ListActiveExecutionsRequest, **call: Any
    ) -> Any:
        self.asked.append(request.after_id)
        page = [run for run in self.live if run.id > request.after_id][: request.limit]
        return internal_pb2.ListActiveExecutionsResponse(executions=page)


async def test_a_new_leader_resumes_every_live_run_whatever_the_number_page_by_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("services.scheduler.dispatch.ACTIVE_PAGE", 2)
    live = [task_pb2.Execution(id=run_id, task_id=TASK.id, status="pending") for run_id in range(301, 306)]
    registry = LiveRuns(live)
    stack = OneExecutor.start(registry, ScriptedExecutor())
    await stack.dispatcher.adopt_active_runs()
    await stack.finish()
    assert registry.asked == [0, 302, 304]  # until a page came back short
    assert sorted(f.execution_id for f in registry.finishes) == [301, 302, 303, 304, 305]


class NeverGotIt(ScriptedExecutor):
    """Up since `up_since`; never had the run it is asked to re-attach to, runs it when sent it."""

    def __init__(self, up_since: datetime) -> None:
        super().__init__()
        self.up_since = up_since

    async def GetLoad(self, request: Any, **call: Any) -> Any:
        return executor_service_pb2.GetLoadResponse()

    async def Cancel(self, request: executor_service_pb2.CancelRequest, **call: Any) -> Any:
        return executor_service_pb2.CancelResponse(cancelled=False)  # nothing of it runs here

    def Run(self, request: executor_service_pb2.RunRequest, **call: Any) -> ScriptedCall:
        if not request.attach:
            return super().Run(request, **call)
        self.runs.append(request.attempt)
        self.requests.append(request)
        metadata = {EXECUTOR_UP_SINCE: self.up_since.isoformat()}
        unknown = rpc_error(grpc.StatusCode.NOT_FOUND, "没有", Reason.EXECUTION_NOT_FOUND, metadata)
        return ScriptedCall([], unknown)


def running_on_the_executor(claimed_at: datetime) -> task_pb2.Execution:
    """A run a previous leader claimed for the executor at `claimed_at` (and may never have sent)."""
    run = task_pb2.Execution(id=501, task_id=TASK.id, status="running", executor="127.0.0.1:1")
    run.start_time.FromDatetime(claimed_at)
    return run


async def test_an_adopted_run_that_never_reached_its_executor_goes_back_to_pending_and_runs() -> None:
    claimed_at = datetime.now(UTC) - timedelta(seconds=5)
    registry = LiveRuns([running_on_the_executor(claimed_at)])
    executor = NeverGotIt(up_since=claimed_at - timedelta(hours=1))
    stack = OneExecutor.start(registry, executor)
    await stack.dispatcher.adopt_active_runs()
    await stack.finish()
    # Adopted as attempt 1, unknown there: back to pending, claimed as attempt 2 and run once.
    assert [request.attach for request in executor.requests] == [True, False]
    assert registry.requeues == [1]
    assert [(f.attempt, f.status) for f in registry.finishes] == [(2, "success")]


async def test_an_adopted_run_unknown_to_an_executor_restarted_since_its_claim_failed_as_lost() -> None:
    claimed_at = datetime.now(UTC) - timedelta(seconds=5)
    registry = LiveRuns([running_on_the_executor(claimed_at)])
    executor = NeverGotIt(up_since=claimed_at + timedelta(seconds=3))  # it may have died with the restart
    stack = OneExecutor.start(registry, executor)
    await stack.dispatcher.adopt_active_runs()
    await stack.finish()
    assert registry.requeues == []
    assert [(f.attempt, f.status) for f in registry.finishes] == [(1, "failed")]
    assert "执行器失联" in registry.finishes[0].error_message
