"""ExecutorService: proto in -> runner -> proto out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from services.executor.convert import acknowledged_runs, event_to_proto, events_to_proto, run_spec_from_proto
from services.executor.runner import Runner
from zquant.scheduler.v1 import executor_service_pb2, executor_service_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class ExecutorServicer(executor_service_pb2_grpc.ExecutorServiceServicer):  # type: ignore[misc]
    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def Run(
        self, request: executor_service_pb2.RunRequest, context: Context
    ) -> AsyncIterator[executor_service_pb2.RunResponse]:
        if request.attach:
            run = self._runner.attach(request.execution_id, request.attempt)
        else:
            run = self._runner.start(run_spec_from_proto(request))
        async for batch in run.event_batches(attach=request.attach):
            if request.batch_events:
                yield events_to_proto(batch)
            else:  # a caller from before batches
                for event in batch:
                    yield event_to_proto(event)

    async def Cancel(
        self, request: executor_service_pb2.CancelRequest, context: Context
    ) -> executor_service_pb2.CancelResponse:
        grace = float(request.grace_seconds) if request.grace_seconds > 0 else None
        cancelled = self._runner.cancel(request.execution_id, grace, request.attempt)
        return executor_service_pb2.CancelResponse(cancelled=cancelled)

    async def Acknowledge(
        self, request: executor_service_pb2.AcknowledgeRequest, context: Context
    ) -> executor_service_pb2.AcknowledgeResponse:
        forgotten = self._runner.acknowledge(acknowledged_runs(request))
        return executor_service_pb2.AcknowledgeResponse(forgotten=forgotten > 0, forgotten_count=forgotten)

    async def GetLoad(
        self, request: executor_service_pb2.GetLoadRequest, context: Context
    ) -> executor_service_pb2.GetLoadResponse:
        return executor_service_pb2.GetLoadResponse(
            capacity=self._runner.capacity,
            active_runs=self._runner.active_count,
            draining=self._runner.draining,
        )
