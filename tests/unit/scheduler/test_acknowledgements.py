"""Acknowledgements go out in batches: one Acknowledge call per executor for the outcomes stored
within an interval, each naming its attempt; a failed call is logged and dropped (best effort)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from services.scheduler.acknowledgements import Acknowledgements
from services.scheduler.clients import ExecutorHandle, ExecutorPool
from zquant.scheduler.v1 import executor_service_pb2

pytestmark = pytest.mark.asyncio


class RecordingStub:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[tuple[int, int]]] = []
        self.fail = fail

    async def Acknowledge(self, request: executor_service_pb2.AcknowledgeRequest, **call: Any) -> Any:
        self.calls.append([(run.execution_id, run.attempt) for run in request.runs])
        if self.fail:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down", None
            )
        return executor_service_pb2.AcknowledgeResponse(forgotten_count=len(request.runs))


def handle(address: str, stub: RecordingStub) -> ExecutorHandle:
    return ExecutorHandle(address=address, channel=None, stub=stub)  # type: ignore[arg-type]


async def test_outcomes_stored_together_reach_each_executor_in_one_call() -> None:
    first, second = RecordingStub(), RecordingStub()
    acks = Acknowledgements(ExecutorPool(("127.0.0.1:1",), "token"), interval=0.05)
    acks.add(handle("a:1", first), 1, 1)
    acks.add(handle("b:1", second), 2, 1)
    acks.add(handle("a:1", first), 3, 2)
    await asyncio.sleep(0.2)
    assert first.calls == [[(1, 1), (3, 2)]]
    assert second.calls == [[(2, 1)]]


async def test_closing_sends_what_waits_at_once() -> None:
    stub = RecordingStub()
    acks = Acknowledgements(ExecutorPool(("127.0.0.1:1",), "token"), interval=60)
    acks.add(handle("a:1", stub), 7, 1)
    await acks.close()
    assert stub.calls == [[(7, 1)]]


async def test_an_unreachable_executor_loses_its_acknowledgements_without_an_error() -> None:
    stub = RecordingStub(fail=True)
    acks = Acknowledgements(ExecutorPool(("127.0.0.1:1",), "token"), interval=60)
    acks.add(handle("a:1", stub), 7, 1)
    await acks.close()
    await acks.close()  # nothing waits any more: no second call
    assert stub.calls == [[(7, 1)]]
