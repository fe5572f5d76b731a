"""The backfill pass: it asks the registry every interval while a backfill runs, and otherwise
only when woken (a backfill's run announced, a feed reconnected): an idle stack makes no call."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import grpc
import pytest

from services.scheduler.backfills import drive_backfills
from services.scheduler.clients import RegistryClient
from zquant.scheduler.v1 import registry_internal_service_pb2 as internal_pb2
from zquant.scheduler.v1 import task_pb2

pytestmark = pytest.mark.asyncio(loop_scope="function")

INTERVAL = 0.05


class Registry:
    """The registry's AdvanceBackfills as the pass sees it: scripted answers, calls counted."""

    def __init__(self, *answers: internal_pb2.AdvanceBackfillsResponse | grpc.aio.AioRpcError) -> None:
        self.metadata: tuple[tuple[str, str], ...] = ()
        self.internal = self
        self.calls = 0
        self._answers = list(answers)

    async def AdvanceBackfills(self, request: Any, **call: Any) -> internal_pb2.AdvanceBackfillsResponse:
        self.calls += 1
        answer = self._answers.pop(0) if self._answers else internal_pb2.AdvanceBackfillsResponse()
        if isinstance(answer, grpc.aio.AioRpcError):
            raise answer
        return answer


def client(registry: Registry) -> RegistryClient:
    return cast(RegistryClient, registry)


async def calls_after(registry: Registry, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return registry.calls


async def test_with_no_backfill_running_the_pass_asks_once_then_only_when_woken() -> None:
    registry, wake = Registry(), asyncio.Event()
    launched: list[task_pb2.Execution] = []
    task = asyncio.create_task(drive_backfills(client(registry), launched.append, wake, interval=INTERVAL))
    try:
        assert await calls_after(registry, 10 * INTERVAL) == 1
        wake.set()
        assert await calls_after(registry, 10 * INTERVAL) == 2
    finally:
        task.cancel()


async def test_while_a_backfill_runs_the_pass_asks_every_interval_and_launches_what_was_created() -> None:
    run = task_pb2.Execution(id=7, task_id=1, status="pending", trigger="backfill")
    registry = Registry(
        internal_pb2.AdvanceBackfillsResponse(running=True, executions=[run]),
        internal_pb2.AdvanceBackfillsResponse(running=True),
        internal_pb2.AdvanceBackfillsResponse(running=False),
    )
    launched: list[task_pb2.Execution] = []
    task = asyncio.create_task(
        drive_backfills(client(registry), launched.append, asyncio.Event(), interval=INTERVAL)
    )
    try:
        assert await calls_after(registry, 20 * INTERVAL) == 3  # the backfill ended: it waits now
        assert [execution.id for execution in launched] == [7]
    finally:
        task.cancel()


async def test_a_failed_call_is_made_again_after_an_interval() -> None:
    unavailable = grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "registry down", ""
    )
    registry = Registry(unavailable)
    task = asyncio.create_task(
        drive_backfills(client(registry), lambda execution: None, asyncio.Event(), interval=INTERVAL)
    )
    try:
        assert await calls_after(registry, 10 * INTERVAL) == 2
    finally:
        task.cancel()
