"""RunLedger: the scheduler's hot-path updates go to the registry in batches, and each caller gets
exactly what its single call would have returned or raised (code and reason); the final status of
a run is retried through registry hiccups, and a progress report that fails costs only itself. The
registry here is scripted (its real RecordRuns is tested in tests/integration/test_record_runs.py,
its real RecordRunStream in tests/unit/scheduler/test_record_stream.py). Batches travel on its
stream, which breaks where a call would have failed; older registries have no stream, or not even
RecordRuns."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from services.common.errors import Reason, reason_of
from services.common.errors import rpc_error as answered
from services.scheduler.ledger import RunLedger
from tests.unit.scheduler.run_stream import StreamOfCalls, stream_of_calls, transport
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import task_pb2

pytestmark = pytest.mark.asyncio


def refused(code: grpc.StatusCode, message: str, reason: Reason) -> pb2.RunUpdateResult:
    return pb2.RunUpdateResult(code=code.value[0], message=message, reason=reason)


class ScriptedInternal:
    """Creates echo their task id as the execution id; task 0 does not exist; finishes of
    execution 13 are refused as ended, of execution 14 as invalid; reports for execution 13 are
    refused as stale. The first `failing_calls` calls fail as the network would (a stream breaks).
    `streamed=False` plays a registry without RecordRunStream, `batched=False` one without
    RecordRuns either."""

    def __init__(self, batched: bool = True, failing_calls: int = 0, streamed: bool | None = None) -> None:
        self.batched = batched
        self.streamed = batched if streamed is None else streamed
        self.failing_calls = failing_calls
        self.batches: list[int] = []
        self.kinds: list[list[str]] = []  # each batch's updates, by kind
        self.singles = 0
        self.streams = 0  # streams opened

    def RecordRunStream(self, **call: Any) -> StreamOfCalls:
        self.streams += 1
        return stream_of_calls(self, available=self.streamed)

    def _answer(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        kind = update.WhichOneof("update")
        if kind == "create":
            if update.create.task_id == 0:
                return refused(grpc.StatusCode.NOT_FOUND, "任务 0 不存在", Reason.TASK_NOT_FOUND)
            execution = task_pb2.Execution(id=update.create.task_id, status="running")
            return pb2.RunUpdateResult(create=pb2.CreateExecutionResponse(execution=execution, created=True))
        if kind == "finish" and update.finish.execution_id == 13:
            return refused(grpc.StatusCode.FAILED_PRECONDITION, "已结束", Reason.RUN_ALREADY_ENDED)
        if kind == "finish" and update.finish.execution_id == 14:
            return refused(grpc.StatusCode.INVALID_ARGUMENT, "无效的结束状态", Reason.RUN_UPDATE_INVALID)
        if kind == "finish":
            return pb2.RunUpdateResult(finish=pb2.FinishExecutionResponse())
        if kind == "log":
            return pb2.RunUpdateResult(log=pb2.AppendExecutionLogResponse(end_offset=len(update.log.data)))
        if update.progress.execution_id == 13:
            return refused(grpc.StatusCode.FAILED_PRECONDITION, "尝试已失效", Reason.ATTEMPT_STALE)
        return pb2.RunUpdateResult(progress=pb2.ReportProgressResponse(terminate_requested=True))

    async def RecordRuns(self, request: pb2.RecordRunsRequest, **call: Any) -> pb2.RecordRunsResponse:
        if not self.batched:
            raise transport(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        await asyncio.sleep(0.01)  # a call takes a while: meanwhile updates gather
        if self.failing_calls:
            self.failing_calls -= 1
            raise transport(grpc.StatusCode.UNAVAILABLE, "connection refused")
        self.batches.append(len(request.updates))
        self.kinds.append([str(update.WhichOneof("update")) for update in request.updates])
        return pb2.RecordRunsResponse(results=[self._answer(update) for update in request.updates])

    async def _single(self, update: pb2.RunUpdate) -> Any:
        self.singles += 1
        result = self._answer(update)
        if result.code:
            code = next(code for code in grpc.StatusCode if code.value[0] == result.code)
            raise answered(code, result.message, result.reason)
        return getattr(result, result.WhichOneof("response"))

    async def CreateExecution(self, request: pb2.CreateExecutionRequest, **call: Any) -> Any:
        return await self._single(pb2.RunUpdate(create=request))

    async def ReportProgress(self, request: pb2.ReportProgressRequest, **call: Any) -> Any:
        return await self._single(pb2.RunUpdate(progress=request))

    async def FinishExecution(self, request: pb2.FinishExecutionRequest, **call: Any) -> Any:
        return await self._single(pb2.RunUpdate(finish=request))


class Registry:
    def __init__(self, internal: ScriptedInternal) -> None:
        self.internal = internal
        self.metadata: list[tuple[str, str]] = []


def ledger_for(internal: ScriptedInternal, **options: Any) -> RunLedger:
    return RunLedger(Registry(internal), **options)  # type: ignore[arg-type]  # a structural fake


async def test_updates_made_together_go_in_one_call_and_each_gets_its_own_answer() -> None:
    internal = ScriptedInternal()
    ledger = ledger_for(internal)
    responses = await asyncio.gather(
        *(ledger.create(pb2.CreateExecutionRequest(task_id=task_id)) for task_id in range(1, 101))
    )
    assert [response.execution.id for response in responses] == list(range(1, 101))
    assert internal.batches == [100]


async def test_a_runs_log_lines_travel_in_the_same_call_as_its_end() -> None:
    internal = ScriptedInternal()
    ledger = ledger_for(internal)
    appended, _ = await asyncio.gather(
        ledger.append_log(pb2.AppendExecutionLogRequest(execution_id=5, data=b"done\n")),
        ledger.finish(pb2.FinishExecutionRequest(execution_id=5, status="success")),
    )
    assert appended.end_offset == len(b"done\n")
    assert internal.batches == [2] and internal.singles == 0


async def test_a_busy_ledger_batches_up_to_its_limit_with_two_calls_under_way() -> None:
    internal = ScriptedInternal()
    ledger = ledger_for(internal, max_batch=30)
    first = asyncio.ensure_future(ledger.create(pb2.CreateExecutionRequest(task_id=1)))
    await asyncio.sleep(0)  # the first call is under way alone
    rest = [ledger.create(pb2.CreateExecutionRequest(task_id=task_id)) for task_id in range(2, 102)]
    responses = [await first, *await asyncio.gather(*rest)]
    assert [response.execution.id for response in responses] == list(range(1, 102))
    assert sorted(internal.batches) == [1, 10, 30, 30, 30] and max(internal.batches) <= 30


async def test_updates_of_runs_under_way_go_before_the_creates_of_a_burst_queued_earlier() -> None:
    internal = ScriptedInternal()
    ledger = ledger_for(internal, max_batch=10, max_in_flight=1)
    first = asyncio.ensure_future(ledger.create(pb2.CreateExecutionRequest(task_id=1)))
    await asyncio.sleep(0)  # under way alone; meanwhile a burst's creates queue, then a run ends
    burst = [ledger.create(pb2.CreateExecutionRequest(task_id=task_id)) for task_id in range(2, 27)]
    ended = ledger.finish(pb2.FinishExecutionRequest(execution_id=5, status="success"))
    await asyncio.gather(first, *burst, ended)
    assert internal.kinds[1] == ["finish"] + ["create"] * 9  # the end first, then creates in order
    assert internal.batches == [1, 10, 10, 6]


async def test_an_update_refused_raises_its_own_code_and_reason_and_the_others_succeed() -> None:
    ledger = ledger_for(ScriptedInternal())
    results = await asyncio.gather(
        ledger.create(pb2.CreateExecutionRequest(task_id=0)),
        ledger.finish(pb2.FinishExecutionRequest(execution_id=13)),
        ledger.progress(pb2.ReportProgressRequest(execution_id=5)),
        return_exceptions=True,
    )
    missing, refused, reported = results
    assert isinstance(missing, grpc.aio.AioRpcError) and missing.code() == grpc.StatusCode.NOT_FOUND
    assert missing.details() == "任务 0 不存在" and reason_of(missing) == Reason.TASK_NOT_FOUND
    assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(refused) == Reason.RUN_ALREADY_ENDED
    assert isinstance(reported, pb2.ReportProgressResponse) and reported.terminate_requested


async def test_a_failed_call_fails_every_update_in_it() -> None:
    ledger = ledger_for(ScriptedInternal(failing_calls=1))
    results = await asyncio.gather(
        *(ledger.finish(pb2.FinishExecutionRequest(execution_id=i)) for i in range(1, 4)),
        return_exceptions=True,
    )
    assert all(
        isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.UNAVAILABLE for r in results
    )


async def test_a_registry_without_record_runs_gets_the_single_calls() -> None:
    internal = ScriptedInternal(batched=False)
    ledger = ledger_for(internal)
    created, reported = await asyncio.gather(
        ledger.create(pb2.CreateExecutionRequest(task_id=7)), ledger.progress(pb2.ReportProgressRequest())
    )
    assert created.execution.id == 7 and reported.terminate_requested
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger.finish(pb2.FinishExecutionRequest(execution_id=13))
    assert refused.value.details() == "已结束" and reason_of(refused.value) == Reason.RUN_ALREADY_ENDED
    assert internal.singles == 3 and internal.batches == []


async def test_batches_travel_on_one_stream_and_a_broken_stream_is_opened_again() -> None:
    internal = ScriptedInternal(failing_calls=1)
    ledger = ledger_for(internal)
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await ledger.create(pb2.CreateExecutionRequest(task_id=1))
    assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
    for task_id in range(2, 5):
        assert (await ledger.create(pb2.CreateExecutionRequest(task_id=task_id))).execution.id == task_id
    assert internal.streams == 2 and internal.batches == [1, 1, 1]


async def test_a_registry_without_the_stream_gets_record_runs_calls() -> None:
    internal = ScriptedInternal(streamed=False)
    ledger = ledger_for(internal)
    created = await asyncio.gather(
        *(ledger.create(pb2.CreateExecutionRequest(task_id=i)) for i in range(1, 4))
    )
    assert [response.execution.id for response in created] == [1, 2, 3]
    assert internal.batches == [3] and internal.singles == 0


async def test_the_end_of_a_run_is_retried_through_registry_hiccups() -> None:
    internal = ScriptedInternal(failing_calls=2)
    await ledger_for(internal).end(pb2.FinishExecutionRequest(execution_id=5, status="success"))
    assert internal.batches == [1]  # after two calls the network failed


async def test_the_end_of_a_run_that_is_gone_is_neither_retried_nor_an_error() -> None:
    internal = ScriptedInternal()
    await ledger_for(internal).end(pb2.FinishExecutionRequest(execution_id=13, status="success"))
    assert internal.batches == [1]


async def test_an_end_refused_for_another_reason_is_raised_at_once() -> None:
    internal = ScriptedInternal()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ledger_for(internal).end(pb2.FinishExecutionRequest(execution_id=14, status="done"))
    assert reason_of(refused.value) == Reason.RUN_UPDATE_INVALID and internal.batches == [1]


async def test_a_report_says_when_the_attempt_is_gone_and_survives_a_hiccup() -> None:
    ledger = ledger_for(ScriptedInternal(failing_calls=1))
    survived = await ledger.report(pb2.ReportProgressRequest(execution_id=5))
    assert survived is not None and not survived.terminate_requested  # this report was lost
    reported = await ledger.report(pb2.ReportProgressRequest(execution_id=5))
    assert reported is not None and reported.terminate_requested
    assert await ledger.report(pb2.ReportProgressRequest(execution_id=13)) is None


async def test_a_fire_of_a_deleted_task_records_nothing_and_is_no_error() -> None:
    ledger = ledger_for(ScriptedInternal())
    deleted, task = task_pb2.Task(id=0, timezone="UTC"), task_pb2.Task(id=7, timezone="UTC")
    assert await ledger.record_fire(deleted, datetime(2026, 1, 1, tzinfo=UTC)) is None
    recorded = await ledger.record_fire(task, datetime(2026, 1, 1, tzinfo=UTC), skipped_because="迟了")
    assert recorded is not None and recorded.execution.id == 7
