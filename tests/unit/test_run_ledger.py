"""RunLedger: the scheduler's hot-path updates go to the registry in batches, and each caller gets
exactly what its single call would have returned or raised. The registry here is scripted (its
real RecordRuns is tested in tests/integration/test_record_runs.py); one plays an older registry
without RecordRuns."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from services.scheduler.ledger import RunLedger
from zquant.scheduler.v1 import registry_internal_service_pb2 as pb2
from zquant.scheduler.v1 import task_pb2

pytestmark = pytest.mark.asyncio


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, "")


class ScriptedInternal:
    """Creates echo their task id as the execution id; task 0 does not exist; finishes of
    execution 13 are refused. `batched=False` plays a registry without RecordRuns."""

    def __init__(self, batched: bool = True, fail_calls: bool = False) -> None:
        self.batched = batched
        self.fail_calls = fail_calls
        self.batches: list[int] = []
        self.singles = 0

    def _answer(self, update: pb2.RunUpdate) -> pb2.RunUpdateResult:
        kind = update.WhichOneof("update")
        if kind == "create":
            if update.create.task_id == 0:
                return pb2.RunUpdateResult(code=grpc.StatusCode.NOT_FOUND.value[0], message="任务 0 不存在")
            execution = task_pb2.Execution(id=update.create.task_id, status="running")
            return pb2.RunUpdateResult(create=pb2.CreateExecutionResponse(execution=execution, created=True))
        if kind == "finish" and update.finish.execution_id == 13:
            return pb2.RunUpdateResult(code=grpc.StatusCode.FAILED_PRECONDITION.value[0], message="已结束")
        if kind == "finish":
            return pb2.RunUpdateResult(finish=pb2.FinishExecutionResponse())
        return pb2.RunUpdateResult(progress=pb2.ReportProgressResponse(terminate_requested=True))

    async def RecordRuns(self, request: pb2.RecordRunsRequest, **call: Any) -> pb2.RecordRunsResponse:
        if not self.batched:
            raise rpc_error(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        await asyncio.sleep(0.01)  # a call takes a while: meanwhile updates gather
        if self.fail_calls:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused")
        self.batches.append(len(request.updates))
        return pb2.RecordRunsResponse(results=[self._answer(update) for update in request.updates])

    async def _single(self, update: pb2.RunUpdate) -> Any:
        self.singles += 1
        result = self._answer(update)
        if result.code:
            raise rpc_error(grpc.StatusCode.NOT_FOUND, result.message)
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


async def test_a_busy_ledger_batches_up_to_its_limit_with_two_calls_under_way() -> None:
    internal = ScriptedInternal()
    ledger = ledger_for(internal, max_batch=30)
    first = asyncio.ensure_future(ledger.create(pb2.CreateExecutionRequest(task_id=1)))
    await asyncio.sleep(0)  # the first call is under way alone
    rest = [ledger.create(pb2.CreateExecutionRequest(task_id=task_id)) for task_id in range(2, 102)]
    responses = [await first, *await asyncio.gather(*rest)]
    assert [response.execution.id for response in responses] == list(range(1, 102))
    assert sorted(internal.batches) == [1, 10, 30, 30, 30] and max(internal.batches) <= 30


async def test_an_update_refused_raises_its_own_code_and_the_others_succeed() -> None:
    ledger = ledger_for(ScriptedInternal())
    results = await asyncio.gather(
        ledger.create(pb2.CreateExecutionRequest(task_id=0)),
        ledger.finish(pb2.FinishExecutionRequest(execution_id=13)),
        ledger.progress(pb2.ReportProgressRequest(execution_id=5)),
        return_exceptions=True,
    )
    missing, refused, reported = results
    assert isinstance(missing, grpc.aio.AioRpcError) and missing.code() == grpc.StatusCode.NOT_FOUND
    assert missing.details() == "任务 0 不存在"
    assert isinstance(refused, grpc.aio.AioRpcError) and refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(reported, pb2.ReportProgressResponse) and reported.terminate_requested


async def test_a_failed_call_fails_every_update_in_it() -> None:
    ledger = ledger_for(ScriptedInternal(fail_calls=True))
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
    assert refused.value.details() == "已结束"
    assert internal.singles == 3 and internal.batches == []
